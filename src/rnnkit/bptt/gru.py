"""The GRU kernel (torch.nn convention): forward loop and hand-written BPTT."""

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from rnnkit.bptt import gemm, gru_noise, native, probe
from rnnkit.bptt.common import (
    _chunk,
    _dense,
    _grad_in,
    _Inference,
    _input_grads,
    _mask_padding,
    _needs_grad,
    _one,
    _padded,
    _Prefixes,
    _projections,
    _recurrent_grads,
    _rows,
    _steps,
    _without_autocast,
)
from rnnkit.bptt.workspace import buffer, recycled


class GRUFunction(Function):
    """GRU over a sequence in torch.nn's convention; gates (r, z, n).

        [a_r, a_z, a_n] = W_ih x_t + b_ih        [u_r, u_z, u_n] = W_hh h_{t-1} + b_hh
        r = sigmoid(a_r + u_r)   z = sigmoid(a_z + u_z)   n = tanh(a_n + r * u_n)
        h_t = (1 - z) * n + z * h_{t-1}

    Backward per step, with K precomputed for all steps:
        dh_t = dout_t + z_{t+1} dh_{t+1} + du_{t+1} W_hh
        du_t = dh_t * K,   K = [K_n u_n r (1 - r), K_z, K_n r],
                           K_n = (1 - z)(1 - n^2), K_z = (h_{t-1} - n) z (1 - z)
        da_t = du_t with its n part replaced by dh_t * K_n
    Saved: gates A (T, B, 3H) holding r, z, n; U (T, B, 3H) holding u; out; h0.
    The backward's workspace: K and dU (T, B, 3H), K_n and DH (T, B, H).

    With `noise` (regularisers.Noise: recurrent dropout's mask m (B, H), zoneout's k
    (T, B, H), in the kernel's rows), u_t = W_hh (m h_{t-1}) + b_hh and
        h_t = k h_{t-1} + (1 - k) h~_t,   h~_t = (1 - z) n + z h_{t-1}
    Backward: dh_t = dout_t + (k_{t+1} + (1 - k_{t+1}) z_{t+1}) dh_{t+1} + m (du_{t+1} W_hh),
    du_t = dh~_t K with dh~_t = (1 - k_t) dh_t; dW_hh reads m h_{t-1} (gru_noise.py).
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, noise=None):
        ctx.steps = _steps(batch_sizes, *x.shape[:2])
        save = any(ctx.needs_input_grad)  # inference keeps no per-step gates
        ctx.native = native.for_cpu(x) is not None
        ctx.noise = noise
        args = (x, h0, w_ih, w_hh, b_ih, b_hh, ctx.steps, save, ctx.native, noise)
        out, h_n, A, U = gru_forward(*args)
        if save:
            ctx.save_for_backward(x, h0, w_ih, w_hh, out, A, U)
            ctx.norms = probe.claim(len(x), x)
        return out, h_n

    @staticmethod
    @_without_autocast
    @once_differentiable
    def backward(ctx, dout, dh_n):
        args = (ctx.steps, ctx.native, ctx.norms, dout, dh_n, *ctx.saved_tensors)
        needs = ctx.needs_input_grad[:6]
        if ctx.noise is not None:
            return (*gru_noise.backward(*args, needs, ctx.noise), None, None)
        return (*gru_backward(*args, needs), None, None)


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, steps, save, use_native, noise=None):
    """The forward of `GRUFunction` (and of the rnnkit::gru operator, bptt/ops.py) on the
    kernel's layout: (out, h_n, A, U), A and U what the backward reads (U's n block holds
    2 u_n on the C++ loop, see native.gru_forward), None unless `save`; `noise`: see
    GRUFunction."""
    args = (x, h0, w_ih, w_hh, b_ih, b_hh, steps, save)
    if use_native:  # the same loop in C++
        A, U, out, h_n = native.gru_forward(*args, noise)
    elif noise is not None:
        A, U, out, h_n = gru_noise.forward_loop(*args, noise)
    else:
        A, U, out, h_n = _forward_loop(*args)
    _mask_padding(out, steps)
    return (out, h_n, A, U) if save else (out, h_n, None, None)


def gru_backward(steps, use_native, norms, dout, dh_n, x, h0, w_ih, w_hh, out, A, U, needs):
    """The backward of `gru_forward`: (dx, dh0, dW_ih, dW_hh, db_ih, db_hh), None where
    `needs` (the same six) is False. `use_native`: the loop the forward ran; norms: probe.py."""
    H = out.shape[2]
    dout = _dense(dout, "gru.dout")
    # the loops write every running row; padded rows zeroed (GEMMs read all rows)
    dU = _mask_padding(buffer("gru.dU", A.shape, A), steps)  # (T, B, 3H)
    DH = _mask_padding(buffer("gru.DH", out.shape, out), steps)  # dL/dh_t
    w_hh_t = w_hh.t().contiguous()
    loop = native.gru_backward if use_native else _backward_loop  # the same loop in C++
    dA_n = loop(steps, A, U, out, h0, dout, dh_n, dU, DH, w_hh_t)
    if norms is not None:  # a probe.GradientRecord is open; padded rows of DH are 0
        torch.linalg.vector_norm(DH, dim=(1, 2), out=norms)
    dh0 = None
    if needs[1]:
        dh0 = gemm.addmm_(A[0, :, H : 2 * H] * DH[0], dU[0], w_hh_t)  # z_0 dh_0 + du_0 W_hh
    dw_hh, db_hh = _recurrent_grads(dU, h0, out, needs[3], needs[5])
    dU.unflatten(2, (3, H))[:, :, 2].copy_(dA_n)  # da: the input side of n has no r
    dx, dw_ih, db_ih = _input_grads(dU, x, w_ih, (needs[0], needs[2], needs[4]))
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


def _forward_loop(x, h0, w_ih, w_hh, b_ih, b_hh, steps, save):
    """The forward's time loop in Python: (A, U, out, h_n), A the gates [r, z, n] of all
    steps (of the last chunk when not saving), U the recurrent parts [u_r, u_z, u_n] (one
    (B, 3H) buffer when not saving)."""
    T, B, _ = x.shape
    H = h0.shape[1]
    out, h_n = recycled("gru.out", (T, B, H), x), torch.empty_like(h0)
    prev = [h0, *_rows(out[:-1], steps[1:])]  # h_{t-1}
    mm = gemm.linear_step(w_hh, b_hh, B, T)  # u_t = W_hh h_{t-1} + b_hh
    fresh = []  # (t, u_t) where a packed GEMM gave u_t in a new tensor
    for t0, A in _projections(x, w_ih, b_ih, T if save else _chunk(B, 3 * H), "gru.A"):
        chunk = steps[t0 : t0 + len(A)]
        if save:
            U = recycled("gru.U", A.shape, x)
            us = _rows(U, chunk)
        else:
            U = buffer("gru.u", (B, 3 * H), x)
            us = [_Prefixes(U)[bt] for _, bt, _ in chunk]
        rz, n = A[:, :, : 2 * H], A[:, :, 2 * H :]  # a_{r,z}, a_n: r, z, n in place
        views = (rz, A[:, :, :H], A[:, :, H : 2 * H], n, out[t0 : t0 + len(A)])
        for (t, bt, bn), u, *rows in zip(chunk, us, *(_rows(v, chunk) for v in views)):
            u_t = mm(prev[t], u)  # u_t = W_hh h_{t-1} + b_hh
            if u_t is not u and save:
                fresh.append((t, u_t))
            h = _step(u_t, prev[t], *rows)
            if bn < bt:  # rows [bn, bt) end here
                h_n[bn:bt] = h[bn:bt]
    if fresh:
        _keep(U, fresh, steps)
    return A, U, out, h_n


def _step(u, h_prev, a_rz, r, z, a_n, h):
    """One step's gates, in place over a = [a_r, a_z, a_n], and h_t into h."""
    H = h.shape[1]
    a_rz.add_(u[:, : 2 * H]).sigmoid_()  # r, z = sigmoid(a_{r,z} + u_{r,z})
    n = torch.addcmul(a_n, r, u[:, 2 * H :], out=a_n).tanh_()  # n = tanh(a_n + r u_n)
    return torch.lerp(n, h_prev, z, out=h)  # h_t = (1 - z) n + z h_{t-1}


