"""The kernels as PyTorch operators (`torch.library.custom_op`), so that torch.compile and
torch.export see one opaque node per layer and direction, with a fake (shapes only) and an
autograd formula that calls the backward operator (bptt/ops_backward.py).

Schemas (stable: the ONNX translations are written against them):

    rnnkit::rnn(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh,
                Tensor? lengths, bool reverse, bool relu) -> (Tensor out, Tensor h_n)
    rnnkit::lstm(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor? b_ih,
                 Tensor? b_hh, Tensor? lengths, bool reverse, bool save, Tensor? w_hr=None)
                 -> (Tensor out, Tensor h_n, Tensor c_n, Tensor Z, Tensor C)
    rnnkit::gru(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh,
                Tensor? lengths, bool reverse, bool save) -> (Tensor out, Tensor h_n, Tensor A,
                Tensor U)
    rnnkit::lstm_cell(Tensor x, Tensor h, Tensor c, Tensor w_ih, Tensor w_hh, Tensor? b_ih,
                      Tensor? b_hh, Tensor? w_hr=None) -> (Tensor h', Tensor c')   (no autograd)
    rnnkit::rnn_backward(Tensor dout, Tensor dh_n, Tensor x, Tensor h0, Tensor w_ih,
                         Tensor w_hh, Tensor out, Tensor? lengths, bool reverse, bool relu,
                         bool[] needs) -> (dx, dh0, dw_ih, dw_hh, db)
    rnnkit::lstm_backward(Tensor dout, Tensor dh_n, Tensor dc_n, Tensor x, Tensor h0,
                          Tensor c0, Tensor w_ih, Tensor w_hh, Tensor out, Tensor Z, Tensor C,
                          Tensor? lengths, bool reverse, bool[] needs, Tensor? w_hr=None)
                          -> (dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr)
    rnnkit::gru_backward(Tensor dout, Tensor dh_n, Tensor x, Tensor h0, Tensor w_ih,
                         Tensor w_hh, Tensor out, Tensor A, Tensor U, Tensor? lengths,
                         bool reverse, bool[] needs) -> (dx, dh0, dw_ih, dw_hh, db_ih, db_hh)

One forward operator is one layer in one direction, with the equations of `functional.py`:

    T: time, B: batch, I: input size, H: hidden size, G: gates (RNN 1, LSTM 4, GRU 3),
    P: the LSTM's projection size with w_hr, else H
    x (T, B, I)   h0, h_n (B, P)   c0, c_n (B, H)   out (T, B, P)
    w_ih (G*H, I)   w_hh (G*H, P)   b_ih, b_hh (G*H) or None   lengths (B,) integer or None
    w_hr (P, H) or None: torch.nn.LSTM's projection (proj_size = P), h_t = W_hr (o tanh(c_t))

- Rows in the caller's order. `lengths[b]` in [1, T] is row b's number of valid steps (None:
  all T); a value outside raises ValueError. Padded steps output zeros and change no state
  (whatever x holds there), h_n and c_n are taken at each row's own last step.
- `reverse`: the direction that reads each row from its own last valid step back to step 0;
  out[t] is still the state after reading step t (a bidirectional layer's second half).
- `relu` (RNN): act = relu, else tanh.
- `save`: also return what the backward reads, in the kernel's layout (rows sorted by length,
  reversed within their length for `reverse`): the LSTM's gates Z = [i, f, g, o] (T, B, 4H)
  and cells C (T, B, H) (2c on the C++ loop), the GRU's gates A = [r, z, n] (T, B, 3H) and
  recurrent parts U (T, B, 3H) (the n block doubled on the C++ loop); empty tensors (shape
  (0,)) without `save`. They feed rnnkit::*_backward only; their values are not an interface.
  The RNN's backward reads out.
- The backward operators take `needs`, one flag per gradient they return, and return an empty
  tensor for a gradient not asked for (and for dw_hr without w_hr); db is the gradient of
  b_ih and b_hh alike (RNN, LSTM).

The eager implementations sort rows, reverse and zero the padding with `lengths.Batch`
(bptt/layout.py) and call the kernels' plain forward and backward functions, the ones
`RNNFunction`, `LSTMFunction` and `GRUFunction` call: on the CPU their C++ loops where built,
elsewhere their Python loops (a backward runs the loop its forward ran: both ask for x's
device). Outputs never alias inputs; large ones may come from `workspace.recycled`, which
hands a storage out again only once nothing references it. The layers pass save = "a gradient
is needed" (export under torch.no_grad() for an inference graph); a `probe.GradientRecord`
sees the eager kernels only.
"""

import functools

import torch
from torch import Tensor

