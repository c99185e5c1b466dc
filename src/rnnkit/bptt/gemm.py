"""The matrix products of the BPTT kernels, each on the faster of two CPU GEMM libraries.

On the CPU torch.mm calls MKL, and MKL's fast fp32 kernels are Intel's own: on this project's
AMD machines it reached about 200 GFLOP/s, where oneDNN's (reached through
`torch.ops.mkldnn._linear_pointwise`, the op torch.compile uses for CPU linears) reached
2-2.6x that for the shapes of a recurrent step above a few MFLOP, and for matrix-vector
products with a weight of 4 MB or more; below, oneDNN's ~12 us call overhead loses. On an
Intel Xeon (AVX-512 and AMX) MKL won every unpacked shape, and its packed GEMM (weights
reordered once, `step_weight`) beat oneDNN's packed one at every step shape of 4 rows or more.
`benchmarks/bench_gemm.py` measures the crossovers. When torch lets float32 products run in
bfloat16 (`torch.set_float32_matmul_precision("medium")`) on a CPU with bfloat16 instructions,
the step products skip MKL's packed GEMM, which ignores the setting, for oneDNN, which honours
it (AMX on a Xeon: a 2 x 512 LSTM's training step 1.6x faster; `bf16_products`). Everything
else (CUDA, float64, small shapes, a torch without the op) goes to torch.mm/addmm, so results
never depend on the op being there.

All functions take W as torch.nn stores weights, (N, K), and compute x W^T.
"""

import functools
from typing import NamedTuple

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
try:  # MKL's packed GEMM (x86 builds of torch)
    _MKL_REORDER = torch.ops.mkl._mkl_reorder_linear_weight.default
    _MKL_LINEAR = torch.ops.mkl._mkl_linear.default
except (AttributeError, RuntimeError):
    _MKL_REORDER = _MKL_LINEAR = None


