"""What the three BPTT kernels share: the step layout of a (possibly ragged) batch, bulk
per-step views, the all-steps input GEMMs and the weight gradients (see `rnnkit.bptt`)."""

import functools

import torch
from torch import Tensor

from rnnkit.bptt import gemm
from rnnkit.bptt.workspace import buffer, recycled


@functools.lru_cache(maxsize=64)
def _steps(batch_sizes: tuple[int, ...] | None, T: int, B: int) -> tuple[tuple[int, int, int]]:
    """(t, b_t, b_{t+1}) for every step; b_T = 0. Rows [b_{t+1}, b_t) end at step t. Cached
    and immutable: every layer of every call asks for the same few layouts."""
    bs = list(batch_sizes) if batch_sizes is not None else [B] * T
    return tuple((t, bs[t], bs[t + 1] if t + 1 < T else 0) for t in range(T))


def _rows(seq: Tensor, steps: list[tuple[int, int, int]]) -> list[Tensor]:
    """seq[k, :b_t] for the k-th of `steps`, from one unbind: a view op costs about 1 us, as
    much as a small pointwise op, so the loops take their per-step views from here."""
    B = seq.shape[1]
    views = seq.unbind(0)
    if all(bt == B for _, bt, _ in steps):
        return list(views)
    return [v if bt == B else v[:bt] for v, (_, bt, _) in zip(views, steps)]


class _Prefixes(dict):
    """x[:b] on demand, each view made once."""

    def __init__(self, x: Tensor):
        super().__init__()
        self.x = x

    def __missing__(self, b: int) -> Tensor:
        self[b] = v = self.x if b == len(self.x) else self.x[:b]
        return v


def _without_autocast(backward):
    """A kernel's backward run with torch.autocast off on its device, as the layers run its
    forward (rnnkit/precision.py): a backward called inside an autocast region would otherwise
    round the BPTT's GEMMs to the autocast dtype."""

    @functools.wraps(backward)
    def run(ctx, *grads):
        device_type = next((g.device.type for g in grads if g is not None), "cpu")
        if not torch.is_autocast_enabled(device_type):
            return backward(ctx, *grads)
        with torch.autocast(device_type, enabled=False):
            return backward(ctx, *grads)

    return run


def _padded(steps: list[tuple[int, int, int]], B: int) -> bool:
    return any(bt < B for _, bt, _ in steps)


def _project(
    x: Tensor, w: Tensor, b: Tensor | None, name: str | None = None, scratch: bool = False
) -> Tensor:
    """W x_t + b for all steps in one GEMM: (T, B, I) -> (T, B, G*H); with a `name`, into a
    recycled tensor (bptt/workspace.py, on ATen: gemm.linear), or with `scratch` its scratch
    buffer, except on oneDNN, whose fresh output of a chunk (2 MB) was the faster there."""
    T, B, I = x.shape
    out = None
    if name is not None and not (scratch and gemm.uses_onednn(T * B, w)):
        out = (buffer if scratch else recycled)(name, (T * B, w.shape[0]), x)
    return gemm.linear(x.reshape(T * B, I), w, b, out=out).view(T, B, -1)


CHUNK = 1 << 19  # pre-activations per input GEMM when nothing is saved (2 MB in fp32)


