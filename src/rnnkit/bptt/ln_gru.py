"""The layer-normalised GRU's time loops (bptt/layer_norm.py has the rest of its kernel): the
Python loops, plain per-step code (the reference and the path for CUDA), and the calls into
their C++ twins (native_ln.cpp), which take and fill the same tensors.

    a_t (T, B, 3H): gamma_ih LN(W_ih x_t) + b_ih
    r^_t = LN(W_hh (m h_{t-1}))   u_t = gamma_hh r^_t + b_hh   (B, 3H: normalised over all 3H)
    r = sigmoid(a_r + u_r)    z = sigmoid(a_z + u_z)    n = tanh(a_n + r u_n)
    h~_t = (1 - z) n + z h_{t-1}          h_t = k h_{t-1} + (1 - k) h~_t

with the regularisers in the loop (regularisers.Noise, the kernel's rows): recurrent dropout's
mask m (B, H), zoneout's k (T, B, H); without them m = 1, k = 0. Backward per step,
K_n = (1 - z)(1 - n^2), zk = k_{t+1} + (1 - k_{t+1}) z_{t+1}, dh~_t = (1 - k_t) dh_t:
    dh_t = dout_t + zk dh_{t+1} + m dR_{t+1} W_hh
    du_r = da_r = dh~_t K_n u_n r (1 - r)     du_z = da_z = dh~_t (h_{t-1} - n) z (1 - z)
    da_n = dh~_t K_n                          du_n = dh~_t K_n r
    dR_t = rstd_r (gamma_hh du_t ...)         (through r^_t = LN(r_t))
and dh_0's direct part zk_0 dh_0. Saved: r^ R, gates A = [r, z, n] and U (T, B, 3H; the Python
loops' only: the C++ backward recomputes u_n from r^), rstd_r;
the backward's dh (T, B, H) kept.
"""

import torch

from rnnkit.bptt import native
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


def forward(P, g_ih, b_ih, h0, c0, weights, steps, use_native, nonlinearity=None):
    """(out (T, B, H), [h_n], P, (mean, rstd) of P, saved = (R, rstd_r, A, U)) from P = W_ih x_t
    (T, B, 3H), normalised in the loop (not in place)."""
    w_hh, b_hh, g_hh, noise = *weights[:3], weights[-1]
    m, k, _ = noise_of(noise)
    T, B, G = P.shape
    H = G // 3
    R = fresh("ln_gru.R", P.shape, P, steps)
    out, h_n = fresh("ln_gru.out", (T, B, H), P, steps), P.new_zeros(B, H)
    st_a, rs_r = P.new_zeros(T, B, 2), P.new_zeros(T, B, 1)
    if use_native:  # the same loop in C++, the gates A written in its rows
        A = fresh("ln_gru.A", P.shape, P, steps)
        zeros = P.new_zeros(G)
        b_ih, b_hh = (zeros if v is None else v for v in (b_ih, b_hh))
        w_step = step_weight(w_hh, steps)  # products x W_hh^T
        native.load().ln_gru_forward(steps, P, st_a, g_ih, b_ih, h0.contiguous(), w_step, g_hh,
                                     b_hh, m, k, A, out, h_n, R, rs_r)  # fmt: skip
        return out, [h_n], P, st_a, (R, rs_r, A, None)  # no U: its backward recomputes u_n
    A, st_a = input_forward(P, g_ih, b_ih)  # a_t, then the gates [r, z, n], in place
    U = fresh("ln_gru.U", P.shape, P, steps)
    saved = (R, rs_r, A, U)
    for t, bt, bn in steps:
        h_prev = (out[t - 1] if t else h0)[:bt]
        h_rec = h_prev if m is None else h_prev * m[:bt]  # m h_{t-1}
        r_hat, rs = normalise(h_rec @ w_hh.t())  # r^_t = LN(W_hh (m h_{t-1}))
        u = g_hh * r_hat if b_hh is None else torch.addcmul(b_hh, g_hh, r_hat)  # u_t
        a_r, a_z, a_n = A[t, :bt].unflatten(1, (3, H)).unbind(1)
        u_r, u_z, u_n = u.unflatten(1, (3, H)).unbind(1)
        r, z = torch.sigmoid(a_r + u_r), torch.sigmoid(a_z + u_z)
        n = torch.tanh(a_n + r * u_n)
        h = torch.lerp(n, h_prev, z)  # h~_t = (1 - z) n + z h_{t-1}
        if k is not None:
            h = torch.lerp(h, h_prev, k[t, :bt])  # h_t = k h_{t-1} + (1 - k) h~_t
        A[t, :bt], U[t, :bt], R[t, :bt], rs_r[t, :bt] = torch.cat([r, z, n], 1), u, r_hat, rs
        out[t, :bt] = h
        h_n[bn:bt] = h[bn:bt]  # rows [bn, bt) end here
    return out, [h_n], P, st_a, saved