def cpu_vendor() -> str:
    """The CPU's vendor id from /proc/cpuinfo ("GenuineIntel", "AuthenticAMD", ...), or ""."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


NEVER = 1 << 62
ONEDNN = _LINEAR is not None and torch.backends.mkldnn.is_available()  # switch for tests
# Crossovers (2 M N K FLOPs of one product; N K elements of W), measured per vendor:
if cpu_vendor() == "GenuineIntel":
    MIN_FLOPS = NEVER  # oneDNN with a plain weight: MKL won every shape
    MIN_FLOPS_PACKED = 16_000_000  # oneDNN with W reordered once for many products
    MIN_WEIGHT = NEVER  # MKL's matrix-vector product won too
    MKL_PACKED_MIN_ROWS = 4  # MKL's packed GEMM for step products of this many rows or more
else:
    MIN_FLOPS = 5_000_000
    MIN_FLOPS_PACKED = 2_000_000
    MIN_WEIGHT = 1 << 20  # oneDNN even for one row (a memory-bound GEMV)
    MKL_PACKED_MIN_ROWS = NEVER  # not measured off Intel


def bf16_products() -> bool:
    """Whether float32 products may run in bfloat16 here: torch's float32 matmul precision
    "medium" (oneDNN's fp32_precision "bf16") on a CPU oneDNN runs bfloat16 on natively."""
    mode = getattr(getattr(torch.backends.mkldnn, "matmul", None), "fp32_precision", None)
    if mode is None:  # a torch before the per-backend setting
        mode = "bf16" if torch.get_float32_matmul_precision() == "medium" else "ieee"
    return mode == "bf16" and ONEDNN and _bf16_native()


@functools.cache  # a property of the CPU: asked once, not at every step_weight
def _bf16_native() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _onednn(x: Tensor, w: Tensor) -> bool:
    return _onednn_for(x.shape[0], w)


def uses_onednn(rows: int, w: Tensor) -> bool:
    """Whether products of `rows` rows with W go to oneDNN."""
    return _onednn_for(rows, w)


def _onednn_for(rows: int, w: Tensor, min_flops: int | None = None) -> bool:
    min_flops = MIN_FLOPS if min_flops is None else min_flops  # read late: tests set these
    return (
        ONEDNN
        and w.dtype == torch.float32
        and w.device.type == "cpu"
        and (2 * rows * w.shape[0] * w.shape[1] >= min_flops or w.numel() >= MIN_WEIGHT)
    )


def linear(x: Tensor, w: Tensor, b: Tensor | None = None, out: Tensor | None = None) -> Tensor:
    """x W^T + b: (M, K), (N, K), (N,) -> (M, N), into `out` when given. Into `out` always on
    ATen: oneDNN's op has no out=, and its fresh output, megabytes for a sequence's
    pre-activations, costs page faults at every call (on an AMD EPYC a B64/H512 LSTM training
    step 333 -> 294 ms with its input projection into a recycled buffer on MKL instead)."""
    if out is None and _onednn(x, w):
        return _LINEAR(x, w, b, "none", [], "")
    if b is None:
        return torch.mm(x, w.t(), out=out)
    return torch.addmm(b, x, w.t(), out=out)


def addmm_(z: Tensor, x: Tensor, w: Tensor) -> Tensor:
    """z += x W^T in place."""
    if _onednn(x, w):
        return z.add_(_LINEAR(x, w, None, "none", [], ""))
    return z.addmm_(x, w.t())


def t_mm(a: Tensor, b: Tensor) -> Tensor:
    """a^T b, the sum over rows of outer products (weight gradients): (M, N), (M, K) -> (N, K).
    On ATen everywhere: oneDNN's op wants both operands with the summed rows innermost, so
    it paid a transposing copy of one and of its output, and lost to MKL in the training step
    on an AMD EPYC too (B16/H128 LSTM 25.7 -> 24.4 ms, B16/H128 RNN 10.4 -> 9.0)."""
    return a.t().mm(b)


# Per-step products, with the library chosen once per sequence: a Python-level check per step
# costs about 1 us, as much as the GEMM itself at batch 1.

MIN_CALLS = 32  # products with one W at or above which W is reordered (packed) first
ATEN, ONEDNN_PACKED, MKL_PACKED = 0, 1, 2  # the libraries of a StepWeight


class StepWeight(NamedTuple):
    """W ready for many products x W^T: `packed` is W in the layout of `lib` (W itself for
    ATen), `rows` the row count it was packed for. The C++ loops take it as a tuple."""

    packed: Tensor
    w: Tensor
    lib: int
    rows: int


def step_weight(w: Tensor, rows: int, calls: int = 0) -> StepWeight:
    """W for `calls` products of at most `rows` rows. A W used for many products is packed
    once: on an Intel CPU for MKL's packed GEMM (cblas_sgemm_pack, the op torch.compile uses
    for CPU linears there: 1.3-1.8x MKL's plain GEMM for step shapes, from 4 rows), elsewhere
    into oneDNN's blocked layout (10-20 % faster than a plain W on oneDNN). Same results; the
    packing costs about as much as 5-15 products. Where `bf16_products`, oneDNN (MKL's packed
    GEMM would compute in float32 regardless)."""
    packable = calls >= MIN_CALLS and w.dtype == torch.float32 and w.device.type == "cpu"
    mkl = packable and _MKL_REORDER is not None and rows >= MKL_PACKED_MIN_ROWS
    if mkl and not bf16_products():
        w = w.contiguous()
        return StepWeight(_MKL_REORDER(w, rows), w, MKL_PACKED, rows)
    packable = packable and _REORDER is not None
    if not _onednn_for(rows, w, MIN_FLOPS_PACKED if packable else MIN_FLOPS):
        return StepWeight(w, w, ATEN, rows)
    if packable:
        try:
            return StepWeight(_REORDER(w.contiguous(), rows), w, ONEDNN_PACKED, rows)
        except RuntimeError:  # a oneDNN without the blocked layout: the plain weight works
            pass
    return StepWeight(w, w, ONEDNN_PACKED, rows)


def onednn_packed(w: Tensor, rows: int) -> StepWeight | None:
    """W in oneDNN's blocked layout for products of `rows` rows, where those go to oneDNN and
    it packs, else None: for a few products the reorder costs less than it saves (an AMD
    EPYC, 2 threads: 256 x 128 x 2048 707 us packed against 796, the reorder 160 us once)."""
    if _REORDER is None or not _onednn_for(rows, w):
        return None
    try:
        return StepWeight(_REORDER(w.contiguous(), rows), w, ONEDNN_PACKED, rows)
    except RuntimeError:  # a oneDNN without the blocked layout
        return None


def product(sw: StepWeight, x: Tensor, b: Tensor | None = None) -> Tensor:
    """x W^T + b in a new tensor."""
    if sw.lib == MKL_PACKED:
        return _MKL_LINEAR(x, sw.packed, sw.w, b, sw.rows)
    if sw.lib == ONEDNN_PACKED:
        return _LINEAR(x, sw.packed, b, "none", [], "")
    return torch.nn.functional.linear(x, sw.w, b)


def addmm_step(w: Tensor, rows: int, calls: int = 0):
    """f(z, x): z += x W^T in place, for x of at most `rows` rows."""
    sw = step_weight(w, rows, calls)
    if sw.lib != ATEN:
        return lambda z, x: z.add_(product(sw, x))
    wt = w.t()
    return lambda z, x: z.addmm_(x, wt)


def addmm_out_step(w: Tensor, rows: int, calls: int = 0):
    """f(c, x, out): out = c + x W^T."""
    sw = step_weight(w, rows, calls)
    if sw.lib != ATEN:
        return lambda c, x, out: torch.add(c, product(sw, x), out=out)
    wt = w.t()
    return lambda c, x, out: torch.addmm(c, x, wt, out=out)


def linear_step(w: Tensor, b: Tensor | None, rows: int, calls: int = 0):
    """f(x, out) -> x W^T + b, in `out` (ATen) or in a new tensor (the packed GEMMs have no
    out=)."""
    sw = step_weight(w, rows, calls)
    if sw.lib != ATEN:
        return lambda x, out: product(sw, x, b)
    wt = w.t()
    if b is None:
        return lambda x, out: torch.mm(x, wt, out=out)
    return lambda x, out: torch.addmm(b, x, wt, out=out)
