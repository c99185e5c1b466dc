"""The layer-normalised kernels (`layer_norm=True`, Ba et al. 2016 as haste's LayerNormLSTM):
one `torch.autograd.Function` for the three cells, with what they share here: LayerNorm of
rows and its backward, the input projection's LayerNorm over all steps (not recurrent: the
Python loops take it in one pass before the loop and its hand-written backward in one pass
after, `input_forward` and `input_backward`; the C++ loops do both per row inside the time
loop, while the row is in cache, and sum the gains' and biases' gradients per thread), and
the weight gradients.
The cells' own time loops, forward and backward, are in ln_lstm.py, ln_gru.py and ln_rnn.py
(Python, the reference and the path for CUDA) and native_ln.cpp (C++, the default on the CPU).

    T: time, B: batch, I: input size, H: hidden size, G: gate blocks (RNN 1, LSTM 4, GRU 3),
    P: the size of h (an LSTM's proj_size, else H)
    LN(v; gamma, beta) = gamma (v - mean(v)) / sqrt(var(v) + eps) + beta over the last axis,
    biased variance, eps = EPS as torch.nn.LayerNorm's; v^ = (v - mean(v)) rstd,
    rstd = 1 / sqrt(var(v) + eps)

Each step's pre-activations (gamma_ih, gamma_hh (G*H) gains only):

    a_t = gamma_ih LN(W_ih x_t) + b_ih              (T, B, G*H), for all t before the loop
    u_t = gamma_hh LN(W_hh h_{t-1}) + b_hh          (B, G*H), in the loop; W_hh (m h_{t-1})
                                                    with recurrent dropout's mask m (B, P)
    (zoneout, in the loops: see ln_lstm.py, ln_gru.py, ln_rnn.py)
    RNN, LSTM: z_t = a_t + u_t;   GRU: r, z from a + u, n = tanh(a_n + r u_n)

Backward of v^ (rows): dv = rstd (dv^ - mean(dv^) - v^ mean(dv^ v^)), dv^ = gamma dy.
The loops give dA (the gradient of a_t), dU (of u_t; dA itself for RNN and LSTM) and dR (of
r_t = W_hh h_{t-1}, through its LayerNorm), then (in the Python loops one pass each after
the loop, in the C++ loops per row) dP (of P_t = W_ih x_t) and the sums:

    dgamma_ih = sum dA a^_t    db_ih = sum dA    dx, dW_ih from rstd (gamma_ih dA ...) as above
    dgamma_hh = sum dU r^_t    db_hh = sum dU    dW_hh = sum dR_t^T h_{t-1}   dh_0 += dR_0 W_hh
    (with recurrent dropout: m h_{t-1} in dW_hh, and m dR_{t+1} W_hh in dh_t, dh_0)
"""

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from rnnkit.bptt import gemm, native, probe
from rnnkit.bptt.common import (
    _Inference,
    _input_grads,
    _mask_padding,
    _needs_grad,
    _project,
    _recurrent_grads,
    _steps,
    _without_autocast,
)
from rnnkit.bptt.workspace import buffer, recycled
from rnnkit.regularisers import Noise

EPS = 1e-5  # torch.nn.LayerNorm's


def normalise(v: Tensor) -> tuple[Tensor, Tensor]:
    """(v^, rstd) over the last axis: v^ = (v - mean) rstd, rstd (..., 1)."""
    var, mean = torch.var_mean(v, -1, correction=0, keepdim=True)
    rstd = torch.rsqrt(var + EPS)
    return (v - mean) * rstd, rstd


def noise_of(noise: Noise | None) -> tuple:
    """(m, k_h, k_c) of a regularisers.Noise (recurrent dropout's mask, zoneout's weights of h
    and of the LSTM's c, each None where off), or Nones."""
    return (None,) * 3 if noise is None else (noise.recurrent, noise.zone_h, noise.zone_c)


def contiguous(noise: Noise | None) -> Noise | None:
    """The noise with contiguous tensors (what the C++ loops read), or None."""
    if noise is None:
        return None
    return Noise(*(None if t is None else t.contiguous() for t in noise_of(noise)))