def backward(
    steps, use_native, dout, grads, h0, c0, weights, out, saved, inputs, nonlinearity=None
):
    """(dP, dR, dh0's direct part zk_0 dh_0, None, None, None, None, DH, (dgamma_ih, db_ih,
    dgamma_hh, db_hh)) as layer_norm.LayerNormFunction takes them; grads: [dh_n]; inputs:
    (a^, rstd_a, gamma_ih)."""
    w_hh, g_hh, b_hh, noise = *weights[:2], *weights[-2:]
    m, k, _ = noise_of(noise)
    R, rs_r, A, U = saved
    H = out.shape[2]
    if use_native:  # da_t, du_t never leave the rows: dP and the sums come from them
        P, st_a, g_ih = inputs
        dP, dR = scratch("ln.dP", A.shape, A, steps), scratch("ln.dR", A.shape, A, steps)
        DH = scratch("ln.DH", out.shape, out, steps)  # dL/dh_t
        acc = accumulators(4 * A.shape[2], A)
        w_step = step_weight(w_hh.t(), steps)  # products x W_hh
        b_hh = A.new_zeros(A.shape[2]) if b_hh is None else b_hh  # u_n = gamma r^_n + b_hh
        native.load().ln_gru_backward(steps, A, P, st_a, R, rs_r, out, h0, w_step, g_ih, g_hh,
                                      b_hh, m, k, dout, grads[0], dP, dR, DH, acc)  # fmt: skip
        sums = native_sums(acc, 4)
    else:
        dA, dU, dR = A.new_zeros(A.shape), U.new_zeros(U.shape), R.new_zeros(R.shape)
        DH = out.new_zeros(out.shape)  # dL/dh_t
        args = (A, U, R, rs_r, out, h0, w_hh, g_hh, m, k, dout, grads[0], dA, dU, dR, DH)
        _backward_loop(steps, *args)
        dP, sums = input_backward(dA, dU, R, inputs)
    z0 = A[0, :, H : 2 * H]
    zk0 = z0 if k is None else torch.lerp(z0, torch.ones_like(z0), k[0])
    return dP, dR, zk0 * DH[0], None, None, None, None, DH, sums  # (h_0' = ... + zk_0 h_0)


def _backward_loop(steps, A, U, R, rs_r, out, h0, w_hh, g_hh, m, k, dout, dh_n, dA, dU, dR, DH):
    """The reverse-time loop in Python: fills dA, dU, dR and DH (module docstring)."""
    H = out.shape[2]
    r, z, n = A.unflatten(2, (3, H)).unbind(2)
    for t, bt, bn in reversed(steps):
        dh = DH[t, :bt]
        dh.copy_(dout[t, :bt])
        if bn:  # through r_{t+1} = W_hh (m h_t) and h_{t+1} = zk h_t + ...
            rec = dR[t + 1, :bn] @ w_hh
            z1 = z[t + 1, :bn]
            zk = z1 if k is None else k[t + 1, :bn] + (1 - k[t + 1, :bn]) * z1
            dh[:bn] += (rec if m is None else rec * m[:bn]) + zk * DH[t + 1, :bn]
        dh[bn:] += dh_n[bn:bt]  # rows ending at t
        g = dh if k is None else (1 - k[t, :bt]) * dh  # dh~_t
        r_t, z_t, n_t, u_n = r[t, :bt], z[t, :bt], n[t, :bt], U[t, :bt, 2 * H :]
        h_prev = (out[t - 1] if t else h0)[:bt]
        k_n = g * (1 - z_t) * (1 - n_t * n_t)  # dh~_t K_n
        da, du = dA[t, :bt].unflatten(1, (3, H)), dU[t, :bt].unflatten(1, (3, H))
        da[:, 0] = du[:, 0] = k_n * u_n * r_t * (1 - r_t)  # (through r)
        da[:, 1] = du[:, 1] = g * (h_prev - n_t) * z_t * (1 - z_t)  # (through z)
        da[:, 2] = k_n  # (through n = tanh(a_n + r u_n))
        du[:, 2] = k_n * r_t
        dR[t, :bt] = normalise_backward(g_hh * dU[t, :bt], R[t, :bt], rs_r[t, :bt])  # (r^_t)
