"""The LSTM kernel with the regularisers that act inside the time loop (regularisers.py):
recurrent dropout's mask m on h_{t-1} in the recurrent product, and zoneout's weights k_h,
k_c mixing each new state with the last. The equations are `LSTMFunction`'s (lstm.py); here
the Python loops, plain per-step code (the reference and the path for CUDA), and the backward
both loops share. The C++ loops take the same tensors (native.cpp, `Noise`).

    T: time, B: batch, H: hidden size, P: the size of h (proj_size, else H)
    m (B, P) or None    k_h (T, B, P) or None    k_c (T, B, H) or None    (kernel's rows)
"""

import torch

from rnnkit.bptt import gemm, native
from rnnkit.bptt.common import _dense, _mask_padding, _project, _shared_grads
from rnnkit.bptt.workspace import buffer


def forward_loop(x, h0, c0, w_ih, w_hh, b, steps, save, w_hr, noise):
    """(Z, C, out, h_n, c_n) as lstm._forward_loop gives them (Z the gates [i, f, g, o], C the
    zoned cells c_t, both for every step whether saved or not), with the regularisers."""
    T, B, _ = x.shape
    H, P = c0.shape[1], h0.shape[1]
    m, k_h, k_c = noise.recurrent, noise.zone_h, noise.zone_c
    Z = _project(x, w_ih, b).clone()  # (T, B, 4H): W_ih x_t + b for all t, then the gates
    out, C = x.new_zeros(T, B, P), x.new_zeros(T, B, H)
    h_n, c_n = torch.empty_like(h0), torch.empty_like(c0)
    for t, bt, bn in steps:
        h_prev = (out[t - 1] if t else h0)[:bt]  # h_{t-1}, c_{t-1}
        c_prev = (C[t - 1] if t else c0)[:bt]
        h_rec = h_prev if m is None else h_prev * m[:bt]  # m h_{t-1}
        z = Z[t, :bt].addmm_(h_rec, w_hh.t())  # z_t = W_ih x_t + b + W_hh (m h_{t-1})
        i, f, g, o = z.unflatten(1, (4, H)).unbind(1)
        i.sigmoid_(), f.sigmoid_(), g.tanh_(), o.sigmoid_()
        c = f * c_prev + i * g  # c~_t
        h = o * torch.tanh(c)  # m~_t = o tanh(c~_t)
        if w_hr is not None:
            h = h @ w_hr.t()  # h~_t = W_hr m~_t
        if k_c is not None:
            c = torch.lerp(c, c_prev, k_c[t, :bt])  # c_t = k_c c_{t-1} + (1 - k_c) c~_t
        if k_h is not None:
            h = torch.lerp(h, h_prev, k_h[t, :bt])  # h_t = k_h h_{t-1} + (1 - k_h) h~_t
        out[t, :bt], C[t, :bt] = h, c
        h_n[bn:bt], c_n[bn:bt] = h[bn:bt], c[bn:bt]  # rows [bn, bt) end here
    return Z, C, out, h_n, c_n


