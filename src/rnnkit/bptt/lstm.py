"""The LSTM kernel: forward loop and hand-written BPTT, with torch.nn's projection of h
(proj_size) where a W_hr is given."""

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from rnnkit.bptt import gemm, lstm_noise, native, probe
from rnnkit.bptt.common import (
    _add,
    _chunk,
    _dense,
    _grad_in,
    _Inference,
    _mask_padding,
    _needs_grad,
    _one,
    _Prefixes,
    _projections,
    _rows,
    _shared_grads,
    _steps,
    _without_autocast,
)
from rnnkit.bptt.workspace import buffer, recycled
from rnnkit.regularisers import Noise


class LSTMFunction(Function):
    """LSTM over a sequence; gates (i, f, g, o) packed as in torch.nn; with a projection
    W_hr (P, H) (torch.nn's proj_size = P) h is P wide and W_hh (4H, P), else P = H, m = h.

        z_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh              (B, 4H)
        i, f, o = sigmoid(z_i, z_f, z_o)   g = tanh(z_g)
        c_t = f * c_{t-1} + i * g          m_t = o * tanh(c_t)    (B, H)
        h_t = W_hr m_t                                            (B, P)

    Backward per step (factors K precomputed for all steps before the loop):
        dh_t = dout_t + dz_{t+1} W_hh                             (B, P)
        dm_t = dh_t W_hr                                          (B, H)
        dc_t = dc_t + dm_t * K_c,          K_c = o (1 - tanh^2 c_t)
        dz_o = dm_t * K_o,                 K_o = tanh(c_t) o (1 - o)
        dz_{i,f,g} = dc_t * K_{i,f,g},     K_i = g i (1 - i), K_f = c_{t-1} f (1 - f),
                                           K_g = i (1 - g^2)
        dc_{t-1} = dc_t * f
    and after the loop dW_hr = sum_t dh_t^T m_t, one GEMM, with m = o tanh(c) recomputed.
    Saved: gates Z (T, B, 4H), cells C (T, B, H), out (T, B, P), h0, c0: 5TBH + TBP + BH + BP.
    The backward's workspace: K and dZ (T, B, 4H), tanh(c) and K_c (T, B, H); with a
    projection dh (T, B, P) and m (T, B, H) for dW_hr.

    With `noise` (regularisers.Noise: recurrent dropout's mask m (B, P), zoneout's k_h
    (T, B, P) and k_c (T, B, H), in the kernel's rows), z_t reads W_hh (m h_{t-1}) and
        c_t = k_c c_{t-1} + (1 - k_c) c~_t,   c~_t = f c_{t-1} + i g
        h_t = k_h h_{t-1} + (1 - k_h) h~_t,   h~_t = W_hr (o tanh(c~_t))
    Backward: dh_t = dout_t + m (dz_{t+1} W_hh) + k_h,{t+1} dh_{t+1}, dh~_t = (1 - k_h) dh_t
    in place of dh_t above, dc~_t = (1 - k_c) dc_t + dm_t K_c (K_c, K_o of c~_t),
    dc_{t-1} = k_c dc_t + f dc~_t; dW_hh reads m h_{t-1}. C holds the zoned c_t; the
    backward forms c~_t from Z and C. dh (T, B, P) is kept.

    With `cells`, also every c_t (T, B, H) as a fourth output (LSTM.forward_with_cells), its
    gradient added to dL/dc_t at each step (on lstm_noise.py's backward, noise or not).
    """

    @staticmethod
    def forward(
        ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes, w_hr=None, noise=None, cells=False
    ):
        ctx.steps = _steps(batch_sizes, *x.shape[:2])
        grad = any(ctx.needs_input_grad)  # inference keeps no per-step gates or cells
        ctx.native = native.for_cpu(x) is not None
        ctx.noise = noise = Noise() if cells and noise is None else noise
        args = (x, h0, c0, w_ih, w_hh, b_ih, b_hh, ctx.steps, grad or cells, ctx.native, w_hr)
        out, h_n, c_n, Z, C = lstm_forward(*args, noise)
        if grad:
            ctx.save_for_backward(x, h0, c0, w_ih, w_hh, out, Z, C, w_hr)
            ctx.norms = probe.claim(len(x), x)
        if not cells:
            return out, h_n, c_n
        C = C * 0.5 if ctx.native else C.clone()  # the C++ loop's C holds 2c
        return out, h_n, c_n, _mask_padding(C, ctx.steps)

    @staticmethod
    @_without_autocast
    @once_differentiable
    def backward(ctx, dout, dh_n, dc_n, dC=None):
        need = ctx.needs_input_grad  # (x, h0, c0, W_ih, W_hh, b_ih, b_hh, batch_sizes[, W_hr])
        needs = (*need[:5], need[5] or need[6], len(need) > 8 and need[8])
        args = (ctx.steps, ctx.native, ctx.norms, dout, dh_n, dc_n, *ctx.saved_tensors[:8])
        w_hr = ctx.saved_tensors[8]
        dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr = lstm_backward(*args, needs, w_hr, ctx.noise, dC)
        grads = (dx, dh0, dc0, dw_ih, dw_hh, db, db, None, dw_hr, None, None)
        return tuple(g if n else None for g, n in zip(grads, need))


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, steps, save, use_native, w_hr=None, noise=None):
    """The forward of `LSTMFunction` (and of the rnnkit::lstm operator, bptt/ops.py) on the
    kernel's layout: (out, h_n, c_n, Z, C), Z and C what the backward reads (C holds 2c on the
    C++ loop, see native.lstm_forward), None unless `save`; `noise`: see LSTMFunction."""
    args = (x, h0, c0, w_ih, w_hh, _add(b_ih, b_hh), steps, save, w_hr)
    if use_native:  # the same loop in C++
        Z, C, out, h_n, c_n = native.lstm_forward(*args, noise)
    elif noise is not None:
        Z, C, out, h_n, c_n = lstm_noise.forward_loop(*args, noise)
    else:
        Z, C, out, h_n, c_n = _forward_loop(*args)
    _mask_padding(out, steps)
    return (out, h_n, c_n, Z, C) if save else (out, h_n, c_n, None, None)


