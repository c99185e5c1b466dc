"""The layer-normalised LSTM's time loops (bptt/layer_norm.py has the rest of its kernel): the
Python loops, plain per-step code (the reference and the path for CUDA), and the calls into
their C++ twins (native_ln.cpp), which take and fill the same tensors.

    a_t (T, B, 4H): gamma_ih LN(W_ih x_t) + b_ih, with b_hh added here (it adds to z_t alike)
    r^_t = LN(W_hh (m h_{t-1}))             z_t = a_t + gamma_hh r^_t          (B, 4H)
    i, f, o = sigmoid(z_i, z_f, z_o)        g = tanh(z_g)
    c~_t = f c_{t-1} + i g                  c^_t = LN(c~_t)                     (B, H)
    m_t = o tanh(gamma_c c^_t + beta_c)     h~_t = m_t, or W_hr m_t with a projection (B, P)
    c_t = k_c c_{t-1} + (1 - k_c) c~_t      h_t = k_h h_{t-1} + (1 - k_h) h~_t

with the regularisers in the loop (regularisers.Noise, the kernel's rows): recurrent dropout's
mask m (B, P), zoneout's k_h (T, B, P), k_c (T, B, H); without them m = 1, k = 0 (c = c~).
Backward per step, y_t = gamma_c c^_t + beta_c (layer_norm.py's docstring for LN's):
    dh_t = dout_t + m dR_{t+1} W_hh + k_h,t+1 dh_{t+1}
    dh~_t = (1 - k_h) dh_t                  dm_t = dh~_t (dh~_t W_hr with a projection)
    dz_o = dm_t tanh(y_t) o (1 - o)         dy_t = dm_t o (1 - tanh^2 y_t)
    dc~_t = (1 - k_c) dc_t + rstd_c (gamma_c dy_t ...)     (through c^_t = LN(c~_t))
    dz_i = dc~_t g i (1 - i)   dz_f = dc~_t c_{t-1} f (1 - f)   dz_g = dc~_t i (1 - g^2)
    dc_{t-1} = k_c dc_t + f dc~_t           dR_t = rstd_r (gamma_hh dz_t ...)   (through r^_t)
and after the loop dgamma_c = sum dy c^, dbeta_c = sum dy, dW_hr = sum dh~_t^T m_t, dh_0's
direct part k_h,0 dh_0. Saved: gates Z and r^ R (T, B, 4H), c C and c^ (T, B, H), rstd of r
and c~ (T, B, 1), out; the backward's dh (T, B, P) kept.
"""

import torch

from rnnkit.bptt import native
from rnnkit.bptt.common import _add, _mask_padding
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

CELLS = 2  # saved[CELLS] is C, every c_t (LSTM.forward_with_cells)


