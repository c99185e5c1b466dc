"""Whole-sequence kernels: one `torch.autograd.Function` per cell with a hand-written BPTT.

Each kernel runs one layer in one direction over a time-major sequence. The forward computes
the input projections of all steps in one GEMM and loops over time only for the recurrence;
the backward runs a reverse-time loop for the state gradients only, then gets the weight and
input gradients as one GEMM each over all steps. `docs/bptt.md` derives every line.

    T: time steps, B: batch, I: input size, H: hidden size, G: gates (RNN 1, LSTM 4, GRU 3)
    x (T, B, I)   out (T, B, H)   h0, h_n, c0, c_n (B, H)

Variable lengths follow PackedSequence's layout: the batch is sorted by length (longest
first) and `batch_sizes[t]` rows are running at step t, so rows [0, b_t) are a prefix and the
state of a running row at t-1 is `out[t-1, row]`. Padded outputs are zero, each row's final
state is taken at its own last step, and padded steps cost no FLOPs in the recurrence
(the input projection and the weight-gradient GEMMs still run over all T * B rows).

Why sigmoids: torch's CPU `tanh` is 3-10x slower than its `sigmoid` (measured, see
docs/bptt.md), so the forward computes tanh(a) = 2 sigmoid(2a) - 1, with the factor 2 folded
into the weights of tanh'd pre-activations (`_scaled`). The backward uses the true weights.
Scalars in per-step ops are 0-dim tensors: a Python scalar costs a host copy per call.
"""

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from rnnkit import gemm
from rnnkit.workspace import buffer


def _steps(batch_sizes: tuple[int, ...] | None, T: int, B: int) -> list[tuple[int, int, int]]:
    """(t, b_t, b_{t+1}) for every step; b_T = 0. Rows [b_{t+1}, b_t) end at step t."""
    bs = list(batch_sizes) if batch_sizes is not None else [B] * T
    return [(t, bs[t], bs[t + 1] if t + 1 < T else 0) for t in range(T)]


def _rows(seq: Tensor, steps: list[tuple[int, int, int]]) -> list[Tensor]:
    """seq[k, :b_t] for the k-th of `steps`, from one unbind: a view op costs about 1 us, as
    much as a small pointwise op, so the loops take their per-step views from here."""
    B = seq.shape[1]
    views = seq.unbind(0)
    if all(bt == B for _, bt, _ in steps):
        return list(views)
    return [v if bt == B else v[:bt] for v, (_, bt, _) in zip(views, steps)]


class _Prefixes(dict):
    """x[:b] on demand, each view made once."""

    def __init__(self, x: Tensor):
        super().__init__()
        self.x = x

    def __missing__(self, b: int) -> Tensor:
        self[b] = v = self.x if b == len(self.x) else self.x[:b]
        return v


def _padded(steps: list[tuple[int, int, int]], B: int) -> bool:
    return any(bt < B for _, bt, _ in steps)