def backward(steps, use_native, norms, dout, dh_n, dc_n, x, h0, c0, w_ih, w_hh, out, Z, C, needs,
             w_hr, noise, dC=None):  # fmt: skip
    """lstm.lstm_backward with the regularisers: (dx, dh0, dc0, dW_ih, dW_hh, db, dW_hr); dC
    (T, B, H), the gradient of every c_t where the kernel returned them, or None."""
    dout = _dense(dout, "lstm_noise.dout")
    m, k_h = noise.recurrent, noise.zone_h
    dZ = _mask_padding(buffer("lstm.dZ", Z.shape, Z), steps)  # (T, B, 4H)
    DH = _mask_padding(buffer("lstm.DH", out.shape, out), steps)  # dL/dh_t, every step kept
    M = None if w_hr is None else buffer("lstm.M", C.shape, C)  # m~_t, for dW_hr
    dc = dc_n.clone()  # rows not yet running hold dL/dc_n until their last step
    if use_native:  # the same loop in C++
        proj = None if w_hr is None else (w_hr, DH, M)
        w_hh_t = w_hh.t().contiguous()
        args = (steps, Z, C, c0, dout, dh_n, dZ, dc, h0, w_hh_t, norms, proj)
        native.lstm_backward(*args, noise=noise, DH=DH, dC=dC)
    else:
        _backward_loop(steps, Z, C, c0, dout, dh_n, dZ, dc, h0, w_hh, w_hr, noise, DH, M, dC, norms)
    dh0 = None
    if needs[1]:  # dh_{-1} = m (dz_0 W_hh) + k_h,0 dh_0
        dh0 = gemm.linear(dZ[0], w_hh.t().contiguous())
        dh0 = dh0 if m is None else dh0 * m
        dh0 = dh0 if k_h is None else dh0 + k_h[0] * DH[0]
    h0_rec, out_rec = (h0, out) if m is None else (h0 * m, out * m)  # what W_hh read
    needed = [needs[i] for i in (0, 3, 4, 5)]
    dx, dw_ih, dw_hh, db = _shared_grads(dZ, x, w_ih, h0_rec, out_rec, needed)
    dw_hr = None
    if w_hr is not None and needs[6]:  # dW_hr = sum_t dh~_t^T m~_t
        DHt = DH if k_h is None else DH * (1 - k_h)
        dw_hr = gemm.t_mm(DHt.flatten(0, 1), _mask_padding(M, steps).flatten(0, 1))
    return dx, dh0, dc if needs[2] else None, dw_ih, dw_hh, db, dw_hr


def _backward_loop(
    steps, Z, C, c0, dout, dh_n, dZ, dc, h0, w_hh, w_hr, noise, DH, M, dC=None, norms=None
):
    """The reverse-time loop in Python (LSTMFunction's equations with the regularisers):
    fills dZ and DH, leaves dL/dc_0 in dc, m~_t in M with a projection; dC added to dL/dc_t."""
    T, B, H = C.shape
    m, k_h, k_c = noise.recurrent, noise.zone_h, noise.zone_c
    i, f, g, o = Z.unflatten(2, (4, H)).unbind(2)
    C_prev = torch.cat([c0.unsqueeze(0), C[:-1]])  # c_{t-1}
    tc = torch.tanh(f * C_prev + i * g)  # tanh c~_t
    if M is not None:
        torch.mul(o, tc, out=M)  # m~_t = o tanh(c~_t)
    for t, bt, bn in reversed(steps):
        if dC is not None:
            dc[:bt] += dC[t, :bt]  # the returned c_t's own gradient
        dh = DH[t, :bt]
        dh.copy_(dout[t, :bt])
        if bn:  # through z_{t+1} = ... + W_hh (m h_t) and h_{t+1} = k_h h_t + ...
            rec = dZ[t + 1, :bn] @ w_hh
            dh[:bn] += rec if m is None else rec * m[:bn]
            if k_h is not None:
                dh[:bn] += k_h[t + 1, :bn] * DH[t + 1, :bn]
        dh[bn:] += dh_n[bn:bt]  # rows ending at t
        if norms is not None:  # a probe.GradientRecord is open (probe.py)
            torch.linalg.vector_norm(dh, out=norms[t])
        dh_tilde = dh if k_h is None else (1 - k_h[t, :bt]) * dh  # (through h~_t)
        dm = dh_tilde if w_hr is None else dh_tilde @ w_hr  # (through h~_t = W_hr m~_t)
        i_t, f_t, g_t, o_t, tc_t = (v[t, :bt] for v in (i, f, g, o, tc))
        d_c = dc[:bt] if k_c is None else (1 - k_c[t, :bt]) * dc[:bt]
        d_c = d_c + dm * o_t * (1 - tc_t * tc_t)  # dc~_t   (through m~_t = o tanh(c~_t))
        dz = dZ[t, :bt].unflatten(1, (4, H))
        dz[:, 0] = d_c * g_t * i_t * (1 - i_t)  # dz_i   (through c~_t = f c_{t-1} + i g)
        dz[:, 1] = d_c * C_prev[t, :bt] * f_t * (1 - f_t)  # dz_f
        dz[:, 2] = d_c * i_t * (1 - g_t * g_t)  # dz_g
        dz[:, 3] = dm * tc_t * o_t * (1 - o_t)  # dz_o   (through o)
        keep = 0 if k_c is None else k_c[t, :bt] * dc[:bt]  # (through c_t = k_c c_{t-1} + ...)
        dc[:bt] = keep + f_t * d_c  # dc_{t-1}