from rnnkit import functional as F
from rnnkit.bptt import gemm, native
from rnnkit.bptt import ops_backward as back
from rnnkit.bptt.common import _mask_padding, _needs_grad
from rnnkit.bptt.gru import gru_forward as _gru_forward
from rnnkit.bptt.layout import Layout
from rnnkit.bptt.lstm import lstm_forward as _lstm_forward
from rnnkit.bptt.rnn import rnn_forward as _rnn_forward


def _run(kernel, lay: Layout, x, states, weights, flag):
    """kernel(x, *states, *weights, steps, flag, use_native) on the layout: (out, final
    states..., saved...), out and the states back in the caller's order, the saved buffers'
    padded rows zeroed (an operator's outputs are deterministic) or empty tensors for None."""
    args = (lay.seq(lay.padded(x)), *(lay.rows(s) for s in states), *weights, lay.steps)
    out, *rest = kernel(*args, flag, back.use_native(x))
    n = len(states)
    saved = [x.new_empty(0) if t is None else _mask_padding(t, lay.steps) for t in rest[n:]]
    return lay.unseq(out), *(lay.unrows(s) for s in rest[:n]), *saved


# ---- the forward operators -----------------------------------------------------------------


@torch.library.custom_op("rnnkit::rnn", mutates_args=())
def rnn(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None,
    reverse: bool,
    relu: bool,
) -> tuple[Tensor, Tensor]:
    """(out (T, B, H), h_n (B, H)) of an Elman RNN layer in one direction."""
    lay = Layout(x, lengths, reverse)
    return _run(_rnn_forward, lay, x, [h0], (w_ih, w_hh, b_ih, b_hh), relu)


@rnn.register_fake
def _(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, relu):
    T, B, _ = x.shape
    return x.new_empty(T, B, w_hh.shape[1]), x.new_empty(B, w_hh.shape[1])


