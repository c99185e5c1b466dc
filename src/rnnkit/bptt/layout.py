"""A caller's batch in a kernel's layout and back, for the operators of `bptt/ops.py`.

The kernels take a time-major batch sorted by length, longest first (PackedSequence's layout,
`steps`), and the reverse direction's steps reversed within each row's own length; the
operators take the caller's row order. `Layout` checks `lengths`' values and converts both
ways with `lengths.Batch`, the same sorting and reversal the layers use in eager mode.

    T: time, B: batch, F: features;  seq (T, B, F)   rows (B, F)
"""

from torch import Tensor

from rnnkit.bptt.common import _steps
from rnnkit.lengths import Batch, check_lengths


class Layout:
    """The kernel's layout of one call: `steps` for the kernel, `seq`/`rows` into the layout,
    `unseq`/`unrows` back (None passes through: a gradient that was not asked for)."""

    def __init__(self, x: Tensor, lengths: Tensor | None, reverse: bool):
        T, B = x.shape[:2]
        checked = None if lengths is None else check_lengths(lengths, T, B)  # ValueError
        self.batch, self.reverse = Batch(checked, x), reverse
        self.steps = _steps(self.batch.batch_sizes, T, B)

    def padded(self, x: Tensor) -> Tensor:
        """x (T, B, F) in the caller's order with padded steps zeroed (they may hold NaN)."""
        return self.batch.zero_padding(x)

    def seq(self, x: Tensor) -> Tensor:
        """(T, B, F) caller's order -> sorted rows, reversed in length for `reverse`."""
        x = self.batch.sort(x.contiguous())
        return (self.batch.reverse(x) if self.reverse else x).contiguous()

    def unseq(self, y: Tensor | None) -> Tensor | None:
        if y is None:
            return None
        y = self.batch.reverse(y) if self.reverse else y
        return self.batch.unsort(y).contiguous()

    def rows(self, s: Tensor) -> Tensor:
        """(B, F) caller's order -> sorted."""
        return self.batch.sort(s.contiguous(), dim=0)

    def unrows(self, s: Tensor | None) -> Tensor | None:
        return None if s is None else self.batch.unsort(s, dim=0).contiguous()