def normalise_backward(dvh: Tensor, vh: Tensor, rstd: Tensor) -> Tensor:
    """dv from dv^ (the gradient of v^ = (v - mean(v)) rstd), over the last axis."""
    mean_d = dvh.mean(-1, keepdim=True)
    mean_dv = (dvh * vh).mean(-1, keepdim=True)
    return rstd * (dvh - mean_d - vh * mean_dv)


def input_forward(P: Tensor, g_ih: Tensor, b: Tensor | None) -> tuple[Tensor, Tensor]:
    """(a, st): a_t = gamma_ih a^_t + b, a^_t = LN(P_t), P_t = W_ih x_t, all steps (the Python
    loops'; the C++ loops normalise P row by row in the time loop), st (T, B, 2) each row's
    (mean, rstd), saved with P for the backward to recompute a^ (not kept: 32 MB at B32 T256
    H256 in an LSTM)."""
    var, mean = torch.var_mean(P, -1, correction=0, keepdim=True)
    rstd = torch.rsqrt(var + EPS)
    a = (P - mean) * rstd * g_ih
    return (a if b is None else a + b), torch.cat([mean, rstd], -1)


def input_backward(dA: Tensor, dU: Tensor, rh: Tensor, inputs) -> tuple[Tensor, tuple]:
    """(dP, (dgamma_ih, db_ih, dgamma_hh, db_hh)) from the Python loops' dA (of a_t) and dU (of
    u_t = gamma_hh r^_t + b_hh); inputs = (P, st, gamma_ih) with st from `input_forward`. The
    C++ loops do this per row, summing the gradients of the gains and biases per thread
    (`native_sums`)."""
    P, st, g_ih = inputs
    rs_a = st[..., 1:]
    ah = (P - st[..., :1]) * rs_a
    sums = ((dA * ah).sum((0, 1)), dA.sum((0, 1)), (dU * rh).sum((0, 1)), dU.sum((0, 1)))
    return normalise_backward(dA * g_ih, ah, rs_a), sums


def accumulators(n: int, like: Tensor) -> Tensor:
    """Zeroed per-thread sums (threads, n) that a C++ backward loop fills (native_ln.cpp)."""
    return like.new_zeros(torch.get_num_threads(), n)


def native_sums(acc: Tensor, parts: int) -> tuple[Tensor, ...]:
    """The per-thread sums of `accumulators`, summed over threads and split in `parts`."""
    return acc.sum(0).chunk(parts)


def step_weight(w: Tensor, steps) -> gemm.StepWeight:
    """W ready for a loop's step products x W^T, for at most B rows, one product per step: on
    the C++ loops' tiles where they take it (native._recurrent_weight), else on the GEMM
    library gemm.step_weight picks (MKL's packed GEMM where it wins)."""
    w = w.contiguous()
    if native.loaded() is None:
        return gemm.step_weight(w, steps[0][1], len(steps))
    return native._recurrent_weight(w, steps[0][1], len(steps))


def fresh(name: str, shape, like: Tensor, steps) -> Tensor:
    """A recycled (workspace.py) tensor for the forward to fill and save, padded rows zeroed
    (the loops write only the running rows)."""
    return _mask_padding(recycled(name, shape, like), steps)


def scratch(name: str, shape, like: Tensor, steps) -> Tensor:
    """A backward's buffer (workspace.py), padded rows zeroed (the loops write the rest)."""
    return _mask_padding(buffer(name, shape, like), steps)