def _keep(U, fresh, steps):
    """The u_t that packed GEMMs gave in new tensors, into U (T, B, 3H)."""
    if len(fresh) == len(steps) and not _padded(steps, U.shape[1]):
        torch.stack([u_t for _, u_t in fresh], out=U)
    else:
        for t, u_t in fresh:
            U[t, : len(u_t)] = u_t


def _backward_loop(steps, A, U, out, h0, dout, dh_n, dU, DH, w_hh_t):
    """The backward's reverse-time loop in Python, with the recurrence-independent factors K
    of all steps computed before it: fills dU and DH, returns dL/da_n = DH K_n."""
    T, B, H = out.shape
    K, K_n = _factors(A, U, out, h0)
    z = A[:, :, H : 2 * H]
    dU3 = dU.unflatten(2, (3, H))
    DHs, dUs, douts, zs = (_rows(v, steps) for v in (DH, dU, dout, z))
    mm = gemm.addmm_step(w_hh_t, B, T)
    per_step = zip(_rows(DH.unsqueeze(2), steps), _rows(K, steps), _rows(dU3, steps))
    for (t, bt, bn), (dh3, k, du3) in zip(reversed(steps), reversed(list(per_step))):
        if bn:  # dh_t = dout_t + z_{t+1} dh_{t+1} + du_{t+1} W_hh   (through h_{t+1}, u_{t+1})
            dh, d = (DHs[t], douts[t]) if bn == bt else (DHs[t][:bn], douts[t][:bn])
            torch.addcmul(d, zs[t + 1], DHs[t + 1], out=dh)
            mm(dh, dUs[t + 1])
        _grad_in(dout, dh_n, t, bt, bn, DHs[t])  # rows ending at t: dout_t + dh_n
        torch.mul(dh3, k, out=du3)  # du_t = dh_t K   (through r, z, n)
    return K_n.mul_(DH)  # da_n = dh_t K_n


