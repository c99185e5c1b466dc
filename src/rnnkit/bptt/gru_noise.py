"""The GRU kernel with the regularisers that act inside the time loop (regularisers.py):
recurrent dropout's mask m on h_{t-1} in u = W_hh (m h_{t-1}) + b_hh, and zoneout's weights k
mixing each new state with the last. The equations are `GRUFunction`'s (gru.py); here the
Python loops, plain per-step code (the reference and the path for CUDA), and the backward
both loops share. The C++ loops take the same tensors (native.cpp, `Noise`).

    T: time, B: batch, H: hidden size    m (B, H) or None    k (T, B, H) or None (kernel's rows)
"""

import torch

from rnnkit.bptt import gemm, native
from rnnkit.bptt.common import _dense, _input_grads, _mask_padding, _project, _recurrent_grads
from rnnkit.bptt.workspace import buffer


def forward_loop(x, h0, w_ih, w_hh, b_ih, b_hh, steps, save, noise):
    """(A, U, out, h_n) as gru._forward_loop gives them (A the gates [r, z, n], U the
    recurrent parts, both for every step), with the regularisers."""
    T, B, _ = x.shape
    H = h0.shape[1]
    m, k = noise.recurrent, noise.zone_h
    A = _project(x, w_ih, b_ih).clone()  # (T, B, 3H): a_t for all t, then the gates
    U, out, h_n = x.new_zeros(T, B, 3 * H), x.new_zeros(T, B, H), torch.empty_like(h0)
    for t, bt, bn in steps:
        h_prev = (out[t - 1] if t else h0)[:bt]  # h_{t-1}
        h_rec = h_prev if m is None else h_prev * m[:bt]
        u = torch.nn.functional.linear(h_rec, w_hh, b_hh)  # u_t = W_hh (m h_{t-1}) + b_hh
        a_r, a_z, a_n = A[t, :bt].unflatten(1, (3, H)).unbind(1)
        u_r, u_z, u_n = u.unflatten(1, (3, H)).unbind(1)
        r, z = torch.sigmoid(a_r + u_r), torch.sigmoid(a_z + u_z)
        n = torch.tanh(a_n + r * u_n)
        h = torch.lerp(n, h_prev, z)  # h~_t = (1 - z) n + z h_{t-1}
        if k is not None:
            h = torch.lerp(h, h_prev, k[t, :bt])  # h_t = k h_{t-1} + (1 - k) h~_t
        A[t, :bt], U[t, :bt], out[t, :bt] = torch.cat([r, z, n], 1), u, h
        h_n[bn:bt] = h[bn:bt]  # rows [bn, bt) end here
    return A, U, out, h_n


def backward(steps, use_native, norms, dout, dh_n, x, h0, w_ih, w_hh, out, A, U, needs, noise):
    """gru.gru_backward with the regularisers: (dx, dh0, dW_ih, dW_hh, db_ih, db_hh)."""
    H = out.shape[2]
    dout = _dense(dout, "gru_noise.dout")
    m, k = noise.recurrent, noise.zone_h
    dU = _mask_padding(buffer("gru.dU", A.shape, A), steps)  # (T, B, 3H)
    DH = _mask_padding(buffer("gru.DH", out.shape, out), steps)  # dL/dh_t
    if use_native:  # the same loop in C++
        w_hh_t = w_hh.t().contiguous()
        dA_n = native.gru_backward(steps, A, U, out, h0, dout, dh_n, dU, DH, w_hh_t, noise)
    else:
        dA_n = _backward_loop(steps, A, U, out, h0, dout, dh_n, dU, DH, w_hh, noise)
    if norms is not None:  # a probe.GradientRecord is open; padded rows of DH are 0
        torch.linalg.vector_norm(DH, dim=(1, 2), out=norms)
    dh0 = None
    if needs[1]:  # dh_{-1} = (k_0 + (1 - k_0) z_0) dh_0 + m (du_0 W_hh)
        z0 = A[0, :, H : 2 * H]
        zk = z0 if k is None else torch.lerp(z0, torch.ones_like(z0), k[0])
        rec = gemm.linear(dU[0], w_hh.t().contiguous())
        dh0 = zk * DH[0] + (rec if m is None else rec * m)
    h0_rec, out_rec = (h0, out) if m is None else (h0 * m, out * m)  # what W_hh read
    dw_hh, db_hh = _recurrent_grads(dU, h0_rec, out_rec, needs[3], needs[5])
    dU.unflatten(2, (3, H))[:, :, 2].copy_(dA_n)  # da: the input side of n has no r
    dx, dw_ih, db_ih = _input_grads(dU, x, w_ih, (needs[0], needs[2], needs[4]))
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


def _backward_loop(steps, A, U, out, h0, dout, dh_n, dU, DH, w_hh, noise):
    """The reverse-time loop in Python (GRUFunction's equations with the regularisers):
    fills dU and DH, returns dL/da_n."""
    T, B, H = out.shape
    m, k = noise.recurrent, noise.zone_h
    r, z, n = A.unflatten(2, (3, H)).unbind(2)
    u_n = U[:, :, 2 * H :]
    H_prev = torch.cat([h0.unsqueeze(0), out[:-1]])  # h_{t-1}
    dA_n = torch.zeros_like(out)
    for t, bt, bn in reversed(steps):
        dh = DH[t, :bt]
        dh.copy_(dout[t, :bt])
        if bn:  # through u_{t+1} = W_hh (m h_t) + b_hh and h_{t+1} = ... + z h_t
            rec = dU[t + 1, :bn] @ w_hh
            dh[:bn] += rec if m is None else rec * m[:bn]
            z1 = z[t + 1, :bn]
            zk = z1 if k is None else k[t + 1, :bn] + (1 - k[t + 1, :bn]) * z1
            dh[:bn] += zk * DH[t + 1, :bn]
        dh[bn:] += dh_n[bn:bt]  # rows ending at t
        g = dh if k is None else (1 - k[t, :bt]) * dh  # dh~_t   (through h_t = k h_{t-1} + ...)
        r_t, z_t, n_t = r[t, :bt], z[t, :bt], n[t, :bt]
        k_n = (1 - z_t) * (1 - n_t * n_t)
        du = dU[t, :bt].unflatten(1, (3, H))
        du[:, 0] = g * k_n * u_n[t, :bt] * r_t * (1 - r_t)  # du_r   (through r)
        du[:, 1] = g * (H_prev[t, :bt] - n_t) * z_t * (1 - z_t)  # du_z   (through z)
        du[:, 2] = g * k_n * r_t  # du_n   (through n = tanh(a_n + r u_n))
        dA_n[t, :bt] = g * k_n  # da_n
    return dA_n