def _chunk(B: int, GH: int) -> int:
    """Steps per input-projection GEMM when nothing is saved."""
    return max(1, CHUNK // (B * GH))


def _projections(x: Tensor, w: Tensor, b: Tensor | None, chunk: int, name: str | None = None):
    """(t0, W x_t + b for the steps [t0, t0 + chunk)), one GEMM per chunk; a single chunk
    into a recycled tensor when `name` is given (one the kernel saves), several chunks each
    into the same scratch buffer (a chunk is used up before the next is formed: a new 2 MB
    tensor per chunk cost its page faults, a quarter of a B16/H128 LSTM inference), or on
    oneDNN each in a new tensor, from W reordered once where there are four chunks or more
    (an AMD EPYC: 11 % off each chunk's product at B64/H512, the LSTM's inference 100.2 ->
    98.7 ms, within that machine's noise)."""
    T, B, I = x.shape
    if chunk >= T:
        yield 0, _project(x, w, b, name)
        return
    packed = gemm.onednn_packed(w, chunk * B) if T >= 4 * chunk else None  # W reordered once
    for t0 in range(0, T, chunk):
        xs = x[t0 : t0 + chunk]
        if packed is None:
            yield t0, _project(xs, w, b, name and name + ".chunk", scratch=True)
        else:
            yield t0, gemm.product(packed, xs.reshape(-1, I), b).view(len(xs), B, -1)


def _unprojected(x: Tensor, w: Tensor, b: Tensor | None, chunk: int, name: str):
    """(t0, Z chunk) as _projections gives them, but unfilled: the loop forms every step's
    input product with its recurrent one (native._fused_input)."""
    T, B, _ = x.shape
    if chunk >= T:
        Z = recycled(name, (T * B, w.shape[0]), x).view(T, B, -1)
    else:
        Z = buffer(name + ".chunk", (chunk, B, w.shape[0]), x)
    for t0 in range(0, T, chunk):
        yield t0, Z[: min(chunk, T - t0)]


def _dense(grad: Tensor, name: str) -> Tensor:
    """grad as a contiguous tensor for a backward's loop: itself, or a copy in the workspace
    buffer `name` (a broadcast gradient, as out.sum()'s, copied anew at every call paid page
    faults on first touch: 0.46 ms at 256 x 16 x 128 against 0.07 for the copy itself)."""
    return grad if grad.is_contiguous() else buffer(name, grad.shape, grad).copy_(grad)


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


def _one(x: Tensor) -> Tensor:
    """A 0-dim 1 of x's dtype and device."""
    return x.new_ones(())


def _mask_padding(out: Tensor, steps: list[tuple[int, int, int]]) -> Tensor:
    """Zero the padded rows of a (T, B, .) tensor in place, rows [b_t, B) of step t, and return
    it. b_t only falls, so the padding is a staircase: one op per run of steps with the same
    b_t (at most B ops, where one per step cost 256 Python-level calls at T = 256)."""
    B, t0 = out.shape[1], None
    for t, b, _ in steps:
        if b < B and (t0 is None or b != steps[t0][1]):
            if t0 is not None:
                out[t0:t, steps[t0][1] :].zero_()
            t0 = t
    if t0 is not None:
        out[t0:, steps[t0][1] :].zero_()
    return out


def _final(seq: Tensor, steps: list[tuple[int, int, int]]) -> Tensor:
    """Each row's state at its own last step: rows [b_{t+1}, b_t) end at step t."""
    last = torch.empty_like(seq[0])
    for t, b, bn in steps:
        if bn < b:
            last[bn:b] = seq[t, bn:b]
    return last


def _grad_in(dout: Tensor, d_last: Tensor, t: int, b: int, bn: int, out: Tensor) -> Tensor:
    """dL/dh_t for rows [0, b) in out (b rows): rows [bn, b) end at t and get dout_t + dL/dh_n
    here; the caller has written rows [0, bn) (dout_t plus the recurrent term)."""
    if bn < b:
        torch.add(dout[t, bn:b], d_last[bn:b], out=out[bn:])
    return out


def _recurrent_grads(dU: Tensor, h0: Tensor, out: Tensor, need_w: bool, need_b: bool):
    """dW_hh = sum_t dU_t^T h_{t-1}, db_hh = sum_t dU_t (dU: grad of W_hh h_{t-1} + b_hh)."""
    dw = db = None
    if need_w:
        T, B, GH = dU.shape
        dw = dU[0].t().mm(h0)
        if T > 1:
            dw += gemm.t_mm(dU[1:].reshape(-1, GH), out[:-1].reshape((T - 1) * B, -1))
    if need_b:
        db = dU.sum((0, 1))
    return dw, db


def _joint_weight_grads(dZ: Tensor, x: Tensor, h0: Tensor, out: Tensor) -> tuple[Tensor, Tensor]:
    """(dW_ih, dW_hh) = sum_t dz_t^T [x_t, h_{t-1}] as one GEMM over all T * B rows, where both
    weights take the same dz (the RNN, the LSTM): one pass over dZ, and an output wide enough
    for the GEMM's peak (AMD EPYC, 2 threads, the [x_t, h_{t-1}] copy included: B64/H512 107.8
    -> 90.1 ms against the two products, B32/H256 43.8 -> 42.1, B16/H128 5.42 -> 5.17)."""
    T, B, I = x.shape
    xh = buffer("xh", (T, B, I + out.shape[2]), x)
    xh[:, :, :I] = x
    xh[0, :, I:] = h0
    xh[1:, :, I:] = out[:-1]
    w = gemm.t_mm(dZ.reshape(T * B, -1), xh.view(T * B, -1))
    return w[:, :I].contiguous(), w[:, I:].contiguous()


def _shared_grads(dZ: Tensor, x: Tensor, w_ih: Tensor, h0: Tensor, out: Tensor, needs, db=None):
    """(dx, dW_ih, dW_hh, db) where the input and recurrent parts of z take the same gradient
    dZ (the RNN, the LSTM); h0 and out what W_hh read; needs = (x, W_ih, W_hh, b), None where
    not needed; db as given (a loop summed it) or summed here. Both weight gradients from one
    GEMM where both are needed (_joint_weight_grads)."""
    need_x, need_wi, need_wh, need_b = needs
    joint = need_wi and need_wh
    dw_hh, db_sum = _recurrent_grads(dZ, h0, out, need_wh and not joint, need_b and db is None)
    dx, dw_ih, _ = _input_grads(dZ, x, w_ih, (need_x, need_wi and not joint, False))
    if joint:
        dw_ih, dw_hh = _joint_weight_grads(dZ, x, h0, out)
    return dx, dw_ih, dw_hh, db_sum if db is None else db


def _input_grads(dA: Tensor, x: Tensor, w_ih: Tensor, needs: tuple[bool, bool, bool]):
    """dx = dA W_ih, dW_ih = sum_t dA_t^T x_t, db_ih = sum_t dA_t (dA: grad of W_ih x_t + b_ih)."""
    T, B, GH = dA.shape
    dA2 = dA.view(T * B, GH)
    dx = gemm.linear(dA2, w_ih.t()).view(T, B, -1) if needs[0] else None
    dw = gemm.t_mm(dA2, x.reshape(T * B, -1)) if needs[1] else None
    db = dA2.sum(0) if needs[2] else None
    return dx, dw, db


class _Inference:
    """Stands in for autograd's ctx when no gradient is needed: the kernel saves nothing."""

    needs_input_grad = (False,) * 8

    def save_for_backward(self, *tensors):
        pass


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