@torch.library.custom_op("rnnkit::lstm", mutates_args=())
def lstm(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None,
    reverse: bool,
    save: bool,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(out (T, B, P), h_n (B, P), c_n (B, H), Z (T, B, 4H), C (T, B, H)) of an LSTM layer in
    one direction, projected by w_hr (P, H) if given; Z and C empty without `save`."""
    lay = Layout(x, lengths, reverse)
    kernel = functools.partial(_lstm_forward, w_hr=w_hr)
    out, h_n, c_n, Z, C = _run(kernel, lay, x, [h0, c0], (w_ih, w_hh, b_ih, b_hh), save)
    return out, h_n, c_n, Z, C


@lstm.register_fake
def _(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, save, w_hr=None):
    (T, B, _), GH, P, H = x.shape, w_hh.shape[0], h0.shape[-1], c0.shape[-1]
    Z, C = (x.new_empty(T, B, GH), x.new_empty(T, B, H)) if save else (x.new_empty(0),) * 2
    return x.new_empty(T, B, P), x.new_empty(B, P), x.new_empty(B, H), Z, C


@torch.library.custom_op("rnnkit::gru", mutates_args=())
def gru(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None,
    reverse: bool,
    save: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(out (T, B, H), h_n (B, H), A, U (T, B, 3H)) of a GRU layer in one direction; A and U
    empty without `save`."""
    lay = Layout(x, lengths, reverse)
    out, h_n, A, U = _run(_gru_forward, lay, x, [h0], (w_ih, w_hh, b_ih, b_hh), save)
    return out, h_n, A, U


@gru.register_fake
def _(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, save):
    (T, B, _), (GH, H) = x.shape, w_hh.shape
    A, U = (x.new_empty(T, B, GH), x.new_empty(T, B, GH)) if save else (x.new_empty(0),) * 2
    return x.new_empty(T, B, H), x.new_empty(B, H), A, U


@torch.library.custom_op("rnnkit::lstm_cell", mutates_args=())
def lstm_cell(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step without autograd (generation): (h' (B, P), c' (B, H)), in one C++ call
    on the CPU (native.cpp's `lstm_cell`) then h' = m W_hr^T with a projection, else
    `functional.lstm_step`."""
    loops = native.for_cpu(x)
    if loops is None:
        return F.lstm_step(x, (h, c), w_ih, w_hh, b_ih, b_hh, w_hr)
    onednn = gemm.uses_onednn(len(x), w_hh)
    m, c = loops.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, onednn)  # m = o tanh(c')
    return (m if w_hr is None else gemm.linear(m, w_hr)), c


@lstm_cell.register_fake
def _(x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr=None):
    return h.new_empty(h.shape), c.new_empty(c.shape)


# ---- autograd: the backward operators -------------------------------------------------------


def _input_grads(grads, need, shared_bias: bool) -> tuple:
    """The backward operator's outputs as the forward's input gradients: None where not needed,
    the shared db twice (b_ih, b_hh) for RNN and LSTM."""
    if shared_bias:
        grads = (*grads, grads[-1])
    return tuple(g if n else None for g, n in zip(grads, need))


def _given(grad, like):
    """The gradient autograd passed, or zeros where it passed none (the output was unused):
    the setups turn off autograd's zero-filling, which wrote a zero tensor as large as the
    kernels' saved gates for each non-differentiable output on every backward."""
    return torch.zeros_like(like) if grad is None else grad


def _rnn_setup(ctx, inputs, output):
    x, h0, w_ih, w_hh, _, _, lengths, reverse, relu = inputs
    ctx.set_materialize_grads(False)
    ctx.reverse, ctx.relu = reverse, relu
    ctx.save_for_backward(x, h0, w_ih, w_hh, output[0], lengths)


def _rnn_grad(ctx, dout, dh_n):
    x, h0, w_ih, w_hh, out, lengths = ctx.saved_tensors
    dout, dh_n = _given(dout, out), _given(dh_n, h0)
    need = ctx.needs_input_grad
    needs = [*need[:4], need[4] or need[5]]
    args = (dout, dh_n, x, h0, w_ih, w_hh, out, lengths, ctx.reverse, ctx.relu, needs)
    return *_input_grads(back.rnn_backward(*args), need, True), None, None, None


def _lstm_setup(ctx, inputs, output):
    x, h0, c0, w_ih, w_hh, _, _, lengths, reverse, _, w_hr = inputs
    ctx.set_materialize_grads(False)
    ctx.reverse = reverse
    out, _, _, Z, C = output
    ctx.save_for_backward(x, h0, c0, w_ih, w_hh, out, Z, C, lengths, w_hr)
    ctx.mark_non_differentiable(Z, C)


def _lstm_grad(ctx, dout, dh_n, dc_n, _dZ, _dC):
    x, h0, c0, w_ih, w_hh, out, Z, C, lengths, w_hr = ctx.saved_tensors
    dout, dh_n, dc_n = _given(dout, out), _given(dh_n, h0), _given(dc_n, c0)
    need = ctx.needs_input_grad  # w_hr's flag absent where the dispatcher dropped a None
    needs = [*need[:5], need[5] or need[6], len(need) > 10 and need[10]]
    args = (dout, dh_n, dc_n, x, h0, c0, w_ih, w_hh, out, Z, C, lengths, ctx.reverse, needs)
    dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr = back.lstm_backward(*args, w_hr)
    grads = (dx, dh0, dc0, dw_ih, dw_hh, db, db, None, None, None, dw_hr)
    return tuple(g if n else None for g, n in zip(grads, need))


def _gru_setup(ctx, inputs, output):
    x, h0, w_ih, w_hh, _, _, lengths, reverse, _ = inputs
    ctx.set_materialize_grads(False)
    ctx.reverse = reverse
    out, _, A, U = output
    ctx.save_for_backward(x, h0, w_ih, w_hh, out, A, U, lengths)
    ctx.mark_non_differentiable(A, U)


def _gru_grad(ctx, dout, dh_n, _dA, _dU):
    x, h0, w_ih, w_hh, out, A, U, lengths = ctx.saved_tensors
    dout, dh_n = _given(dout, out), _given(dh_n, h0)
    need = ctx.needs_input_grad
    args = (dout, dh_n, x, h0, w_ih, w_hh, out, A, U, lengths, ctx.reverse, list(need[:6]))
    return *_input_grads(back.gru_backward(*args), need, False), None, None, None


rnn.register_autograd(_rnn_grad, setup_context=_rnn_setup)
lstm.register_autograd(_lstm_grad, setup_context=_lstm_setup)
gru.register_autograd(_gru_grad, setup_context=_gru_setup)


# ---- the operators as a layer calls them (cells.Cell.op) ------------------------------------
# (x (T, B, I), state [h0] or [h0, c0], weights, lengths, reverse, nonlinearity)
#     -> (out (T, B, H), [h_n] or [h_n, c_n])


def rnn_layer(x, state, w, lengths, reverse, nonlinearity):
    out, h = rnn(x, state[0], *w, lengths, reverse, nonlinearity == "relu")
    return out, [h]


def lstm_layer(x, state, w, lengths, reverse, nonlinearity=None):
    save = _needs_grad(x, *state, *w)  # inference keeps no gates or cells
    w_hr = w[4] if len(w) > 4 else None  # proj_size > 0 (cells.Weights)
    out, h, c, _, _ = lstm(x, state[0], state[1], *w[:4], lengths, reverse, save, w_hr)
    return out, [h, c]


def gru_layer(x, state, w, lengths, reverse, nonlinearity=None):
    out, h, _, _ = gru(x, state[0], *w, lengths, reverse, _needs_grad(x, *state, *w))
    return out, [h]
