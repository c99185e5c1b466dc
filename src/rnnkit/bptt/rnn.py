"""The Elman RNN kernel (tanh or relu): forward loop and hand-written BPTT."""

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from rnnkit.bptt import gemm, native, probe
from rnnkit.bptt.common import (
    _add,
    _consts,
    _final,
    _grad_in,
    _Inference,
    _input_grads,
    _mask_padding,
    _needs_grad,
    _Prefixes,
    _project,
    _recurrent_grads,
    _rows,
    _steps,
)
from rnnkit.bptt.workspace import buffer


class RNNFunction(Function):
    """Elman RNN over a sequence: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    Forward per step (tanh): z'_t += s_{t-1} W'_hh^T; s_t = sigmoid(z'_t), where z' = 2 z and
    the state is kept as s = (h + 1) / 2, so h_{t-1} = 2 s_{t-1} - 1 folds into the GEMM:
    W'_hh = 4 W_hh and z'_t gets -2 W_hh 1 (t >= 1). h = 2 s - 1 once after the loop.
    Backward: dz_t = (dout_t + dz_{t+1} W_hh) * act'(h_t), act' = 1 - h^2 or [h > 0].
    Saved: x, out (T, B, H) and h0; the backward's workspace: D and dZ (T, B, H).
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, nonlinearity):
        T, B, _ = x.shape
        steps = _steps(batch_sizes, T, B)
        b = _add(b_ih, b_hh)
        if nonlinearity == "tanh":
            one, two, _ = _consts(x)
            Z = _project(x, 2 * w_ih, None if b is None else 2 * b, "rnn.Z")  # z' = 2 z  (T, B, H)
            if T > 1:
                Z[1:] -= 2 * w_hh.sum(1)  # -2 W_hh 1: h_{t-1} = 2 s_{t-1} - 1
            w0, w = 2 * w_hh, 4 * w_hh
        else:
            Z = _project(x, w_ih, b, "rnn.Z")
            w0 = w = w_hh
        relu = nonlinearity == "relu"
        loops = native.for_cpu(x)
        if loops is not None:  # the same loop in C++
            w_rest = gemm.step_weight(w, B, T)
            loops.rnn_forward(steps, Z, h0.contiguous(), w0, w_rest, relu)
        else:
            mm0, mm = gemm.addmm_step(w0, B), gemm.addmm_step(w, B, T)
            prev = [h0, *_rows(Z[:-1], steps[1:])]  # h_{-1}, then s_{t-1} (tanh) or h_{t-1}
            for z, h, t in zip(_rows(Z, steps), prev, range(T)):
                z = (mm if t else mm0)(z, h)
                if relu:
                    z.clamp_min_(0)  # h_t
                else:
                    z.sigmoid_()  # s_t
        out = Z if relu else Z.mul_(two).sub_(one)  # h = 2 s - 1
        h_n = _final(out, steps)
        _mask_padding(out, steps)
        ctx.save_for_backward(x, h0, w_ih, w_hh, out)
        ctx.steps, ctx.relu = steps, relu
        ctx.norms = probe.claim(T, x)
        return out, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh_n):
        x, h0, w_ih, w_hh, out = ctx.saved_tensors
        steps, need = ctx.steps, ctx.needs_input_grad
        dout = dout.contiguous()
        one, _, _ = _consts(out)
        D = buffer("rnn.D", out.shape, out)  # act'(z_t) for all steps at once
        if ctx.relu:
            torch.gt(out, 0, out=D)
        else:
            torch.mul(out, out, out=D).sub_(one).neg_()  # 1 - h^2
        # the loop writes every running row; padded rows zeroed (GEMMs read all rows)
        dZ = _mask_padding(buffer("rnn.dZ", out.shape, out), steps)
        w_hh_t = w_hh.t().contiguous()
        norms = ctx.norms  # None unless a probe.GradientRecord is open
        loops = native.for_cpu(out)
        if loops is not None:  # the same loop in C++
            w = gemm.step_weight(w_hh_t, len(h0), len(steps))
            dh = torch.empty(h0.shape, dtype=out.dtype)
            loops.rnn_backward(steps, D, dout, dh_n.contiguous(), dZ, dh, w, norms)
        else:
            _backward_loop(steps, D, dout, dh_n, dZ, h0, w_hh_t, norms)
        dh0 = gemm.linear(dZ[0], w_hh_t) if need[1] else None
        dw_hh, db_hh = _recurrent_grads(dZ, h0, out, need[3], need[5] or need[4])
        dx, dw_ih, _ = _input_grads(dZ, x, w_ih, (need[0], need[2], False))
        db_ih = db_hh if need[4] else None
        return dx, dh0, dw_ih, dw_hh, db_ih, db_hh if need[5] else None, None, None


def _backward_loop(steps, D, dout, dh_n, dZ, h0, w_hh_t, norms):
    """The backward's reverse-time loop in Python: fills dZ."""
    dh = _Prefixes(torch.empty_like(h0))
    dZs, Ds, douts = _rows(dZ, steps), _rows(D, steps), _rows(dout, steps)
    mm = gemm.addmm_out_step(w_hh_t, len(h0), len(steps))
    for t, bt, bn in reversed(steps):
        if bn:  # dh_t = dout_t + dz_{t+1} W_hh   (backprop through the recurrent GEMM)
            mm(douts[t] if bn == bt else douts[t][:bn], dZs[t + 1], dh[bn])
        dh_t = _grad_in(dout, dh_n, t, bt, bn, dh[bt])
        if norms is not None:
            torch.linalg.vector_norm(dh_t, out=norms[t])
        torch.mul(dh_t, Ds[t], out=dZs[t])  # dz_t = dh_t act'(z_t)   (through act)


def rnn(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None, nonlinearity="tanh"):
    """The Elman RNN kernel: (out, h_n); through autograd only when a gradient is needed."""
    args = (x, h0, w_ih, w_hh, b_ih, b_hh)
    if _needs_grad(*args):
        return RNNFunction.apply(*args, batch_sizes, nonlinearity)
    return RNNFunction.forward(_Inference(), *args, batch_sizes, nonlinearity)