def forward(P, g_ih, b_ih, h0, c0, weights, steps, use_native, nonlinearity=None):
    """(out (T, B, P), [h_n, c_n], P, (mean, rstd) of P, saved = (R, rstd_r, C, C^, rstd_c, Z)) from
    P = W_ih x_t (T, B, 4H), normalised in the loop (not in place)."""
    w_hh, b_hh, g_hh, g_c, b_c, w_hr, noise = weights
    m, k_h, k_c = noise_of(noise)
    T, B, G = P.shape
    H = G // 4
    b = _add(b_ih, b_hh)  # b_hh adds to z_t as b_ih does
    R, C, Ch = (fresh(n, s, P, steps) for n, s in (("ln_lstm.R", P.shape), ("ln_lstm.C", (T, B, H)),
                                                 ("ln_lstm.Ch", (T, B, H))))  # fmt: skip
    st_a, rs_r, rs_c = P.new_zeros(T, B, 2), P.new_zeros(T, B, 1), P.new_zeros(T, B, 1)
    out = fresh("ln_lstm.out", (T, B, h0.shape[1]), P, steps)
    h_n, c_n = torch.empty_like(h0), torch.empty_like(c0)
    if use_native:  # the same loop in C++, the gates Z written in its rows
        Z = fresh("ln_lstm.Z", P.shape, P, steps)
        saved = (R, rs_r, C, Ch, rs_c, Z)
        b = P.new_zeros(P.shape[2]) if b is None else b  # the rows add it
        w_step = step_weight(w_hh, steps)  # products x W_hh^T
        native.load().ln_lstm_forward(steps, P, st_a, g_ih, b, h0.contiguous(), c0.contiguous(),
                                      w_step, g_hh, g_c, b_c, w_hr, m, k_h, k_c, Z, out, h_n, c_n,
                                      *saved[:5])  # fmt: skip
        return out, [h_n, c_n], P, st_a, saved
    Z, st_a = input_forward(P, g_ih, b)  # the gates, in place
    saved = (R, rs_r, C, Ch, rs_c, Z)
    for t, bt, bn in steps:
        h_prev, c_prev = (out[t - 1] if t else h0)[:bt], (C[t - 1] if t else c0)[:bt]
        h_rec = h_prev if m is None else h_prev * m[:bt]  # m h_{t-1}
        R[t, :bt], rs_r[t, :bt] = normalise(h_rec @ w_hh.t())  # r^_t = LN(W_hh (m h_{t-1}))
        z = Z[t, :bt].addcmul_(g_hh, R[t, :bt])  # z_t = a_t + gamma_hh r^_t
        i, f, g, o = z.unflatten(1, (4, H)).unbind(1)
        i.sigmoid_(), f.sigmoid_(), g.tanh_(), o.sigmoid_()
        c = f * c_prev + i * g  # c~_t
        Ch[t, :bt], rs_c[t, :bt] = normalise(c)  # c^_t = LN(c~_t)
        h = o * torch.tanh(torch.addcmul(b_c, g_c, Ch[t, :bt]))  # m_t = o tanh(y_t)
        if w_hr is not None:
            h = h @ w_hr.t()  # h~_t = W_hr m_t
        if k_c is not None:
            c = torch.lerp(c, c_prev, k_c[t, :bt])  # c_t = k_c c_{t-1} + (1 - k_c) c~_t
        if k_h is not None:
            h = torch.lerp(h, h_prev, k_h[t, :bt])  # h_t = k_h h_{t-1} + (1 - k_h) h~_t
        out[t, :bt], C[t, :bt] = h, c
        h_n[bn:bt], c_n[bn:bt] = h[bn:bt], c[bn:bt]  # rows [bn, bt) end here
    return out, [h_n, c_n], P, st_a, saved


def backward(
    steps, use_native, dout, grads, h0, c0, weights, out, saved, inputs, nonlinearity=None
):
    """(dP, dR, dh0 but its dR_0 W_hh part, dc0, dgamma_c, dbeta_c, dW_hr, DH, (dgamma_ih,
    db_ih, dgamma_hh, db_hh)) as layer_norm.LayerNormFunction takes them; grads: [dh_n, dc_n]
    and with the cells dC; inputs: (P, (mean, rstd) of P, gamma_ih)."""
    w_hh, g_hh, g_c, b_c, w_hr, _, noise = weights  # (b_hh: in the saved gates)
    m, k_h, k_c = noise_of(noise)
    R, rs_r, C, Ch, rs_c, Z = saved
    dh_n, dc_n, *dC = grads
    dC = dC[0] if dC else None
    H = C.shape[2]
    dc = dc_n.clone()  # rows not yet running hold dL/dc_n until their last step
    args = (Z, R, rs_r, C, Ch, rs_c, c0, w_hh, g_hh, g_c, b_c, w_hr, m, k_h, k_c, dout, dh_n, dC)
    if use_native:  # dz_t never leaves the rows: dP and the sums come from them
        P, st_a, g_ih = inputs
        dP, dR = scratch("ln.dP", Z.shape, Z, steps), scratch("ln.dR", Z.shape, Z, steps)
        DH = scratch("ln.DH", out.shape, out, steps)  # dh_t
        acc, acc_c = accumulators(16 * H, Z), accumulators(2 * H, Z)
        w_step = step_weight(w_hh.t(), steps)  # products x W_hh
        native.load().ln_lstm_backward(steps, Z, P, st_a, R, rs_r, C, Ch, rs_c, c0, w_step, g_ih,
                                       g_hh, g_c, b_c, w_hr, m, k_h, k_c, dout, dh_n, dC, dc, dP,
                                       dR, DH, acc, acc_c)  # fmt: skip
        sums, (dg_c, db_c) = native_sums(acc, 4), native_sums(acc_c, 2)
    else:
        dZ, dR, DY = Z.new_zeros(Z.shape), R.new_zeros(R.shape), C.new_zeros(C.shape)
        DH = out.new_zeros(out.shape)  # dh_t
        _backward_loop(steps, *args, dc, dZ, dR, DY, DH)
        dP, sums = input_backward(dZ, dZ, R, inputs)
        dg_c, db_c = (DY * Ch).sum((0, 1)), DY.sum((0, 1))
    dw_hr = None
    if w_hr is not None:  # dW_hr = sum_t dh~_t^T m_t, m_t = o tanh(y_t)
        M = _mask_padding(Z[:, :, 3 * H :] * torch.tanh(torch.addcmul(b_c, g_c, Ch)), steps)
        DHt = DH if k_h is None else DH * (1 - k_h)
        dw_hr = DHt.flatten(0, 1).t() @ M.flatten(0, 1)
    dh0 = None if k_h is None else k_h[0] * DH[0]  # (through h_0' = k_h h_0 + ...)
    return dP, dR, dh0, dc, dg_c, db_c, dw_hr, DH, sums