def lstm_backward(
    steps,
    use_native,
    norms,
    dout,
    dh_n,
    dc_n,
    x,
    h0,
    c0,
    w_ih,
    w_hh,
    out,
    Z,
    C,
    needs,
    w_hr=None,
    noise=None,
    dC=None,
):
    """The backward of `lstm_forward`: (dx, dh0, dc0, dW_ih, dW_hh, db, dW_hr), db the
    gradient of b_ih and of b_hh alike; None where `needs` (x, h0, c0, W_ih, W_hh, b, W_hr)
    is False, and dW_hr None without a projection. `use_native`: the loop the forward ran;
    norms: see probe.py; `noise`: the forward's (lstm_noise.py); dC: the gradient of the
    cells (T, B, H) with LSTMFunction's `cells`."""
    if noise is not None:
        args = (steps, use_native, norms, dout, dh_n, dc_n, x, h0, c0, w_ih, w_hh, out, Z, C)
        return lstm_noise.backward(*args, needs, w_hr, noise, dC)
    dout = _dense(dout, "lstm.dout")
    # the loops write every running row; padded rows zeroed (GEMMs read all rows)
    dZ = _mask_padding(buffer("lstm.dZ", Z.shape, Z), steps)  # (T, B, 4H)
    dc = dc_n.clone()  # rows not yet running hold dL/dc_n until their last step
    w_hh_t = w_hh.t().contiguous()
    proj = None  # with a projection: W_hr, and dh_t (T, B, P) and m_t (T, B, H) for dW_hr
    if w_hr is not None:
        DH = _mask_padding(buffer("lstm.DH", out.shape, out), steps)  # as dZ
        proj = (w_hr, DH, buffer("lstm.M", C.shape, C))
    args = (steps, Z, C, c0, dout, dh_n, dZ, dc, h0, w_hh_t, norms, proj)
    db = Z.new_empty(Z.shape[2]) if use_native and needs[5] else None  # summed by the loop
    if use_native:  # the same loop in C++
        native.lstm_backward(*args, db=db)
    else:
        _backward_loop(*args)
    dh0 = gemm.linear(dZ[0], w_hh_t) if needs[1] else None
    dc0 = dc if needs[2] else None
    dx, dw_ih, dw_hh, db = _shared_grads(dZ, x, w_ih, h0, out, [needs[i] for i in (0, 3, 4, 5)], db)
    dw_hr = _projection_grad(steps, *proj[1:]) if proj and needs[6] else None
    return dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr


def _projection_grad(steps, DH, M):
    """dW_hr = sum_t dh_t^T m_t (through h_t = W_hr m_t), one GEMM over all T * B rows.
    DH's padded rows are zero; M's hold anything (the Python loop forms m for all rows,
    the C++ loop for the running ones), zeroed first."""
    return gemm.t_mm(DH.flatten(0, 1), _mask_padding(M, steps).flatten(0, 1))  # (P, H)


