"""An opt-in record of dL/dh_t, read from inside the BPTT kernels.

    with GradientRecord() as record:
        loss.backward()      # any number of layers, directions, kernel calls
    record.norms             # [(T,) tensor per kernel call, in the order of the forwards]

norms[k][t] = || dL/dh_t ||, the Frobenius norm over the batch and hidden units of the total
gradient of the loss with respect to the state h_t of kernel call k: the gradient that
reaches h_t from its own output and through every later step, which is what the backward
loop computes as dh_t. A layer of L layers and D directions calls the kernel L * D times,
layer by layer, forward direction first; a reverse direction's norms are in its own order
(index 0 is the sequence's last step).

When no record is open the kernels pay one `is None` test per sequence and per step; the
record is claimed in the forward (so the order is the forwards') and filled in the backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

_open: list[GradientRecord] = []  # the records being filled, innermost last


def recording() -> bool:
    """Whether a record is open (the layers then run the kernels that fill it)."""
    return bool(_open)


class GradientRecord:
    """Collects || dL/dh_t || per time step of every kernel forward run while it is open."""

    def __init__(self) -> None:
        self.norms: list[Tensor] = []

    def __enter__(self) -> GradientRecord:
        _open.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _open.remove(self)

    def stacked(self) -> Tensor:
        """(kernel calls, T) when every call ran over the same T."""
        if not self.norms:
            raise ValueError("the record is empty: run a forward and backward while it is open")
        lengths = {len(n) for n in self.norms}
        if len(lengths) > 1:
            raise ValueError(f"the kernel calls ran over different lengths {sorted(lengths)}")
        return torch.stack(self.norms)


def claim(T: int, like: Tensor) -> Tensor | None:
    """In a kernel's forward: the (T,) tensor its backward fills, or None when no record is
    open (the fast path)."""
    if not _open:
        return None
    norms = torch.zeros(T, dtype=like.dtype, device=like.device)
    _open[-1].norms.append(norms)
    return norms
