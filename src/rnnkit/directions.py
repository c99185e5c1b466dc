"""One layer in one direction over time, each way a layer runs it: the cell's BPTT kernel
(eager, impl="bptt"), the cell's operator (under torch.compile and torch.export), or the cell's
step looped under autograd (impl="loop", the reference).

Each function makes a `run(x, state, weights, reverse, noise) -> (out, state')` for
`layers._stack`:

    T: time, B: batch, I: input size, H: hidden size
    x (T, B, I)   out (T, B, H)   state, state' [h] or [h, c], each (B, H)
    weights (W_ih, W_hh, b_ih, b_hh), as `cells.Weights`
    noise: a `regularisers.Noise` (recurrent dropout mask (B, H), zoneout weights (T, B, .)
        indexed by the step of x they go with, the caller's rows) or None
"""

import torch
from torch import Tensor

from rnnkit.cells import Cell
from rnnkit.lengths import Batch
from rnnkit.regularisers import Noise


def op_direction(cell: Cell, nonlinearity: str | None, lengths: Tensor | None):
    """The cell's operator (bptt/ops.py), in the caller's row order: the path under
    torch.compile and torch.export, with no data-dependent Python; in a plain torch.onnx.export
    (without rnnkit.export.onnx's translation table), ONNX's own node (export/symbolic.py).
    `noise` is None here: the layers refuse the regularisers in the kernels on this path."""
    if torch.onnx.is_in_onnx_export():
        from rnnkit.export import symbolic

        if symbolic.wanted():
            run = symbolic.direction(cell, nonlinearity, lengths)
            return lambda x, state, w, reverse, noise: run(x, state, w, reverse)
    return lambda x, state, w, reverse, noise: cell.op(x, state, w, lengths, reverse, nonlinearity)


def bptt_direction(cell: Cell, nonlinearity: str | None, batch: Batch):
    """The cell's kernel (its autograd Function) on rows sorted by length (`batch.sort`), a
    reverse direction run forward on each sequence reversed within its own length."""

    def run(x, state, w, reverse, noise, cells=False):
        if reverse:
            x = batch.reverse(x)
        if noise is not None:  # into the kernel's layout, as x
            noise = sorted_noise(noise, batch, reverse)
        if cells:  # the LSTM's: out, state and every c_t
            out, last, C = cell.kernel(x, state, w, batch.batch_sizes, nonlinearity, noise, True)
            if reverse:
                out, C = batch.reverse(out), batch.reverse(C)
            return out, last, C
        out, last = cell.kernel(x, state, w, batch.batch_sizes, nonlinearity, noise)
        return (batch.reverse(out) if reverse else out), last

    return run


def loop_direction(cell: Cell, nonlinearity: str | None, batch: Batch):
    """The cell's step looped under autograd, in the caller's row order: padded steps keep the
    state and output zeros."""
    step = step_fn(cell, nonlinearity)
    mask = batch.mask()  # (T, B, 1) bool or None

    def run(x, state, w, reverse, noise, cells=False):
        outs, cs = [None] * x.shape[0], [None] * x.shape[0]
        times = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        for t in times:
            new = step(x[t], state, w, noise, t)
            if mask is not None:
                new = [torch.where(mask[t], n, s) for n, s in zip(new, state, strict=True)]
                outs[t] = torch.where(mask[t], new[0], 0.0)
                cs[t] = torch.where(mask[t], new[-1], 0.0)
            else:
                outs[t], cs[t] = new[0], new[-1]
            state = new
        if cells:  # the LSTM's c_t of every step
            return torch.stack(outs), state, torch.stack(cs)
        return torch.stack(outs), state

    return run


def step_fn(cell: Cell, nonlinearity: str | None, fast: bool = False):
    """One step on a state list: [h] -> [h'] or [h, c] -> [h', c'] (functional.py; with
    `fast`, the LSTM's no-grad CPU steps run in one C++ call, bptt.lstm_step), as
    f(x, state, weights, noise, t): with a `regularisers.Noise`, W_hh reads m * h_{t-1}
    (recurrent dropout) and each state s_t = k_t s_{t-1} + (1 - k_t) s~_t (zoneout, step t)."""
    step = cell.fast_step if fast else cell.step

    def f(x, s, w, noise=None, t=0):
        if noise is None:
            return step(x, s, w, nonlinearity)
        new = cell.step(x, s, w, nonlinearity, noise.recurrent)
        for n, k in enumerate((noise.zone_h, noise.zone_c)):
            if k is not None:
                new[n] = torch.lerp(new[n], s[n], k[t])  # k s_{t-1} + (1 - k) s~_t
        return new

    return f


def sorted_noise(noise: Noise, batch: Batch, reverse: bool) -> Noise:
    """The noise in the kernel's layout: rows sorted by length, zoneout's steps reversed
    within each length for a reverse direction (as its x)."""

    def steps(k):
        if k is None:
            return None
        k = batch.sort(k)
        return batch.reverse(k) if reverse else k

    rec = None if noise.recurrent is None else batch.sort(noise.recurrent, dim=0)
    return Noise(rec, steps(noise.zone_h), steps(noise.zone_c))