def _forward_loop(x, h0, c0, w_ih, w_hh, b, steps, save, w_hr=None):
    """The forward's time loop in Python: (Z, C, out, h_n, c_n), Z the gates [i, f, g, o]
    of all steps (of the last chunk when not saving), C the cells (two (B, H) buffers used
    in turn when not saving); out (T, B, P), h_t = m_t W_hr^T with a projection."""
    T, B, _ = x.shape
    H, P = c0.shape[1], h0.shape[1]
    out = recycled("lstm.out", (T, B, P), x)
    C = recycled("lstm.C", (T, B, H), x) if save else buffer("lstm.c", (2, B, H), x)
    h_n, c_n = torch.empty_like(h0), torch.empty_like(c0)
    cs, prev_c = _cells(C, c0, steps, save)  # c_t, c_{t-1}
    hs, prev_h = _rows(out, steps), [h0, *_rows(out[:-1], steps[1:])]  # h_t, h_{t-1}
    ms, project = hs, None  # m_t = o tanh(c_t) is h_t without a projection
    if w_hr is not None:
        ms, project = _scratch("lstm.m", B, H, steps, x), _product(w_hr, B, T)
    mm = gemm.addmm_step(w_hh, B, T)
    for t0, Z in _projections(x, w_ih, b, T if save else _chunk(B, 4 * H), "lstm.Z"):
        chunk = steps[t0 : t0 + len(Z)]
        views = (Z, Z[:, :, : 2 * H], *Z.unflatten(2, (4, H)).unbind(2))  # z, [i, f], i, f, g, o
        for (t, bt, bn), z, i_f, i, f, g, o in zip(chunk, *(_rows(v, chunk) for v in views)):
            mm(z, prev_h[t])  # z_t = W_ih x_t + b_ih + b_hh + W_hh h_{t-1}
            i_f.sigmoid_()  # i, f = sigmoid(z_i, z_f)
            g.tanh_()  # g = tanh(z_g)
            o.sigmoid_()  # o = sigmoid(z_o)
            c = torch.mul(f, prev_c[t], out=cs[t]).addcmul_(i, g)  # c_t = f c_{t-1} + i g
            h = torch.tanh(c, out=ms[t]).mul_(o)  # m_t = o tanh(c_t): h_t without projection
            if project is not None:
                h = project(h, hs[t])  # h_t = m_t W_hr^T
            if bn < bt:  # rows [bn, bt) end here
                h_n[bn:bt], c_n[bn:bt] = h[bn:bt], c[bn:bt]
    return Z, C, out, h_n, c_n


def _scratch(name, B, n, steps, like):
    """Per step, rows [0, b_t) of one (B, n) workspace buffer."""
    rows = _Prefixes(buffer(name, (B, n), like))
    return [rows[bt] for _, bt, _ in steps]


def _product(w, B, T):
    """f(x, out) -> out = x W^T, for T products of at most B rows (the projection's step)."""
    step = gemm.linear_step(w, None, B, T)

    def f(x, out):
        y = step(x, out)  # into out on ATen; a new tensor on the packed GEMMs
        return y if y is out else out.copy_(y)

    return f


def _cells(C, c0, steps, save):
    """Per step, the views c_t is written to and c_{t-1} is read from: C[t] and C[t-1] when
    saving, else C's two (B, H) buffers in turn."""
    if save:
        return _rows(C, steps), [c0, *_rows(C[:-1], steps[1:])]
    ring = [_Prefixes(c) for c in C]
    cs = [ring[t % 2][bt] for t, bt, _ in steps]
    return cs, [c0] + [ring[t % 2][bt] for t, (_, bt, _) in enumerate(steps[1:])]


def _factors(Z, C, c0):
    """The backward's recurrence-independent factors, for all steps at once: K_c, K_o,
    [K_i, K_f, K_g] (T, B, 3, H) and tanh(c_t). Padded rows hold anything; the loop never
    reads them."""
    T, B, H = C.shape
    one = _one(C)
    i, f, g, o = Z.unflatten(2, (4, H)).unbind(2)
    tc = torch.tanh(C, out=buffer("lstm.tc", C.shape, C))  # tanh c_t
    K_c = torch.mul(tc, tc, out=buffer("lstm.Kc", C.shape, C))
    torch.sub(o, K_c.mul_(o), out=K_c)  # o (1 - tanh^2 c_t)
    K = buffer("lstm.K", Z.shape, Z).unflatten(2, (4, H))  # (T, B, 4, H)
    K_i, K_f, K_g, K_o = K.unbind(2)
    torch.addcmul(i, i, i, value=-1, out=K_i).mul_(g)  # g i (1 - i)
    torch.addcmul(f, f, f, value=-1, out=K_f)  # f (1 - f) ...
    K_f[0].mul_(c0)  # ... c_{t-1}
    K_f[1:].mul_(C[:-1])
    torch.mul(g, g, out=K_g).sub_(one).neg_().mul_(i)  # i (1 - g^2)
    torch.addcmul(o, o, o, value=-1, out=K_o).mul_(tc)  # tanh(c_t) o (1 - o)
    return K_c, K_o, K[:, :, :3], tc


