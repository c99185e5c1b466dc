"""The Elman RNN kernel (tanh or relu): forward loop and hand-written BPTT."""

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from rnnkit.bptt import gemm, native, probe, rnn_noise
from rnnkit.bptt.common import (
    _add,
    _dense,
    _final,
    _grad_in,
    _Inference,
    _mask_padding,
    _needs_grad,
    _one,
    _Prefixes,
    _project,
    _rows,
    _shared_grads,
    _steps,
    _without_autocast,
)
from rnnkit.bptt.workspace import buffer


class RNNFunction(Function):
    """Elman RNN over a sequence, act = tanh or relu:

        z_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh      (B, H)
        h_t = act(z_t)

    Forward: the input part of z for all steps in one GEMM, then per step z_t += h_{t-1} W_hh^T
    and h_t = act(z_t) in place (z becomes out).
    Backward per step, with D = act'(z) = 1 - h^2 or [h > 0] for all steps first:
        dh_t = dout_t + dz_{t+1} W_hh
        dz_t = dh_t * D_t
    Saved: x, out (T, B, H) and h0; the backward's workspace: D and dZ (T, B, H).

    With `noise` (regularisers.Noise: recurrent dropout's mask m (B, H), zoneout's k
    (T, B, H), in the kernel's rows): h~_t = act(W_ih x_t + b + W_hh (m h_{t-1})),
    h_t = k h_{t-1} + (1 - k) h~_t; backward dh_t = dout_t + m (dz_{t+1} W_hh) +
    k_{t+1} dh_{t+1}, dz_t = (1 - k_t) dh_t act'(z~_t) (rnn_noise.py).
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, nonlinearity, noise=None):
        steps = _steps(batch_sizes, *x.shape[:2])
        ctx.native = native.for_cpu(x) is not None
        ctx.steps, ctx.relu, ctx.noise = steps, nonlinearity == "relu", noise
        args = (x, h0, w_ih, w_hh, b_ih, b_hh, steps, ctx.relu, ctx.native, noise)
        out, h_n = rnn_forward(*args)
        ctx.save_for_backward(x, h0, w_ih, w_hh, out)
        ctx.norms = probe.claim(len(x), x)
        return out, h_n

    @staticmethod
    @_without_autocast
    @once_differentiable
    def backward(ctx, dout, dh_n):
        need = ctx.needs_input_grad
        needs = (*need[:4], need[4] or need[5])
        args = (ctx.steps, ctx.relu, ctx.native, ctx.norms, dout, dh_n, *ctx.saved_tensors, needs)
        if ctx.noise is not None:
            dx, dh0, dw_ih, dw_hh, db = rnn_noise.backward(*args, ctx.noise)
        else:
            dx, dh0, dw_ih, dw_hh, db = rnn_backward(*args)
        db_ih, db_hh = (db if need[4] else None), (db if need[5] else None)
        return dx, dh0, dw_ih, dw_hh, db_ih, db_hh, None, None, None


def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, steps, relu, use_native, noise=None):
    """The forward of `RNNFunction` (and of the rnnkit::rnn operator, bptt/ops.py) on the
    kernel's layout: (out (T, B, H), h_n (B, H)); out is also what the backward reads;
    `noise`: see RNNFunction."""
    b = _add(b_ih, b_hh)
    if use_native:  # the same loop in C++
        out = native.rnn_forward(x, h0, w_ih, w_hh, b, steps, relu, noise)
    elif noise is not None:
        out = rnn_noise.forward_loop(_project(x, w_ih, b, "rnn.Z"), h0, w_hh, steps, relu, noise)
    else:
        out = _forward_loop(_project(x, w_ih, b, "rnn.Z"), h0, w_hh, steps, relu)
    h_n = _final(out, steps)
    return _mask_padding(out, steps), h_n


def rnn_backward(steps, relu, use_native, norms, dout, dh_n, x, h0, w_ih, w_hh, out, needs):
    """The backward of `rnn_forward`: (dx, dh0, dW_ih, dW_hh, db), db the gradient of b_ih and
    of b_hh alike; None where `needs` (x, h0, W_ih, W_hh, b) is False. `use_native`: the loop
    the forward ran; norms: see probe.py."""
    dout = _dense(dout, "rnn.dout")
    one = _one(out)
    D = buffer("rnn.D", out.shape, out)  # act'(z_t) for all steps at once
    if relu:
        torch.gt(out, 0, out=D)  # [z_t > 0] = [h_t > 0]
    else:
        torch.mul(out, out, out=D).sub_(one).neg_()  # 1 - tanh^2(z_t) = 1 - h_t^2
    # the loop writes every running row; padded rows zeroed (GEMMs read all rows)
    dZ = _mask_padding(buffer("rnn.dZ", out.shape, out), steps)
    w_hh_t = w_hh.t().contiguous()
    loop = native.rnn_backward if use_native else _backward_loop
    loop(steps, D, dout, dh_n, dZ, h0, w_hh_t, norms)  # norms: see probe.py
    dh0 = gemm.linear(dZ[0], w_hh_t) if needs[1] else None
    dx, dw_ih, dw_hh, db = _shared_grads(dZ, x, w_ih, h0, out, [needs[i] for i in (0, 2, 3, 4)])
    return dx, dh0, dw_ih, dw_hh, db


def _forward_loop(Z, h0, w_hh, steps, relu):
    """The forward's time loop in Python, in place over Z (T, B, H), the input parts of z,
    which becomes out."""
    T, B, _ = Z.shape
    mm = gemm.addmm_step(w_hh, B, T)
    prev = [h0, *_rows(Z[:-1], steps[1:])]  # h_{t-1}
    for z, h in zip(_rows(Z, steps), prev):
        mm(z, h)  # z_t = W_ih x_t + b_ih + b_hh + W_hh h_{t-1}
        if relu:
            z.clamp_min_(0)  # h_t = relu(z_t)
        else:
            z.tanh_()  # h_t = tanh(z_t)
    return Z


def _backward_loop(steps, D, dout, dh_n, dZ, h0, w_hh_t, norms):
    """The backward's reverse-time loop in Python: fills dZ."""
    dh = _Prefixes(torch.empty_like(h0))
    dZs, Ds, douts = _rows(dZ, steps), _rows(D, steps), _rows(dout, steps)
    mm = gemm.addmm_out_step(w_hh_t, len(h0), len(steps))
    for t, bt, bn in reversed(steps):
        if bn:  # dh_t = dout_t + dz_{t+1} W_hh   (through z_{t+1} = ... + W_hh h_t)
            mm(douts[t] if bn == bt else douts[t][:bn], dZs[t + 1], dh[bn])
        dh_t = _grad_in(dout, dh_n, t, bt, bn, dh[bt])  # rows ending at t: dout_t + dh_n
        if norms is not None:
            torch.linalg.vector_norm(dh_t, out=norms[t])
        torch.mul(dh_t, Ds[t], out=dZs[t])  # dz_t = dh_t act'(z_t)   (through h_t = act(z_t))


def rnn(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None, nonlinearity="tanh", noise=None):
    """The Elman RNN kernel: (out, h_n); through autograd only when a gradient is needed.
    noise: the regularisers in the kernel (regularisers.Noise, kernel's rows) or None."""
    args = (x, h0, w_ih, w_hh, b_ih, b_hh)
    if _needs_grad(*args):
        return RNNFunction.apply(*args, batch_sizes, nonlinearity, noise)
    return RNNFunction.forward(_Inference(), *args, batch_sizes, nonlinearity, noise)