class LayerNormFunction(Function):
    """One layer-normalised layer in one direction over a sequence (module docstring); `loops`
    the cell's module (ln_lstm, ln_gru or ln_rnn). c0, g_c, b_c (the LSTM's cell LayerNorm) and
    w_hr (its projection) None where they do not apply."""

    @staticmethod
    def forward(ctx, loops, x, h0, c0, w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, g_c, b_c, w_hr, noise,
                batch_sizes, nonlinearity, cells):  # fmt: skip
        ctx.steps = steps = _steps(batch_sizes, *x.shape[:2])
        ctx.loops, ctx.native, ctx.nonlinearity = loops, native.for_cpu(x) is not None, nonlinearity
        ctx.noise = noise = contiguous(noise)
        P = _project(x, w_ih, None, "ln.P")  # W_ih x_t (T, B, GH), saved
        weights = (w_hh, b_hh, g_hh, g_c, b_c, w_hr, noise)
        out, finals, P, st_a, saved = loops.forward(P, g_ih, b_ih, h0, c0, weights, steps,
                                                    ctx.native, nonlinearity)  # fmt: skip
        _mask_padding(out, steps)
        ctx.norms = probe.claim(len(x), x) if any(ctx.needs_input_grad) else None
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_hh, g_ih, g_hh, g_c, b_c, w_hr, P, st_a, out,
                              *saved)  # fmt: skip
        C = saved[loops.CELLS] if cells else None
        return (out, *finals) if C is None else (out, *finals, _mask_padding(C.clone(), steps))

    @staticmethod
    @_without_autocast
    @once_differentiable
    def backward(ctx, dout, *grads):
        x, h0, c0, w_ih, w_hh, b_hh, g_ih, g_hh, g_c, b_c, w_hr, P, st_a, out, *saved = (
            ctx.saved_tensors
        )
        need = ctx.needs_input_grad[1:]  # x, h0, c0, w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, ...
        rec = noise_of(ctx.noise)[0]  # recurrent dropout's mask on h_{t-1}, or None
        weights = (w_hh, g_hh, g_c, b_c, w_hr, b_hh, ctx.noise)
        grads = [g.contiguous() for g in grads]
        inputs = (P, st_a, g_ih)  # a_t = gamma_ih LN(P_t) + b, st_a: P's (mean, rstd)
        back = ctx.loops.backward(ctx.steps, ctx.native, dout.contiguous(), grads, h0, c0,
                                  weights, out, saved, inputs, ctx.nonlinearity)  # fmt: skip
        dP, dR, dh0, dc0, dg_c, db_c, dw_hr, DH, (dg_ih, db_ih, dg_hh, db_hh) = back
        if ctx.norms is not None:  # a probe.GradientRecord is open (probe.py)
            torch.linalg.vector_norm(DH, dim=(1, 2), out=ctx.norms)
        if need[1]:  # dh_0 += m dR_0 W_hh   (through r_0 = W_hh (m h_0))
            d = dR[0] @ w_hh if rec is None else (dR[0] @ w_hh) * rec
            dh0 = d if dh0 is None else dh0 + d
        h0_rec, out_rec = (h0, out) if rec is None else (h0 * rec, out * rec)  # what W_hh read
        dw_hh, _ = _recurrent_grads(dR, h0_rec, out_rec, need[4], False)
        dx, dw_ih, _ = _input_grads(dP, x, w_ih, (need[0], need[3], False))
        grads = (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dg_ih, dg_hh, dg_c, db_c, dw_hr)
        return (None, *(g if n else None for g, n in zip(grads, need)), None, None, None, None)


def layer_norm_kernel(loops, x, state, w, batch_sizes, nonlinearity=None, noise=None, cells=False):
    """A `cells.Cell` kernel: (out, state'), and every c_t last with `cells` (the LSTM's);
    w = (W_ih, W_hh, b_ih, b_hh, W_hr, gamma_ih, gamma_hh[, gamma_c, beta_c]) with W_hr and
    the biases None where absent. Through autograd only when a gradient is needed."""
    w_ih, w_hh, b_ih, b_hh, w_hr, g_ih, g_hh, *cell_ln = w
    g_c, b_c = cell_ln or (None, None)
    h0, c0 = state[0], (state[1] if len(state) > 1 else None)
    args = (x, h0, c0, w_ih, w_hh, b_ih, b_hh, g_ih, g_hh, g_c, b_c, w_hr)
    rest = (noise, batch_sizes, nonlinearity, cells)
    if _needs_grad(*args):
        res = LayerNormFunction.apply(loops, *args, *rest)
    else:
        res = LayerNormFunction.forward(_Inference(), loops, *args, *rest)
    n = len(state)
    return (res[0], list(res[1 : 1 + n]), *res[1 + n :])