def _backward_loop(steps, Z, C, c0, dout, dh_n, dZ, dc, h0, w_hh_t, norms, proj=None):
    """The backward's reverse-time loop in Python: fills dZ, leaves dL/dc_0 in dc; with a
    projection `proj` = (W_hr, DH, M), also dh_t into DH (T, B, P), m_t into M (T, B, H)."""
    T, B, H = C.shape
    K_c, K_o, K_ifg, tc = _factors(Z, C, c0)
    Z4, dZ4 = Z.unflatten(2, (4, H)), dZ.unflatten(2, (4, H))
    f = Z4[:, :, 1]
    dh = [_Prefixes(torch.empty_like(h0))] * T  # per step, where dh_t goes: one buffer
    dms, project = None, None  # dm_t = dh_t W_hr, or dh_t itself without a projection
    if proj is not None:
        w_hr, DH, M = proj
        dh = [_Prefixes(v) for v in DH.unbind(0)]  # ... or DH[t], kept for dW_hr
        dms = _scratch("lstm.dm", B, H, steps, dc)
        project = _product(w_hr.t().contiguous(), B, T)  # dm_t = dh_t (W_hr^T)^T
        torch.mul(Z4[:, :, 3], tc, out=M)  # m_t = o tanh(c_t), for dW_hr
    dcs, dc3s = _Prefixes(dc), _Prefixes(dc.unsqueeze(1))
    dZs, douts = _rows(dZ, steps), _rows(dout, steps)
    mm = gemm.addmm_out_step(w_hh_t, B, T)
    views = (K_c, K_o, K_ifg, f, dZ4[:, :, 3], dZ4[:, :, :3])
    per_step = list(zip(*(_rows(v, steps) for v in views)))
    for (t, bt, bn), (kc, ko, kifg, f_t, dz_o, dz_ifg) in zip(reversed(steps), reversed(per_step)):
        if bn:  # dh_t = dout_t + dz_{t+1} W_hh   (through z_{t+1} = ... + W_hh h_t)
            mm(douts[t] if bn == bt else douts[t][:bn], dZs[t + 1], dh[t][bn])
        dh_t = _grad_in(dout, dh_n, t, bt, bn, dh[t][bt])  # rows ending at t: dout_t + dh_n
        if norms is not None:
            torch.linalg.vector_norm(dh_t, out=norms[t])
        dm_t = dh_t if project is None else project(dh_t, dms[t])  # (through h_t = W_hr m_t)
        dc_t = dcs[bt].addcmul_(dm_t, kc)  # dc_t += dm_t K_c   (through m_t = o tanh(c_t))
        torch.mul(dm_t, ko, out=dz_o)  # dz_o = dm_t K_o   (through o)
        torch.mul(dc3s[bt], kifg, out=dz_ifg)  # dz_{i,f,g} = dc_t K_{i,f,g}   (through c_t)
        dc_t.mul_(f_t)  # dc_{t-1} = dc_t f   (through c_t = f c_{t-1} + i g)


def lstm_step(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None):
    """One LSTM step without autograd (generation) in one C++ call, then h' = m W_hr^T with
    a projection: (h', c'), or None where that does not apply (CUDA, no C++ loops, a gradient
    needed); the rnnkit::lstm_cell operator (bptt/ops.py) under torch.compile and
    torch.export."""
    if _needs_grad(x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr):
        return None
    if torch.compiler.is_compiling():
        return torch.ops.rnnkit.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr)
    loops = native.for_cpu(x)
    if loops is None:
        return None
    onednn = gemm.uses_onednn(len(x), w_hh)
    m, c = loops.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, onednn)  # m = o tanh(c')
    return (m if w_hr is None else gemm.linear(m, w_hr)), c


def lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None, w_hr=None, noise=None, cells=False):
    """The LSTM kernel: (out, h_n, c_n), and every c_t (T, B, H) with `cells`; through autograd
    only when a gradient is needed. w_hr (P, H): torch.nn's projection (proj_size = P), h0 and
    out P wide; or None. noise: the regularisers in the kernel (regularisers.Noise, kernel's
    rows) or None."""
    args = (x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    if _needs_grad(*args, w_hr):
        return LSTMFunction.apply(*args, batch_sizes, w_hr, noise, cells)
    return LSTMFunction.forward(_Inference(), *args, batch_sizes, w_hr, noise, cells)
