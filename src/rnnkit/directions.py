"""One layer in one direction over time, each way a layer runs it: the cell's BPTT kernel
(eager, impl="bptt"), the cell's operator (under torch.compile and torch.export), or the cell's
step looped under autograd (impl="loop", the reference).

Each function makes a `run(x, state, weights, reverse) -> (out, state')` for `layers._stack`:

    T: time, B: batch, I: input size, H: hidden size
    x (T, B, I)   out (T, B, H)   state, state' [h] or [h, c], each (B, H)
    weights (W_ih, W_hh, b_ih, b_hh), as `cells.Weights`
"""

import torch
from torch import Tensor

from rnnkit.cells import Cell
from rnnkit.lengths import Batch


def op_direction(cell: Cell, nonlinearity: str | None, lengths: Tensor | None):
    """The cell's operator (bptt/ops.py), in the caller's row order: the path under
    torch.compile and torch.export, with no data-dependent Python; in a plain torch.onnx.export
    (without rnnkit.export.onnx's translation table), ONNX's own node (export/symbolic.py)."""
    if torch.onnx.is_in_onnx_export():
        from rnnkit.export import symbolic

        if symbolic.wanted():
            return symbolic.direction(cell, nonlinearity, lengths)
    return lambda x, state, w, reverse: cell.op(x, state, w, lengths, reverse, nonlinearity)


def bptt_direction(cell: Cell, nonlinearity: str | None, batch: Batch):
    """The cell's kernel (its autograd Function) on rows sorted by length (`batch.sort`), a
    reverse direction run forward on each sequence reversed within its own length."""

    def run(x, state, w, reverse):
        if reverse:
            x = batch.reverse(x)
        out, last = cell.kernel(x, state, w, batch.batch_sizes, nonlinearity)
        return (batch.reverse(out) if reverse else out), last

    return run


def loop_direction(cell: Cell, nonlinearity: str | None, batch: Batch):
    """The cell's step looped under autograd, in the caller's row order: padded steps keep the
    state and output zeros."""
    step = step_fn(cell, nonlinearity)
    mask = batch.mask()  # (T, B, 1) bool or None

    def run(x, state, w, reverse):
        outs = [None] * x.shape[0]
        times = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        for t in times:
            new = step(x[t], state, w)
            if mask is not None:
                new = [torch.where(mask[t], n, s) for n, s in zip(new, state, strict=True)]
                outs[t] = torch.where(mask[t], new[0], 0.0)
            else:
                outs[t] = new[0]
            state = new
        return torch.stack(outs), state

    return run


def step_fn(cell: Cell, nonlinearity: str | None, fast: bool = False):
    """One step on a state list: [h] -> [h'] or [h, c] -> [h', c'] (functional.py; with
    `fast`, the LSTM's no-grad CPU steps run in one C++ call, bptt.lstm_step)."""
    step = cell.fast_step if fast else cell.step
    return lambda x, s, w: step(x, s, w, nonlinearity)
