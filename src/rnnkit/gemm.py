"""The matrix products of the BPTT kernels, each on the faster of two CPU GEMM libraries.

On the CPU torch.mm calls MKL, whose fp32 GEMM reached about 200 GFLOP/s on this project's
AMD machines, where oneDNN's (reached through `torch.ops.mkldnn._linear_pointwise`, the op
torch.compile uses for CPU linears) reached 2-2.6x that for the shapes of a recurrent step
above a few MFLOP, and for matrix-vector products with a weight of 4 MB or more; below,
oneDNN's ~12 us call overhead loses. `benchmarks/bench_gemm.py`
measures the crossover. Everything else (CUDA, float64, small shapes, a torch without the op)
goes to torch.mm/addmm, so results never depend on the op being there.

All functions take W as torch.nn stores weights, (N, K), and compute x W^T.
"""

import torch
from torch import Tensor

try:
    _LINEAR = torch.ops.mkldnn._linear_pointwise.default
except (AttributeError, RuntimeError):  # a torch built without oneDNN
    _LINEAR = None
try:
    _REORDER = torch.ops.mkldnn._reorder_linear_weight.default
except (AttributeError, RuntimeError):
    _REORDER = None

ONEDNN = _LINEAR is not None and torch.backends.mkldnn.is_available()  # switch for tests
MIN_FLOPS = 5_000_000  # 2 M N K at or above which oneDNN is used (crossover measured)
MIN_FLOPS_PACKED = 2_000_000  # the same with W reordered once for many products
MIN_WEIGHT = 1 << 20  # N K at or above which oneDNN is used even for one row (memory-bound GEMV)


def _onednn(x: Tensor, w: Tensor) -> bool:
    return _onednn_for(x.shape[0], w)


def uses_onednn(rows: int, w: Tensor) -> bool:
    """Whether products of `rows` rows with W go to oneDNN."""
    return _onednn_for(rows, w)


def _onednn_for(rows: int, w: Tensor, min_flops: int = MIN_FLOPS) -> bool:
    return (
        ONEDNN
        and w.dtype == torch.float32
        and w.device.type == "cpu"
        and (2 * rows * w.shape[0] * w.shape[1] >= min_flops or w.numel() >= MIN_WEIGHT)
    )


def linear(x: Tensor, w: Tensor, b: Tensor | None = None, out: Tensor | None = None) -> Tensor:
    """x W^T + b: (M, K), (N, K), (N,) -> (M, N), into `out` when given."""
    if _onednn(x, w):
        y = _LINEAR(x, w, b, "none", [], "")
        return y if out is None else out.copy_(y)
    if b is None:
        return torch.mm(x, w.t(), out=out)
    return torch.addmm(b, x, w.t(), out=out)


def addmm_(z: Tensor, x: Tensor, w: Tensor) -> Tensor:
    """z += x W^T in place."""
    if _onednn(x, w):
        return z.add_(_LINEAR(x, w, None, "none", [], ""))
    return z.addmm_(x, w.t())


def t_mm(a: Tensor, b: Tensor) -> Tensor:
    """a^T b, the sum over rows of outer products (weight gradients): (M, N), (M, K) -> (N, K)."""
    if _onednn(b.t(), a.t()):
        return _LINEAR(b.t(), a.t(), None, "none", [], "").t().contiguous()
    return a.t().mm(b)


# Per-step products, with the library chosen once per sequence: a Python-level check per step
# costs about 1 us, as much as the GEMM itself at batch 1.

MIN_CALLS = 32  # products with one W at or above which W is reordered for oneDNN first


def step_weight(w: Tensor, rows: int, calls: int = 0) -> tuple[Tensor, bool]:
    """(W, on_onednn) for `calls` products of at most `rows` rows with W. On oneDNN a W used
    for many products is reordered once into oneDNN's blocked layout (the op torch.compile
    uses to prepack linear weights): the products are then 10-20 % faster, with the same
    results, and the reorder costs about as much as 5-15 of them."""
    packable = _REORDER is not None and calls >= MIN_CALLS
    if not _onednn_for(rows, w, MIN_FLOPS_PACKED if packable else MIN_FLOPS):
        return w, False
    if packable:
        try:
            return _REORDER(w.contiguous(), rows), True
        except RuntimeError:  # a oneDNN without the blocked layout: the plain weight works
            pass
    return w, True


def addmm_step(w: Tensor, rows: int, calls: int = 0):
    """f(z, x): z += x W^T in place, for x of at most `rows` rows."""
    w, onednn = step_weight(w, rows, calls)
    if onednn:
        return lambda z, x: z.add_(_LINEAR(x, w, None, "none", [], ""))
    wt = w.t()
    return lambda z, x: z.addmm_(x, wt)


def addmm_out_step(w: Tensor, rows: int, calls: int = 0):
    """f(c, x, out): out = c + x W^T."""
    w, onednn = step_weight(w, rows, calls)
    if onednn:
        return lambda c, x, out: torch.add(c, _LINEAR(x, w, None, "none", [], ""), out=out)
    wt = w.t()
    return lambda c, x, out: torch.addmm(c, x, wt, out=out)


def linear_step(w: Tensor, b: Tensor | None, rows: int, calls: int = 0):
    """f(x, out) -> x W^T + b, in `out` (MKL) or in a new tensor (oneDNN, which has no out=)."""
    w, onednn = step_weight(w, rows, calls)
    if onednn:
        return lambda x, out: _LINEAR(x, w, b, "none", [], "")
    wt = w.t()
    if b is None:
        return lambda x, out: torch.mm(x, wt, out=out)
    return lambda x, out: torch.addmm(b, x, wt, out=out)
