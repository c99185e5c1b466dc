"""The backward operators rnnkit::rnn_backward, rnnkit::lstm_backward and rnnkit::gru_backward:
the hand-written BPTT of bptt/{rnn,lstm,gru}.py behind `torch.library.custom_op`, each with a
shapes-only fake. `bptt/ops.py` documents the schemas and wires them as the forward
operators' autograd formulas.

    T: time, B: batch, I: input size, H: hidden size, G: gates (RNN 1, LSTM 4, GRU 3),
    P: the LSTM's projection size with w_hr (P, H), else H
    dout, x, out (T, B, .) and dh_n, h0 (B, P), dc_n, c0 (B, H) in the caller's row order;
    Z, C, A, U in the kernel's layout (bptt/layout.py), as the forward operator returned them.

`needs` says which gradients to compute, in the order of the outputs; one not asked for comes
back as an empty tensor (shape (0,)), since an operator cannot return None.
"""

import torch
from torch import Tensor

from rnnkit.bptt import native
from rnnkit.bptt.gru import gru_backward as _gru_backward
from rnnkit.bptt.layout import Layout
from rnnkit.bptt.lstm import lstm_backward as _lstm_backward
from rnnkit.bptt.rnn import rnn_backward as _rnn_backward


def use_native(x: Tensor) -> bool:
    """Whether the kernels run their C++ loops for x (a backward runs the loop its forward
    ran: both ask this of the same x)."""
    return native.for_cpu(x) is not None


def _grads(like: Tensor, *grads: Tensor | None) -> tuple[Tensor, ...]:
    """The gradients, contiguous, with None (not asked for) as an empty tensor."""
    return tuple(like.new_empty(0) if g is None else g.contiguous() for g in grads)


def _fake_grads(needs: list[bool], like: Tensor, *shapes) -> tuple[Tensor, ...]:
    return tuple(like.new_empty(s if n else (0,)) for n, s in zip(needs, shapes, strict=True))


def _check_saved(name: str, *saved: Tensor) -> None:
    if any(s.numel() == 0 for s in saved):
        raise RuntimeError(
            f"rnnkit::{name}_backward needs the buffers of a forward run with save=True"
        )


@torch.library.custom_op("rnnkit::rnn_backward", mutates_args=())
def rnn_backward(
    dout: Tensor,
    dh_n: Tensor,
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    out: Tensor,
    lengths: Tensor | None,
    reverse: bool,
    relu: bool,
    needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(dx, dh0, dW_ih, dW_hh, db): db is the gradient of b_ih and of b_hh alike."""
    lay = Layout(x, lengths, reverse)
    seqs = [lay.seq(t) for t in (dout, lay.padded(x), out)]
    args = (lay.steps, relu, use_native(x), None, seqs[0], lay.rows(dh_n), seqs[1])
    dx, dh0, dw_ih, dw_hh, db = _rnn_backward(*args, lay.rows(h0), w_ih, w_hh, seqs[2], needs)
    return _grads(x, lay.unseq(dx), lay.unrows(dh0), dw_ih, dw_hh, db)


@rnn_backward.register_fake
def _(dout, dh_n, x, h0, w_ih, w_hh, out, lengths, reverse, relu, needs):
    return _fake_grads(needs, x, x.shape, h0.shape, w_ih.shape, w_hh.shape, w_hh.shape[:1])


@torch.library.custom_op("rnnkit::lstm_backward", mutates_args=())
def lstm_backward(
    dout: Tensor,
    dh_n: Tensor,
    dc_n: Tensor,
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    out: Tensor,
    Z: Tensor,
    C: Tensor,
    lengths: Tensor | None,
    reverse: bool,
    needs: list[bool],
    w_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(dx, dh0, dc0, dW_ih, dW_hh, db, dW_hr): db is the gradient of b_ih and of b_hh alike;
    `needs` has a flag for each, dW_hr empty without w_hr."""
    _check_saved("lstm", Z, C)
    lay = Layout(x, lengths, reverse)
    seqs = [lay.seq(t) for t in (dout, lay.padded(x), out)]
    states = [lay.rows(s) for s in (dh_n, dc_n, h0, c0)]
    args = (lay.steps, use_native(x), None, seqs[0], *states[:2], seqs[1], *states[2:])
    grads = _lstm_backward(*args, w_ih, w_hh, seqs[2], Z, C, needs, w_hr)
    dx, dh0, dc0, *dws = grads
    return _grads(x, lay.unseq(dx), lay.unrows(dh0), lay.unrows(dc0), *dws)


@lstm_backward.register_fake
def _(dout, dh_n, dc_n, x, h0, c0, w_ih, w_hh, out, Z, C, lengths, reverse, needs, w_hr=None):
    needs = [*needs[:6], needs[6] and w_hr is not None]
    proj = (0,) if w_hr is None else w_hr.shape
    shapes = (x.shape, h0.shape, c0.shape, w_ih.shape, w_hh.shape, w_hh.shape[:1], proj)
    return _fake_grads(needs, x, *shapes)


@torch.library.custom_op("rnnkit::gru_backward", mutates_args=())
def gru_backward(
    dout: Tensor,
    dh_n: Tensor,
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    out: Tensor,
    A: Tensor,
    U: Tensor,
    lengths: Tensor | None,
    reverse: bool,
    needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(dx, dh0, dW_ih, dW_hh, db_ih, db_hh)."""
    _check_saved("gru", A, U)
    lay = Layout(x, lengths, reverse)
    seqs = [lay.seq(t) for t in (dout, lay.padded(x), out)]
    args = (lay.steps, use_native(x), None, seqs[0], lay.rows(dh_n), seqs[1], lay.rows(h0))
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _gru_backward(*args, w_ih, w_hh, seqs[2], A, U, needs)
    return _grads(x, lay.unseq(dx), lay.unrows(dh0), dw_ih, dw_hh, db_ih, db_hh)


@gru_backward.register_fake
def _(dout, dh_n, x, h0, w_ih, w_hh, out, A, U, lengths, reverse, needs):
    bias = w_hh.shape[:1]
    return _fake_grads(needs, x, x.shape, h0.shape, w_ih.shape, w_hh.shape, bias, bias)