def _factors(A, U, out, h0):
    """K = [K_n u_n r (1 - r), K_z, K_n r] (T, B, 3, H) and K_n (T, B, H), for all steps."""
    T, B, H = out.shape
    one = _one(out)
    r, z, n = A.unflatten(2, (3, H)).unbind(2)
    K_n = torch.mul(n, n, out=buffer("gru.Kn", out.shape, out)).sub_(one).neg_()  # 1 - n^2
    K_n.addcmul_(z, K_n, value=-1)  # (1 - z)(1 - n^2)
    K = buffer("gru.K", A.shape, A).unflatten(2, (3, H))  # (T, B, 3, H)
    K_r, K_z, K_u = K.unbind(2)
    torch.addcmul(r, r, r, value=-1, out=K_r).mul_(K_n).mul_(U[:, :, 2 * H :])  # K_n u_n r (1-r)
    torch.addcmul(z, z, z, value=-1, out=K_u)  # z (1 - z), scratch
    torch.sub(h0, n[0], out=K_z[0])  # h_{t-1} - n_t ...
    torch.sub(out[:-1], n[1:], out=K_z[1:])
    K_z.mul_(K_u)  # ... z (1 - z)
    torch.mul(K_n, r, out=K_u)  # K_n r
    return K, K_n


def gru(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None, noise=None):
    """The GRU kernel: (out, h_n); through autograd only when a gradient is needed.
    noise: the regularisers in the kernel (regularisers.Noise, kernel's rows) or None."""
    args = (x, h0, w_ih, w_hh, b_ih, b_hh)
    if _needs_grad(*args):
        return GRUFunction.apply(*args, batch_sizes, noise)
    return GRUFunction.forward(_Inference(), *args, batch_sizes, noise)