def _backward_loop(steps, Z, R, rs_r, C, Ch, rs_c, c0, w_hh, g_hh, g_c, b_c, w_hr, m, k_h, k_c,
                   dout, dh_n, dC, dc, dZ, dR, DY, DH):  # fmt: skip
    """The reverse-time loop in Python: fills dZ, dR, DY (dL/dy_t) and DH, leaves dL/dc_0 in
    dc (module docstring)."""
    H = C.shape[2]
    i, f, g, o = Z.unflatten(2, (4, H)).unbind(2)
    for t, bt, bn in reversed(steps):
        if dC is not None:
            dc[:bt] += dC[t, :bt]  # the returned c_t's own gradient
        dh = DH[t, :bt]
        dh.copy_(dout[t, :bt])
        if bn:  # through r_{t+1} = W_hh (m h_t) and h_{t+1} = k_h h_t + ...
            rec = dR[t + 1, :bn] @ w_hh
            dh[:bn] += rec if m is None else rec * m[:bn]
            if k_h is not None:
                dh[:bn] += k_h[t + 1, :bn] * DH[t + 1, :bn]
        dh[bn:] += dh_n[bn:bt]  # rows ending at t
        dh_t = dh if k_h is None else (1 - k_h[t, :bt]) * dh  # dh~_t
        dm = dh_t if w_hr is None else dh_t @ w_hr  # (through h~_t = W_hr m_t)
        i_t, f_t, g_t, o_t = (v[t, :bt] for v in (i, f, g, o))
        tc = torch.tanh(torch.addcmul(b_c, g_c, Ch[t, :bt]))  # tanh y_t
        dz = dZ[t, :bt].unflatten(1, (4, H))
        dz[:, 3] = dm * tc * o_t * (1 - o_t)  # dz_o   (through o)
        dy = DY[t, :bt]
        torch.mul(dm * o_t, 1 - tc * tc, out=dy)  # dy_t   (through m_t = o tanh(y_t))
        d_c = dc[:bt] if k_c is None else (1 - k_c[t, :bt]) * dc[:bt]
        d_c = d_c + normalise_backward(g_c * dy, Ch[t, :bt], rs_c[t, :bt])  # dc~_t   (c^_t)
        c_prev = (C[t - 1] if t else c0)[:bt]
        dz[:, 0] = d_c * g_t * i_t * (1 - i_t)  # dz_i   (through c~_t = f c_{t-1} + i g)
        dz[:, 1] = d_c * c_prev * f_t * (1 - f_t)  # dz_f
        dz[:, 2] = d_c * i_t * (1 - g_t * g_t)  # dz_g
        keep = 0 if k_c is None else k_c[t, :bt] * dc[:bt]  # (through c_t = k_c c_{t-1} + ...)
        dc[:bt] = keep + d_c * f_t  # dc_{t-1}
        dR[t, :bt] = normalise_backward(g_hh * dZ[t, :bt], R[t, :bt], rs_r[t, :bt])  # (r^_t)