def _project(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """W x_t + b for all steps in one GEMM: (T, B, I) -> (T, B, G*H)."""
    T, B, I = x.shape
    return gemm.linear(x.reshape(T * B, I), w, b).view(T, B, -1)


def _chunk(B: int, GH: int) -> int:
    """Steps per input-projection GEMM when nothing is saved: 2^19 pre-activations (2 MB, fp32)."""
    return max(1, (1 << 19) // (B * GH))


def _projections(x: Tensor, w: Tensor, b: Tensor | None, chunk: int):
    """(t0, W x_t + b for the steps [t0, t0 + chunk)), one GEMM per chunk."""
    T = x.shape[0]
    for t0 in range(0, T, chunk):
        yield t0, _project(x if chunk >= T else x[t0 : t0 + chunk], w, b)


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


def _scaled(w: Tensor | None, lo: int, hi: int, k: float) -> Tensor | None:
    """A copy of w with rows [lo, hi) multiplied by k (fold a pre-activation scale into W)."""
    if w is None:
        return None
    w = w.clone()
    w[lo:hi] *= k
    return w


def _consts(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """0-dim 1, 2 and 0.5 of x's dtype and device."""
    return x.new_ones(()), x.new_full((), 2.0), x.new_full((), 0.5)


def _mask_padding(out: Tensor, steps: list[tuple[int, int, int]]) -> None:
    """Zero the outputs of padded steps in place."""
    for t, b, _ in steps:
        if b < out.shape[1]:
            out[t, b:].zero_()


def _final(seq: Tensor, steps: list[tuple[int, int, int]]) -> Tensor:
    """Each row's state at its own last step: rows [b_{t+1}, b_t) end at step t."""
    last = torch.empty_like(seq[0])
    for t, b, bn in steps:
        if bn < b:
            last[bn:b] = seq[t, bn:b]
    return last


def _grad_in(dout: Tensor, d_last: Tensor, t: int, b: int, bn: int, out: Tensor) -> Tensor:
    """dL/dh_t for rows [0, b) in out (b rows): rows [bn, b) end at t and get dout_t + dL/dh_n
    here; the caller has written rows [0, bn) (dout_t plus the recurrent term)."""
    if bn < b:
        torch.add(dout[t, bn:b], d_last[bn:b], out=out[bn:])
    return out


def _recurrent_grads(dU: Tensor, h0: Tensor, out: Tensor, need_w: bool, need_b: bool):
    """dW_hh = sum_t dU_t^T h_{t-1}, db_hh = sum_t dU_t (dU: grad of W_hh h_{t-1} + b_hh)."""
    dw = db = None
    if need_w:
        T, B, GH = dU.shape
        dw = dU[0].t().mm(h0)
        if T > 1:
            dw += gemm.t_mm(dU[1:].reshape(-1, GH), out[:-1].reshape((T - 1) * B, -1))
    if need_b:
        db = dU.sum((0, 1))
    return dw, db


def _input_grads(dA: Tensor, x: Tensor, w_ih: Tensor, needs: tuple[bool, bool, bool]):
    """dx = dA W_ih, dW_ih = sum_t dA_t^T x_t, db_ih = sum_t dA_t (dA: grad of W_ih x_t + b_ih)."""
    T, B, GH = dA.shape
    dA2 = dA.view(T * B, GH)
    dx = gemm.linear(dA2, w_ih.t()).view(T, B, -1) if needs[0] else None
    dw = gemm.t_mm(dA2, x.reshape(T * B, -1)) if needs[1] else None
    db = dA2.sum(0) if needs[2] else None
    return dx, dw, db


class RNNFunction(Function):
    """Elman RNN over a sequence: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    Forward per step (tanh): z'_t += s_{t-1} W'_hh^T; s_t = sigmoid(z'_t), where z' = 2 z and
    the state is kept as s = (h + 1) / 2, so h_{t-1} = 2 s_{t-1} - 1 folds into the GEMM:
    W'_hh = 4 W_hh and z'_t gets -2 W_hh 1 (t >= 1). h = 2 s - 1 once after the loop.
    Backward: dz_t = (dout_t + dz_{t+1} W_hh) * act'(h_t), act' = 1 - h^2 or [h > 0].
    Saved: x, out (T, B, H) and h0; the backward's workspace: D and dZ (T, B, H).
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, nonlinearity):
        T, B, _ = x.shape
        steps = _steps(batch_sizes, T, B)
        b = _add(b_ih, b_hh)
        if nonlinearity == "tanh":
            one, two, _ = _consts(x)
            Z = _project(x, 2 * w_ih, None if b is None else 2 * b)  # z' = 2 z  (T, B, H)
            if T > 1:
                Z[1:] -= 2 * w_hh.sum(1)  # -2 W_hh 1: h_{t-1} = 2 s_{t-1} - 1
            mm0, mm = gemm.addmm_step(2 * w_hh, B), gemm.addmm_step(4 * w_hh, B)
            prev = [h0, *_rows(Z[:-1], steps[1:])]  # h_{-1}, then s_{t-1}
            for z, h, t in zip(_rows(Z, steps), prev, range(T)):
                (mm if t else mm0)(z, h).sigmoid_()  # s_t
            out = Z.mul_(two).sub_(one)  # h = 2 s - 1
        else:
            Z = _project(x, w_ih, b)
            mm = gemm.addmm_step(w_hh, B)
            for z, h in zip(_rows(Z, steps), [h0, *_rows(Z[:-1], steps[1:])]):
                mm(z, h).clamp_min_(0)
            out = Z
        h_n = _final(out, steps)
        _mask_padding(out, steps)
        ctx.save_for_backward(x, h0, w_ih, w_hh, out)
        ctx.steps, ctx.relu = steps, nonlinearity == "relu"
        return out, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh_n):
        x, h0, w_ih, w_hh, out = ctx.saved_tensors
        steps, need = ctx.steps, ctx.needs_input_grad
        dout = dout.contiguous()
        one, _, _ = _consts(out)
        D = buffer("rnn.D", out.shape, out)  # act'(z_t) for all steps at once
        if ctx.relu:
            torch.gt(out, 0, out=D)
        else:
            torch.mul(out, out, out=D).sub_(one).neg_()  # 1 - h^2
        dZ = buffer("rnn.dZ", out.shape, out, zero=_padded(steps, out.shape[1]))
        dh = _Prefixes(torch.empty_like(h0))
        w_hh_t = w_hh.t().contiguous()
        dZs, Ds, douts = _rows(dZ, steps), _rows(D, steps), _rows(dout, steps)
        mm = gemm.addmm_out_step(w_hh_t, len(h0))
        for t, bt, bn in reversed(steps):
            if bn:  # dh_t = dout_t + dz_{t+1} W_hh   (backprop through the recurrent GEMM)
                mm(douts[t] if bn == bt else douts[t][:bn], dZs[t + 1], dh[bn])
            dh_t = _grad_in(dout, dh_n, t, bt, bn, dh[bt])
            torch.mul(dh_t, Ds[t], out=dZs[t])  # dz_t = dh_t act'(z_t)   (through act)
        dh0 = gemm.linear(dZ[0], w_hh_t) if need[1] else None
        dw_hh, db_hh = _recurrent_grads(dZ, h0, out, need[3], need[5] or need[4])
        dx, dw_ih, _ = _input_grads(dZ, x, w_ih, (need[0], need[2], False))
        db_ih = db_hh if need[4] else None
        return dx, dh0, dw_ih, dw_hh, db_ih, db_hh if need[5] else None, None, None


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
        out = torch.empty(T, B, H, dtype=x.dtype, device=x.device)  # h / 2 until the end
        C = torch.empty_like(out) if save else buffer("lstm.c", (2, B, H), x)  # c' = 2c
        h_n, c_n = torch.empty_like(h0), torch.empty_like(c0)
        outs = _rows(out, steps)
        if save:
            Cs, prev_c = _rows(C, steps), [2 * c0, *_rows(C[:-1], steps[1:])]
        else:  # two (B, H) buffers, used in turn
            ring = [_Prefixes(c) for c in C]
            Cs = [ring[t % 2][bt] for t, bt, _ in steps]
            prev_c = [2 * c0] + [ring[t % 2][bt] for t, (_, bt, _) in enumerate(steps[1:])]
        # Training on oneDNN: one product [x_t, h_{t-1} / 2] [W_ih; 2 W_hh]^T per step, which
        # replaces the all-steps input GEMM (measured faster there) and gives dW in one GEMM.
        combined = save and gemm.uses_onednn(B, w1)
        if combined:
            I = x.shape[2]
            XH = torch.empty(T, B, I + H, dtype=x.dtype, device=x.device)  # [x_t, h_{t-1} / 2]
            XH[:, :, :I] = x
            XH[0, :, I:] = h0 * half
            last = torch.empty_like(h0)
            h_dst = [*_rows(XH[1:, :, I:], steps[:-1]), last[: steps[-1][1]]]
            xhs, mm = _rows(XH, steps), gemm.linear_step(torch.cat([w_x, w2], 1), b, B)
            chunks = [(0, torch.empty(T, B, 4 * H, dtype=x.dtype, device=x.device))]

            def preactivate(t, z):
                torch.sigmoid(mm(xhs[t], z), out=z)
        else:
            h_dst = outs
            prev_h = [h0, *_rows(out[:-1], steps[1:])]  # h_{-1}, then h_{t-1} / 2
            mm1, mm2 = gemm.addmm_step(w1, B), gemm.addmm_step(w2, B)
            chunks = _projections(x, w_x, b, T if save else _chunk(B, 4 * H))

            def preactivate(t, z):
                (mm2 if t else mm1)(z, prev_h[t]).sigmoid_()

        for t0, Zc in chunks:
            chunk = steps[t0 : t0 + len(Zc)]
            gates = zip(
                _rows(Zc, chunk), *(_rows(g, chunk) for g in Zc.unflatten(2, (4, H)).unbind(2))
            )
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
        h_n.mul_(two), c_n.mul_(half)
        _mask_padding(out, steps)
        if save:
            Zc[:, :, 2 * H : 3 * H].mul_(two).sub_(one)  # g, for the backward
            ctx.save_for_backward(XH if combined else x, h0, c0, w_ih, w_hh, Zc, C, out)
        ctx.steps, ctx.combined = steps, combined
        return out, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh_n, dc_n):
        x, h0, c0, w_ih, w_hh, Z, C, out = ctx.saved_tensors
        steps, need = ctx.steps, ctx.needs_input_grad
        T, B, H = out.shape
        dout = dout.contiguous()
        one, two, half = _consts(out)
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

        dZ = buffer("lstm.dZ", Z.shape, Z, zero=_padded(steps, B))  # (T, B, 4H)
        dZ4 = dZ.unflatten(2, (4, H))
        dh = _Prefixes(torch.empty_like(h0))
        dc = dc_n.clone()  # rows not yet running hold dL/dc_n until their last step
        dcs, dc3s = _Prefixes(dc), _Prefixes(dc.unsqueeze(1))
        w_hh_t = w_hh.t().contiguous()
        dZs, douts = _rows(dZ, steps), _rows(dout, steps)
        mm = gemm.addmm_out_step(w_hh_t, B)
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
            dc_t = dcs[bt].addcmul_(dh_t, kc)  # through h_t = o tanh(c_t)
            torch.mul(dh_t, ko, out=dz_o)  # through o
            torch.mul(dc3s[bt], kifg, out=dz_ifg)  # through i, f, g
            dc_t.mul_(f_t)  # dc_{t-1} = dc_t f   (through c_t = f c_{t-1} + ...)
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
        out = torch.empty(T, B, H, dtype=x.dtype, device=x.device)  # q until the end
        U = None  # (T, B, 3H) recurrent pre-activations (n part: 2 u_n)
        h_n = torch.empty_like(h0)
        prev = [(h0 + one) * half, *_rows(out[:-1], steps[1:])]  # q_{t-1}
        outs = _rows(out, steps)
        mm = gemm.linear_step(w, b_u, B)
        fresh = []  # (t, u_t) where oneDNN returned the product in a new tensor
        for t0, A in _projections(x, w_x, b_x, T if save else _chunk(B, 3 * H)):
            chunk = steps[t0 : t0 + len(A)]
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
        ctx.steps = steps
        return out, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh_n):
        x, h0, w_ih, w_hh, A, U, out = ctx.saved_tensors
        steps, need = ctx.steps, ctx.needs_input_grad
        T, B, H = out.shape
        dout = dout.contiguous()
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

        padded = _padded(steps, B)
        dU = buffer("gru.dU", A.shape, A, zero=padded)  # (T, B, 3H)
        dU3 = dU.unflatten(2, (3, H))
        DH = buffer("gru.DH", out.shape, out, zero=padded)  # dL/dh_t
        w_hh_t = w_hh.t().contiguous()
        DHs, dUs, douts, zs = (_rows(v, steps) for v in (DH, dU, dout, z))
        mm = gemm.addmm_step(w_hh_t, B)
        per_step = zip(_rows(DH.unsqueeze(2), steps), _rows(K, steps), _rows(dU3, steps))
        for (t, bt, bn), (dh3, k, du3) in zip(reversed(steps), reversed(list(per_step))):
            if bn:  # dh_t = dout_t + z_{t+1} dh_{t+1} + du_{t+1} W_hh
                dh, d = (DHs[t], douts[t]) if bn == bt else (DHs[t][:bn], douts[t][:bn])
                torch.addcmul(d, zs[t + 1], DHs[t + 1], out=dh)
                mm(dh, dUs[t + 1])
            _grad_in(dout, dh_n, t, bt, bn, DHs[t])
            torch.mul(dh3, k, out=du3)  # through r, z, n
        dh0 = None
        if need[1]:
            dh0 = gemm.addmm_(z[0] * DH[0], dU[0], w_hh_t)
        dw_hh, db_hh = _recurrent_grads(dU, h0, out, need[3], need[5])
        torch.mul(DH, K_n, out=dU3[:, :, 2])  # the input side of n is not multiplied by r
        dx, dw_ih, db_ih = _input_grads(dU, x, w_ih, (need[0], need[2], need[4]))
        return dx, dh0, dw_ih, dw_hh, db_ih, db_hh, None


class _Inference:
    """Stands in for autograd's ctx when no gradient is needed: the kernel saves nothing."""

    needs_input_grad = (False,) * 8

    def save_for_backward(self, *tensors):
        pass


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def rnn(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None, nonlinearity="tanh"):
    """The Elman RNN kernel: (out, h_n); through autograd only when a gradient is needed."""
    args = (x, h0, w_ih, w_hh, b_ih, b_hh)
    if _needs_grad(*args):
        return RNNFunction.apply(*args, batch_sizes, nonlinearity)
    return RNNFunction.forward(_Inference(), *args, batch_sizes, nonlinearity)


def lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None):
    """The LSTM kernel: (out, h_n, c_n); through autograd only when a gradient is needed."""
    args = (x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    if _needs_grad(*args):
        return LSTMFunction.apply(*args, batch_sizes)
    return LSTMFunction.forward(_Inference(), *args, batch_sizes)


def gru(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None):
    """The GRU kernel: (out, h_n); through autograd only when a gradient is needed."""
    args = (x, h0, w_ih, w_hh, b_ih, b_hh)
    if _needs_grad(*args):
        return GRUFunction.apply(*args, batch_sizes)
    return GRUFunction.forward(_Inference(), *args, batch_sizes)
