"""The Elman RNN kernel with the regularisers that act inside the time loop (regularisers.py):
recurrent dropout's mask m on h_{t-1} in W_hh (m h_{t-1}), and zoneout's weights k mixing
each new state with the last. The equations are `RNNFunction`'s (rnn.py); here the Python
forward loop (the reference and the path for CUDA) and the backward both loops share. The C++
loops take the same tensors (native.cpp, `Noise`).

    T: time, B: batch, H: hidden size    m (B, H) or None    k (T, B, H) or None (kernel's rows)
"""

import torch

from rnnkit.bptt import gemm, native
from rnnkit.bptt.common import _dense, _mask_padding, _shared_grads
from rnnkit.bptt.workspace import buffer


def forward_loop(Z, h0, w_hh, steps, relu, noise):
    """In place over Z (T, B, H), the input parts of z, which becomes out:
    h~_t = act(z_t + W_hh (m h_{t-1})),   h_t = k h_{t-1} + (1 - k) h~_t."""
    m, k = noise.recurrent, noise.zone_h
    for t, bt, _ in steps:
        h_prev = (Z[t - 1] if t else h0)[:bt]
        z = Z[t, :bt].addmm_(h_prev if m is None else h_prev * m[:bt], w_hh.t())
        z.clamp_min_(0) if relu else z.tanh_()  # h~_t
        if k is not None:
            z.lerp_(h_prev, k[t, :bt])  # h_t = k h_{t-1} + (1 - k) h~_t
    return Z


def backward(steps, relu, use_native, norms, dout, dh_n, x, h0, w_ih, w_hh, out, needs, noise):
    """rnn.rnn_backward with the regularisers: (dx, dh0, dW_ih, dW_hh, db). The unzoned
    h~_t = (h_t - k h_{t-1}) / (1 - k) where k < 1; where k = 1 (a unit that kept its value)
    nothing flows through h~_t, so any finite value does."""
    dout = _dense(dout, "rnn_noise.dout")
    m, k = noise.recurrent, noise.zone_h
    h_prev = torch.cat([h0.unsqueeze(0), out[:-1]])  # h_{t-1}
    h_tilde = out
    if k is not None:
        h_tilde = torch.where(k < 1, (out - k * h_prev) / (1 - k).clamp_min(1e-30), out)
    D = (h_tilde > 0).to(out.dtype) if relu else 1 - h_tilde * h_tilde  # act'(z~_t)
    if k is not None:
        D = D * (1 - k)  # dz_t = (1 - k_t) dh_t act'   (through h_t = ... + (1 - k) h~_t)
    dZ = _mask_padding(buffer("rnn.dZ", out.shape, out), steps)
    dh = torch.empty_like(h0)  # dh_t, then dh_0 after the loop
    if use_native:  # the same loop in C++
        w_hh_t = w_hh.t().contiguous()
        native.rnn_backward(steps, D, dout, dh_n, dZ, h0, w_hh_t, norms, noise, dh)
    else:
        _backward_loop(steps, D, dout, dh_n, dZ, dh, w_hh, norms, noise)
    dh0 = None
    if needs[1]:  # dh_{-1} = m (dz_0 W_hh) + k_0 dh_0
        rec = gemm.linear(dZ[0], w_hh.t().contiguous())
        dh0 = rec if m is None else rec * m
        dh0 = dh0 if k is None else dh0 + k[0] * dh
    h0_rec, out_rec = (h0, out) if m is None else (h0 * m, out * m)  # what W_hh read
    needed = [needs[i] for i in (0, 2, 3, 4)]
    dx, dw_ih, dw_hh, db = _shared_grads(dZ, x, w_ih, h0_rec, out_rec, needed)
    return dx, dh0, dw_ih, dw_hh, db


def _backward_loop(steps, D, dout, dh_n, dZ, dh, w_hh, norms, noise):
    """The reverse-time loop in Python: fills dZ, leaves dh_0 in dh."""
    m, k = noise.recurrent, noise.zone_h
    for t, bt, bn in reversed(steps):
        new = dout[t, :bt].clone()
        if bn:  # through z_{t+1} = ... + W_hh (m h_t) and h_{t+1} = k h_t + ...
            rec = dZ[t + 1, :bn] @ w_hh
            new[:bn] += rec if m is None else rec * m[:bn]
            if k is not None:
                new[:bn] += k[t + 1, :bn] * dh[:bn]  # dh still holds dh_{t+1}
        new[bn:] += dh_n[bn:bt]  # rows ending at t
        dh[:bt] = new
        if norms is not None:  # a probe.GradientRecord is open (probe.py)
            torch.linalg.vector_norm(new, out=norms[t])
        torch.mul(new, D[t, :bt], out=dZ[t, :bt])  # dz_t = dh_t D_t
