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
from rnnkit.bptt.layer_norm import noise_of, normalise, normalise_backward

CELLS = None  # no cell state


def forward(a, h0, c0, weights, steps, use_native, nonlinearity="tanh"):
    """(out (T, B, H), [h_n], saved = (R, rstd_r[, h~])), h~ with zoneout only."""
    w_hh, b_hh, g_hh, noise = *weights[:3], weights[-1]
    m, k, _ = noise_of(noise)
    T, B, H = a.shape
    relu = nonlinearity == "relu"
    Z = a.clone() if b_hh is None else a + b_hh  # z_t, then h_t, in place
    R, rs_r, h_n = a.new_zeros(T, B, H), a.new_zeros(T, B, 1), torch.empty_like(h0)
    saved = (R, rs_r) if k is None else (R, rs_r, a.new_zeros(T, B, H))
    if use_native:  # the same loop in C++
        h_tilde = saved[2] if k is not None else None
        native.load().ln_rnn_forward(steps, Z, h0.contiguous(), w_hh, g_hh, m, k, relu, h_n, R,
                                     rs_r, h_tilde)  # fmt: skip
        return Z, [h_n], saved
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
    return Z, [h_n], saved


def backward(steps, use_native, dout, grads, h0, c0, weights, out, saved, nonlinearity="tanh"):
    """(dZ, dZ, dR, dh0's direct part k_0 dh_0, None, None, None, None, DH) as
    layer_norm.LayerNormFunction takes them; grads: [dh_n]."""
    w_hh, g_hh, noise = *weights[:2], weights[-1]
    m, k, _ = noise_of(noise)
    R, rs_r, *h_tilde = saved
    h = h_tilde[0] if h_tilde else out  # h~_t
    D = (h > 0).to(h.dtype) if nonlinearity == "relu" else 1 - h * h  # act'(z_t)
    if k is not None:
        D = D * (1 - k)  # (through h_t = ... + (1 - k) h~_t)
    dZ, dR, DH = R.new_zeros(R.shape), R.new_zeros(R.shape), R.new_zeros(R.shape)
    args = (D, R, rs_r, w_hh, g_hh, m, k, dout, grads[0], dZ, dR, DH)
    (native.load().ln_rnn_backward if use_native else _backward_loop)(steps, *args)
    dh0 = None if k is None else k[0] * DH[0]  # (through h_0' = k_0 h_0 + ...)
    return dZ, dZ, dR, dh0, None, None, None, None, DH


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
