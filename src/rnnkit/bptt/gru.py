"""The GRU kernel (torch.nn convention): forward loop and hand-written BPTT."""

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from rnnkit.bptt import gemm, native, probe
from rnnkit.bptt.common import (
    _chunk,
    _consts,
    _grad_in,
    _Inference,
    _input_grads,
    _mask_padding,
    _needs_grad,
    _padded,
    _Prefixes,
    _projections,
    _recurrent_grads,
    _rows,
    _scaled,
    _steps,
)
from rnnkit.bptt.workspace import buffer, recycled


class GRUFunction(Function):
    """GRU over a sequence in torch.nn's convention; gates (r, z, n).

        [a_r, a_z, a_n] = W_ih x_t + b_ih        [u_r, u_z, u_n] = W_hh h_{t-1} + b_hh
        r = sigmoid(a_r + u_r)   z = sigmoid(a_z + u_z)   n = tanh(a_n + r * u_n)
        h_t = (1 - z) * n + z * h_{t-1}

    Forward scales the n rows of W_ih, b_ih, W_hh, b_hh by 2 (n = 2 sigmoid(2 a) - 1).
    Backward per step, with K precomputed for all steps:
        dh_t = dout_t + z_{t+1} dh_{t+1} + du_{t+1} W_hh
        du_t = dh_t * K,   K = [K_n u_n r (1 - r), K_z, K_n r],
                           K_n = (1 - z)(1 - n^2), K_z = (h_{t-1} - n) z (1 - z)
        da_t = du_t with its n part replaced by dh_t * K_n
    Saved: gates (T, B, 3H) holding r, z, n; U (T, B, 3H) whose n part is 2 u_n; out; h0.
    The backward's workspace: K and dU (T, B, 3H), K_n and DH (T, B, H).
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes):
        T, B, _ = x.shape
        H = h0.shape[1]
        steps = _steps(batch_sizes, T, B)
        save = any(ctx.needs_input_grad)  # inference keeps no per-step gates
        one, two, half = _consts(x)
        w_x, b_x = _scaled(w_ih, 2 * H, 3 * H, 2), _scaled(b_ih, 2 * H, 3 * H, 2)
        # The loop carries q = (h + 1) / 2, so W h + b = 2 W q + (b - W 1) and
        # h_t = (1 - z) n + z h_{t-1} becomes q_t = (1 - z) (n + 1) / 2 + z q_{t-1}.
        w = _scaled(w_hh, 2 * H, 3 * H, 2)
        b_u = -w.sum(1) if b_hh is None else _scaled(b_hh, 2 * H, 3 * H, 2) - w.sum(1)
        w = 2 * w
        # q until the end; padded rows zeroed: a packed product reads whole steps
        out = _mask_padding(recycled("gru.out", (T, B, H), x), steps)
        U = None  # (T, B, 3H) recurrent pre-activations (n part: 2 u_n)
        h_n = torch.empty_like(h0)
        q0 = (h0 + one) * half
        loops = native.for_cpu(x)
        if loops is not None:  # the same loop in C++, over whole tensors
            w_step = gemm.step_weight(w, B, T)
        else:
            mm = gemm.linear_step(w, b_u, B, T)
            prev = [q0, *_rows(out[:-1], steps[1:])]  # q_{t-1}
            outs = _rows(out, steps)
        fresh = []  # (t, u_t) where a packed GEMM gave the product in a new tensor (Python loop)
        for t0, A in _projections(x, w_x, b_x, T if save else _chunk(B, 3 * H), "gru.A"):
            chunk = steps[t0 : t0 + len(A)]
            if loops is not None:  # writes each step's u into U when it saves
                U = recycled("gru.U", A.shape, x) if save else buffer("gru.u", (B, 3 * H), x)
                loops.gru_forward(chunk, A, U, out, q0.contiguous(), w_step, b_u, save, h_n)
                continue
            if save:
                U = torch.empty_like(A)
                us, u_rzs, u_ns = (_rows(v, chunk) for v in (U, U[:, :, : 2 * H], U[:, :, 2 * H :]))
            else:  # one (B, 3H) buffer
                u = buffer("gru.u", (B, 3 * H), x)
                views = [_Prefixes(v) for v in (u, u[:, : 2 * H], u[:, 2 * H :])]
                us, u_rzs, u_ns = ([v[bt] for _, bt, _ in chunk] for v in views)
            gates = (A[:, :, : 2 * H], A[:, :, :H], A[:, :, H : 2 * H], A[:, :, 2 * H :])
            per_step = zip(chunk, us, u_rzs, u_ns, *(_rows(g, chunk) for g in gates))
            for (t, bt, bn), u, u_rz, u_n, a_rz, r, z, a_n in per_step:
                u_t = mm(prev[t], u)
                if u_t is not u:  # a copy into u would cost more than two views
                    u_rz, u_n = u_t[:, : 2 * H], u_t[:, 2 * H :]
                    if save:
                        fresh.append((t, u_t))
                a_rz.add_(u_rz).sigmoid_()  # r, z
                n = torch.addcmul(a_n, r, u_n, out=a_n).sigmoid_()  # (n + 1) / 2
                h = torch.lerp(n, prev[t], z, out=outs[t])  # q_t = (n+1)/2 + z (q_{t-1} - (n+1)/2)
                if bn < bt:  # rows [bn, bt) end here
                    h_n[bn:bt] = h[bn:bt]
        out.mul_(two).sub_(one), h_n.mul_(two).sub_(one)  # h = 2 q - 1
        _mask_padding(out, steps)
        if save:
            if len(fresh) == T and not _padded(steps, B):
                torch.stack([u_t for _, u_t in fresh], out=U)
            else:
                for t, u_t in fresh:
                    U[t, : len(u_t)] = u_t
            A[:, :, 2 * H :].mul_(two).sub_(one)  # n, for the backward
            ctx.save_for_backward(x, h0, w_ih, w_hh, A, U, out)
            ctx.norms = probe.claim(T, x)
        ctx.steps = steps
        return out, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh_n):
        x, h0, w_ih, w_hh, A, U, out = ctx.saved_tensors
        steps, need = ctx.steps, ctx.needs_input_grad
        T, B, H = out.shape
        dout = dout.contiguous()
        # the loops write every running row; padded rows zeroed (GEMMs read all rows)
        dU = _mask_padding(buffer("gru.dU", A.shape, A), steps)  # (T, B, 3H)
        dU3 = dU.unflatten(2, (3, H))
        DH = _mask_padding(buffer("gru.DH", out.shape, out), steps)  # dL/dh_t
        w_hh_t = w_hh.t().contiguous()
        loops = native.for_cpu(out)
        if loops is not None:  # the loop in C++, which forms the K factors in the loop
            dA_n = _mask_padding(buffer("gru.dAn", out.shape, out), steps)  # dL/da_n
            w = gemm.step_weight(w_hh_t, B, T)
            args = (A, U, out, h0.contiguous(), dout, dh_n.contiguous(), dU, DH, dA_n, w)
            loops.gru_backward(steps, *args)
        else:
            dA_n = _backward_loop(steps, A, U, out, h0, dout, dh_n, dU, DH, w_hh_t)
        if ctx.norms is not None:  # a probe.GradientRecord is open; padded rows of DH are 0
            torch.linalg.vector_norm(DH, dim=(1, 2), out=ctx.norms)
        dh0 = None
        if need[1]:
            dh0 = gemm.addmm_(A[0, :, H : 2 * H] * DH[0], dU[0], w_hh_t)  # z_0 dh_0 + du_0 W_hh
        dw_hh, db_hh = _recurrent_grads(dU, h0, out, need[3], need[5])
        dU3[:, :, 2].copy_(dA_n)  # the input side of n is not multiplied by r
        dx, dw_ih, db_ih = _input_grads(dU, x, w_ih, (need[0], need[2], need[4]))
        return dx, dh0, dw_ih, dw_hh, db_ih, db_hh, None


def _backward_loop(steps, A, U, out, h0, dout, dh_n, dU, DH, w_hh_t):
    """The backward's reverse-time loop in Python, with the recurrence-independent factors K
    of all steps computed before it: fills dU and DH, returns dL/da_n = DH K_n."""
    T, B, H = out.shape
    one, _, half = _consts(out)
    r, z, n = A.unflatten(2, (3, H)).unbind(2)
    K_n = torch.mul(n, n, out=buffer("gru.Kn", out.shape, out)).sub_(one).neg_()  # 1 - n^2
    K_n.addcmul_(z, K_n, value=-1)  # (1 - z)(1 - n^2)
    K = buffer("gru.K", A.shape, A).unflatten(2, (3, H))  # (T, B, 3, H)
    K_r, K_z, K_u = K.unbind(2)
    torch.addcmul(r, r, r, value=-1, out=K_r).mul_(K_n).mul_(U[:, :, 2 * H :]).mul_(half)
    torch.addcmul(z, z, z, value=-1, out=K_u)  # z (1 - z), scratch
    torch.sub(h0, n[0], out=K_z[0])  # h_{t-1} - n_t ...
    torch.sub(out[:-1], n[1:], out=K_z[1:])
    K_z.mul_(K_u)  # ... z (1 - z)
    torch.mul(K_n, r, out=K_u)  # dL/du_n = dL/da_n r

    dU3 = dU.unflatten(2, (3, H))
    DHs, dUs, douts, zs = (_rows(v, steps) for v in (DH, dU, dout, z))
    mm = gemm.addmm_step(w_hh_t, B, T)
    per_step = zip(_rows(DH.unsqueeze(2), steps), _rows(K, steps), _rows(dU3, steps))
    for (t, bt, bn), (dh3, k, du3) in zip(reversed(steps), reversed(list(per_step))):
        if bn:  # dh_t = dout_t + z_{t+1} dh_{t+1} + du_{t+1} W_hh
            dh, d = (DHs[t], douts[t]) if bn == bt else (DHs[t][:bn], douts[t][:bn])
            torch.addcmul(d, zs[t + 1], DHs[t + 1], out=dh)
            mm(dh, dUs[t + 1])
        _grad_in(dout, dh_n, t, bt, bn, DHs[t])
        torch.mul(dh3, k, out=du3)  # through r, z, n
    return K_n.mul_(DH)


def gru(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None):
    """The GRU kernel: (out, h_n); through autograd only when a gradient is needed."""
    args = (x, h0, w_ih, w_hh, b_ih, b_hh)
    if _needs_grad(*args):
        return GRUFunction.apply(*args, batch_sizes)
    return GRUFunction.forward(_Inference(), *args, batch_sizes)
