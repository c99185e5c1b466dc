"""The layer-normalised Elman RNN's time loops (bptt/layer_norm.py has the rest of its
kernel): the Python loops, plain per-step code (the reference and the path for CUDA), and the
calls into their C++ twins (native_ln.cpp), which take and fill the same tensors.

    a_t (T, B, H): gamma_ih LN(W_ih x_t) + b_ih, with b_hh added here (it adds to z_t alike)
    r^_t = LN(W_hh (m h_{t-1}))    z_t = a_t + gamma_hh r^_t    h~_t = act(z_t), tanh or relu
    h_t = k h_{t-1} + (1 - k) h~_t

with the regularisers in the loop (regularisers.Noise, the kernel's rows): recurrent dropout's
mask m (B, H), zoneout's k (T, B, H); without them m = 1, k = 0 (h = h~). Backward per step:
dh_t = dout_t + m dR_{t+1} W_hh + k_{t+1} dh_{t+1}, dz_t = dh_t D_t with D = (1 - k)
act'(z_t) (1 - h~_t^2, or [h~_t > 0]), dR_t = rstd_r (gamma_hh dz_t ...) (through r^_t =
LN(r_t)); dh_0's direct part k_0 dh_0. Saved: r^ R (T, B, H), rstd_r (T, B, 1), out, and with
zoneout h~ (T, B, H); the backward's dh (T, B, H) kept.
"""

import torch

from rnnkit.bptt import native
from rnnkit.bptt.common import _add
from rnnkit.bptt.layer_norm import (
    accumulators,
    fresh,
    input_backward,
    input_forward,
    native_sums,
    noise_of,
    normalise,
    normalise_backward,
    scratch,
    step_weight,
)

CELLS = None  # no cell state


def forward(P, g_ih, b_ih, h0, c0, weights, steps, use_native, nonlinearity="tanh"):
    """(out (T, B, H), [h_n], P, (mean, rstd) of P, saved = (R, rstd_r[, h~])) from P = W_ih x_t
    (T, B, H), normalised in the loop (not in place); h~ with zoneout only."""
    w_hh, b_hh, g_hh, noise = *weights[:3], weights[-1]
    m, k, _ = noise_of(noise)
    T, B, H = P.shape
    relu = nonlinearity == "relu"
    b = _add(b_ih, b_hh)  # b_hh adds to z_t as b_ih does
    R, h_n = fresh("ln_rnn.R", P.shape, P, steps), torch.empty_like(h0)
    st_a, rs_r = P.new_zeros(T, B, 2), P.new_zeros(T, B, 1)
    h_tilde = None if k is None else fresh("ln_rnn.h~", P.shape, P, steps)
    saved = (R, rs_r) if k is None else (R, rs_r, h_tilde)
    if use_native:  # the same loop in C++, h_t (in Z) written in its rows
        Z = fresh("ln_rnn.Z", P.shape, P, steps)
        b = P.new_zeros(P.shape[2]) if b is None else b  # the rows add it
        w_step = step_weight(w_hh, steps)  # products x W_hh^T
        native.load().ln_rnn_forward(steps, P, st_a, g_ih, b, h0.contiguous(), w_step, g_hh, m, k,
                                     relu, Z, h_n, R, rs_r, h_tilde)  # fmt: skip
        return Z, [h_n], P, st_a, saved
    Z, st_a = input_forward(P, g_ih, b)  # z_t, then h_t, in place
    for t, bt, bn in steps:
        h_prev = (Z[t - 1] if t else h0)[:bt]
        h_rec = h_prev if m is None else h_prev * m[:bt]  # m h_{t-1}
        r_hat, rs = normalise(h_rec @ w_hh.t())  # r^_t = LN(W_hh (m h_{t-1}))
        z = Z[t, :bt].addcmul_(g_hh, r_hat)  # z_t = a_t + gamma_hh r^_t
        z.clamp_min_(0) if relu else z.tanh_()  # h~_t
        if k is not None:
            saved[2][t, :bt] = z
            z.lerp_(h_prev, k[t, :bt])  # h_t = k h_{t-1} + (1 - k) h~_t
        R[t, :bt], rs_r[t, :bt] = r_hat, rs
        h_n[bn:bt] = z[bn:bt]  # rows [bn, bt) end here
    return Z, [h_n], P, st_a, saved


def backward(
    steps, use_native, dout, grads, h0, c0, weights, out, saved, inputs, nonlinearity="tanh"
):
    """(dP, dR, dh0's direct part k_0 dh_0, None, None, None, None, DH, (dgamma_ih, db_ih,
    dgamma_hh, db_hh)) as layer_norm.LayerNormFunction takes them; grads: [dh_n]; inputs:
    (a^, rstd_a, gamma_ih)."""
    w_hh, g_hh, noise = *weights[:2], weights[-1]
    m, k, _ = noise_of(noise)
    R, rs_r, *h_tilde = saved
    h = h_tilde[0] if h_tilde else out  # h~_t
    D = (h > 0).to(h.dtype) if nonlinearity == "relu" else 1 - h * h  # act'(z_t)
    if k is not None:
        D = D * (1 - k)  # (through h_t = ... + (1 - k) h~_t)
    if use_native:  # dz_t never leaves the rows: dP and the sums come from them
        P, st_a, g_ih = inputs
        dP, dR = scratch("ln.dP", R.shape, R, steps), scratch("ln.dR", R.shape, R, steps)
        DH = scratch("ln.DH", R.shape, R, steps)
        acc = accumulators(4 * R.shape[2], R)
        w_step = step_weight(w_hh.t(), steps)  # products x W_hh
        native.load().ln_rnn_backward(steps, D, P, st_a, R, rs_r, w_step, g_ih, g_hh, m, k, dout,
                                      grads[0], dP, dR, DH, acc)  # fmt: skip
        sums = native_sums(acc, 4)
    else:
        dZ, dR, DH = R.new_zeros(R.shape), R.new_zeros(R.shape), R.new_zeros(R.shape)
        _backward_loop(steps, D, R, rs_r, w_hh, g_hh, m, k, dout, grads[0], dZ, dR, DH)
        dP, sums = input_backward(dZ, dZ, R, inputs)
    dh0 = None if k is None else k[0] * DH[0]  # (through h_0' = k_0 h_0 + ...)
    return dP, dR, dh0, None, None, None, None, DH, sums


def _backward_loop(steps, D, R, rs_r, w_hh, g_hh, m, k, dout, dh_n, dZ, dR, DH):
    """The reverse-time loop in Python: fills dZ, dR and DH (module docstring)."""
    for t, bt, bn in reversed(steps):
        dh = DH[t, :bt]
        dh.copy_(dout[t, :bt])
        if bn:  # through r_{t+1} = W_hh (m h_t) and h_{t+1} = k h_t + ...
            rec = dR[t + 1, :bn] @ w_hh
            dh[:bn] += rec if m is None else rec * m[:bn]
            if k is not None:
                dh[:bn] += k[t + 1, :bn] * DH[t + 1, :bn]
        dh[bn:] += dh_n[bn:bt]  # rows ending at t
        dZ[t, :bt] = dh * D[t, :bt]  # dz_t   (through h_t = act(z_t))
        dR[t, :bt] = normalise_backward(g_hh * dZ[t, :bt], R[t, :bt], rs_r[t, :bt])  # (r^_t)
