"""The LSTM kernel: forward loop and hand-written BPTT."""

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from rnnkit.bptt import gemm, native, probe
from rnnkit.bptt.common import (
    _add,
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


class LSTMFunction(Function):
    """LSTM over a sequence; gates (i, f, g, o) packed as in torch.nn.

        z_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh              (B, 4H)
        i, f, o = sigmoid(z_i, z_f, z_o)   g = tanh(z_g)
        c_t = f * c_{t-1} + i * g          h_t = o * tanh(c_t)

    Forward keeps c' = 2c so that tanh(c) = 2 sigmoid(c') - 1, and scales the g rows of W by 2.
    Backward per step (factors K precomputed for all steps before the loop):
        dh_t = dout_t + dz_{t+1} W_hh
        dc_t = dc_t + dh_t * K_c,          K_c = o (1 - tanh^2 c_t)
        dz_o = dh_t * K_o,                 K_o = tanh(c_t) o (1 - o)
        dz_{i,f,g} = dc_t * K_{i,f,g},     K_i = g i (1 - i), K_f = c_{t-1} f (1 - f),
                                           K_g = i (1 - g^2)
        dc_{t-1} = dc_t * f
    Saved: gates (T, B, 4H), c' (T, B, H), out (T, B, H), h0, c0: 6TBH + 2BH.
    The backward's workspace: K and dZ (T, B, 4H), tanh(c) and K_c (T, B, H).
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes):
        T, B, _ = x.shape
        H = h0.shape[1]
        steps = _steps(batch_sizes, T, B)
        save = any(ctx.needs_input_grad)  # inference keeps no per-step gates or cells
        one, two, half = _consts(x)
        # g rows scaled by 2, so that g = 2 sigmoid(z'_g) - 1 = tanh(z_g)
        w_x, b = _scaled(w_ih, 2 * H, 3 * H, 2), _scaled(_add(b_ih, b_hh), 2 * H, 3 * H, 2)
        w1 = _scaled(w_hh, 2 * H, 3 * H, 2)
        w2 = 2 * w1  # steps t >= 1 read h_{t-1} / 2 from out
        # h / 2 until the end; padded rows zeroed: a packed product reads whole steps
        out = _mask_padding(recycled("lstm.out", (T, B, H), x), steps)
        C = recycled("lstm.C", (T, B, H), x) if save else buffer("lstm.c", (2, B, H), x)  # c'=2c
        h_n, c_n = torch.empty_like(h0), torch.empty_like(c0)
        loops = native.for_cpu(x)
        if loops is not None:  # the loop in C++, over whole tensors
            w_rest = gemm.step_weight(w2, B, T)
            c_prev = 2 * c0
            chunks = _projections(x, w_x, b, T if save else _chunk(B, 4 * H), "lstm.Z")
            for t0, Zc in chunks:
                chunk = steps[t0 : t0 + len(Zc)]
                args = (Zc, h0.contiguous(), c_prev, out, C, not save, w1, w_rest, h_n, c_n)
                loops.lstm_forward(chunk, *args)
            out.mul_(two)
            XH = None
        else:
            Zc, XH = _forward_loop(x, h0, c0, w_x, b, w1, w2, out, C, h_n, c_n, steps, save)
        h_n.mul_(two), c_n.mul_(half)
        _mask_padding(out, steps)
        if save:
            Zc[:, :, 2 * H : 3 * H].mul_(two).sub_(one)  # g, for the backward
            ctx.save_for_backward(x if XH is None else XH, h0, c0, w_ih, w_hh, Zc, C, out)
            ctx.norms = probe.claim(T, x)
        ctx.steps, ctx.combined = steps, XH is not None
        return out, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh_n, dc_n):
        x, h0, c0, w_ih, w_hh, Z, C, out = ctx.saved_tensors
        steps, need = ctx.steps, ctx.needs_input_grad
        T, B, H = out.shape
        dout = dout.contiguous()
        # the loops write every running row; padded rows zeroed (GEMMs read all rows)
        dZ = _mask_padding(buffer("lstm.dZ", Z.shape, Z), steps)  # (T, B, 4H)
        dc = dc_n.clone()  # rows not yet running hold dL/dc_n until their last step
        w_hh_t = w_hh.t().contiguous()
        norms = ctx.norms  # None unless a probe.GradientRecord is open
        loops = native.for_cpu(out)
        if loops is not None:  # the same loop in C++, which forms the K factors in the loop
            s_c = torch.sigmoid(C, out=buffer("lstm.tc", C.shape, C))  # (tanh c_t + 1) / 2
            w = gemm.step_weight(w_hh_t, B, T)
            dh = torch.empty_like(h0)
            args = (Z, s_c, C, c0.contiguous(), dout, dh_n.contiguous(), dZ, dc, dh, w)
            loops.lstm_backward(steps, *args, norms)
        else:
            _backward_loop(steps, Z, C, c0, dout, dh_n, dZ, dc, h0, w_hh_t, norms)
        dh0 = gemm.linear(dZ[0], w_hh_t) if need[1] else None
        dc0 = dc if need[2] else None
        if ctx.combined:  # x holds [x_t, h_{t-1} / 2]: dW_ih and dW_hh in one GEMM
            I = x.shape[2] - H
            dx, _, db_hh = _input_grads(dZ, x[:, :, :I], w_ih, (need[0], False, need[5] or need[6]))
            dw = gemm.t_mm(dZ.view(T * B, 4 * H), x.view(T * B, -1)) if need[3] or need[4] else None
            dw_ih = dw[:, :I].contiguous() if need[3] else None
            dw_hh = dw[:, I:].mul(2) if need[4] else None
        else:
            dw_hh, db_hh = _recurrent_grads(dZ, h0, out, need[4], need[5] or need[6])
            dx, dw_ih, _ = _input_grads(dZ, x, w_ih, (need[0], need[3], False))
        db_ih = db_hh if need[5] else None
        return dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh if need[6] else None, None


def _forward_loop(x, h0, c0, w_x, b, w1, w2, out, C, h_n, c_n, steps, save):
    """The forward's time loop in Python, over prebuilt per-step views: fills out (h), C,
    h_n and c_n (h_n still halved, c_n still doubled); returns the gates and, on the combined
    path, the saved [x_t, h_{t-1} / 2]."""
    T, B, H = out.shape
    one, two, half = _consts(x)
    outs = _rows(out, steps)
    if save:
        Cs, prev_c = _rows(C, steps), [2 * c0, *_rows(C[:-1], steps[1:])]
    else:  # two (B, H) buffers, used in turn
        ring = [_Prefixes(c) for c in C]
        Cs = [ring[t % 2][bt] for t, bt, _ in steps]
        prev_c = [2 * c0] + [ring[t % 2][bt] for t, (_, bt, _) in enumerate(steps[1:])]
    # Training on oneDNN with the Python loop: one product [x_t, h_{t-1} / 2] [W_ih; 2 W_hh]^T
    # per step, which replaces the all-steps input GEMM (measured faster there) and gives
    # dW in one GEMM. The C++ loop is faster with the separate products (measured 1.1x).
    combined = save and gemm.uses_onednn(B, w1)
    if combined:
        I = x.shape[2]
        # [x_t, h_{t-1} / 2]; zeros where padded: dW sums dZ^T XH over every row, and an
        # unwritten row could hold NaN (0 * NaN = NaN)
        new = torch.zeros if _padded(steps, B) else torch.empty
        XH = new(T, B, I + H, dtype=x.dtype, device=x.device)
        XH[:, :, :I] = x
        XH[0, :, I:] = h0 * half
        last = torch.empty_like(h0)
        h_dst = [*_rows(XH[1:, :, I:], steps[:-1]), last[: steps[-1][1]]]
        w_xh = torch.cat([w_x, w2], 1)
        xhs, mm = _rows(XH, steps), gemm.linear_step(w_xh, b, B, T)
        chunks = [(0, torch.empty(T, B, 4 * H, dtype=x.dtype, device=x.device))]

        def preactivate(t, z):
            torch.sigmoid(mm(xhs[t], z), out=z)
    else:
        h_dst = outs
        prev_h = [h0, *_rows(out[:-1], steps[1:])]  # h_{-1}, then h_{t-1} / 2
        mm1, mm2 = gemm.addmm_step(w1, B), gemm.addmm_step(w2, B, T)
        chunks = _projections(x, w_x, b, T if save else _chunk(B, 4 * H))

        def preactivate(t, z):
            (mm2 if t else mm1)(z, prev_h[t]).sigmoid_()

    for t0, Zc in chunks:
        chunk = steps[t0 : t0 + len(Zc)]
        gates = zip(_rows(Zc, chunk), *(_rows(g, chunk) for g in Zc.unflatten(2, (4, H)).unbind(2)))
        for (t, bt, bn), (z, i, f, s_g, o) in zip(chunk, gates):
            preactivate(t, z)  # z = sigmoid(z') = [i, f, s_g, o]
            c = torch.mul(f, prev_c[t], out=Cs[t])
            c.addcmul_(i, s_g, value=4).sub_(i, alpha=2)  # c'_t = f c'_{t-1} + 2 i g
            h = torch.sigmoid(c, out=h_dst[t]).mul_(o).sub_(o, alpha=0.5)  # o tanh(c) / 2
            if bn < bt:  # rows [bn, bt) end here
                h_n[bn:bt], c_n[bn:bt] = h[bn:bt], c[bn:bt]
    if combined:
        torch.mul(XH[1:, :, I:], two, out=out[:-1])
        torch.mul(last, two, out=out[-1])
    else:
        out.mul_(two)
    return Zc, XH if combined else None


def _backward_loop(steps, Z, C, c0, dout, dh_n, dZ, dc, h0, w_hh_t, norms):
    """The backward's reverse-time loop in Python: fills dZ, leaves dL/dc_0 in dc."""
    T, B, H = C.shape
    one, two, half = _consts(C)
    # recurrence-independent factors for all steps (padded rows are never read)
    i, f, g, o = Z.unflatten(2, (4, H)).unbind(2)
    tc = torch.sigmoid(C, out=buffer("lstm.tc", C.shape, C)).mul_(two).sub_(one)  # tanh c_t
    K_c = torch.mul(tc, tc, out=buffer("lstm.Kc", C.shape, C))
    torch.sub(o, K_c.mul_(o), out=K_c)  # o (1 - tanh^2 c_t)
    K = buffer("lstm.K", Z.shape, Z).unflatten(2, (4, H))  # (T, B, 4, H)
    K_i, K_f, K_g, K_o = K.unbind(2)
    torch.addcmul(i, i, i, value=-1, out=K_i).mul_(g)  # g i (1 - i)
    torch.addcmul(f, f, f, value=-1, out=K_f)  # f (1 - f) ...
    K_f[0].mul_(c0)  # ... c_{t-1}
    K_f[1:].mul_(C[:-1]).mul_(half)
    torch.mul(g, g, out=K_g).sub_(one).neg_().mul_(i)  # i (1 - g^2)
    torch.addcmul(o, o, o, value=-1, out=K_o).mul_(tc)  # tanh(c_t) o (1 - o)
    K_ifg = K[:, :, :3]

    dZ4 = dZ.unflatten(2, (4, H))
    dh = _Prefixes(torch.empty_like(h0))
    dcs, dc3s = _Prefixes(dc), _Prefixes(dc.unsqueeze(1))
    dZs, douts = _rows(dZ, steps), _rows(dout, steps)
    mm = gemm.addmm_out_step(w_hh_t, B, T)
    per_step = zip(
        _rows(K_c, steps),
        _rows(K_o, steps),
        _rows(K_ifg, steps),
        _rows(f, steps),
        _rows(dZ4[:, :, 3], steps),
        _rows(dZ4[:, :, :3], steps),
    )
    for (t, bt, bn), (kc, ko, kifg, f_t, dz_o, dz_ifg) in zip(
        reversed(steps), reversed(list(per_step))
    ):
        if bn:  # dh_t = dout_t + dz_{t+1} W_hh   (backprop through the recurrent GEMM)
            mm(douts[t] if bn == bt else douts[t][:bn], dZs[t + 1], dh[bn])
        dh_t = _grad_in(dout, dh_n, t, bt, bn, dh[bt])
        if norms is not None:
            torch.linalg.vector_norm(dh_t, out=norms[t])
        dc_t = dcs[bt].addcmul_(dh_t, kc)  # through h_t = o tanh(c_t)
        torch.mul(dh_t, ko, out=dz_o)  # through o
        torch.mul(dc3s[bt], kifg, out=dz_ifg)  # through i, f, g
        dc_t.mul_(f_t)  # dc_{t-1} = dc_t f   (through c_t = f c_{t-1} + ...)


def lstm_step(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step without autograd (generation) in one C++ call: (h', c'), or None where
    that does not apply (CUDA, no C++ loops, a gradient needed)."""
    loops = native.for_cpu(x)
    if loops is None or _needs_grad(x, h, c, w_ih, w_hh, b_ih, b_hh):
        return None
    onednn = gemm.uses_onednn(len(x), w_hh)
    h, c = loops.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, onednn)
    return h, c


def lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None):
    """The LSTM kernel: (out, h_n, c_n); through autograd only when a gradient is needed."""
    args = (x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    if _needs_grad(*args):
        return LSTMFunction.apply(*args, batch_sizes)
    return LSTMFunction.forward(_Inference(), *args, batch_sizes)
