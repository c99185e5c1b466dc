"""The layer-normalised Elman RNN's time loops (bptt/layer_norm.py has the rest of its
kernel): the Python loops, plain per-step code (the reference and the path for CUDA), and the
calls into their C++ twins (native_ln.cpp), which take and fill the same tensors.

    a_t (T, B, H): gamma_ih LN(W_ih x_t) + b_ih, with b_hh added here (it adds to z_t alike)
    r^_t = LN(W_hh h_{t-1})    z_t = a_t + gamma_hh r^_t    h_t = act(z_t), tanh or relu
    (W_hh (m h_{t-1}) with recurrent dropout's mask m (B, H), and m dR_{t+1} W_hh below)

Backward per step: dh_t = dout_t + dR_{t+1} W_hh, dz_t = dh_t act'(z_t) (1 - h_t^2, or
[h_t > 0]), dR_t = rstd_r (gamma_hh dz_t ...) (through r^_t = LN(r_t)). Saved: r^ R (T, B, H),
rstd_r (T, B, 1) and out.
"""

import torch

from rnnkit.bptt import native
from rnnkit.bptt.layer_norm import normalise, normalise_backward

CELLS = None  # no cell state


def forward(a, h0, c0, weights, steps, use_native, nonlinearity="tanh"):
    """(out (T, B, H), [h_n], saved = (R, rstd_r))."""
    w_hh, b_hh, g_hh, m = *weights[:3], weights[-1]  # m: recurrent dropout's mask, or None
    T, B, H = a.shape
    relu = nonlinearity == "relu"
    Z = a.clone() if b_hh is None else a + b_hh  # z_t, then h_t, in place
    R, rs_r, h_n = a.new_zeros(T, B, H), a.new_zeros(T, B, 1), torch.empty_like(h0)
    if use_native:  # the same loop in C++
        native.load().ln_rnn_forward(steps, Z, h0.contiguous(), w_hh, g_hh, m, relu, h_n, R, rs_r)
        return Z, [h_n], (R, rs_r)
    for t, bt, bn in steps:
        h_prev = (Z[t - 1] if t else h0)[:bt]
        h_rec = h_prev if m is None else h_prev * m[:bt]  # m h_{t-1}
        r_hat, rs = normalise(h_rec @ w_hh.t())  # r^_t = LN(W_hh (m h_{t-1}))
        z = Z[t, :bt].addcmul_(g_hh, r_hat)  # z_t = a_t + gamma_hh r^_t
        z.clamp_min_(0) if relu else z.tanh_()  # h_t
        R[t, :bt], rs_r[t, :bt] = r_hat, rs
        h_n[bn:bt] = z[bn:bt]  # rows [bn, bt) end here
    return Z, [h_n], (R, rs_r)


def backward(steps, use_native, dout, grads, h0, c0, weights, out, saved, nonlinearity="tanh"):
    """(dZ, dZ, dR, None, None, None, None, None) as layer_norm.LayerNormFunction takes them;
    grads: [dh_n]."""
    w_hh, g_hh, m = *weights[:2], weights[-1]
    R, rs_r = saved
    relu = nonlinearity == "relu"
    D = (out > 0).to(out.dtype) if relu else 1 - out * out  # act'(z_t)
    dZ, dR = R.new_zeros(R.shape), R.new_zeros(R.shape)
    args = (D, R, rs_r, w_hh, g_hh, m, dout, grads[0], dZ, dR)
    (native.load().ln_rnn_backward if use_native else _backward_loop)(steps, *args)
    return dZ, dZ, dR, None, None, None, None, None


def _backward_loop(steps, D, R, rs_r, w_hh, g_hh, m, dout, dh_n, dZ, dR):
    """The reverse-time loop in Python: fills dZ and dR (module docstring)."""
    for t, bt, bn in reversed(steps):
        dh = dout[t, :bt].clone()
        if bn:  # through r_{t+1} = W_hh (m h_t)
            rec = dR[t + 1, :bn] @ w_hh
            dh[:bn] += rec if m is None else rec * m[:bn]
        dh[bn:] += dh_n[bn:bt]  # rows ending at t
        dZ[t, :bt] = dh * D[t, :bt]  # dz_t   (through h_t = act(z_t))
        dR[t, :bt] = normalise_backward(g_hh * dZ[t, :bt], R[t, :bt], rs_r[t, :bt])  # (r^_t)
