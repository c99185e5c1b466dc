"""rnnkit's operators in ONNX's own RNN, LSTM and GRU (opset 14+), for torch.onnx's exporter.

One `rnnkit::rnn`, `rnnkit::lstm` or `rnnkit::gru` node (one layer, one direction; schemas
in `rnnkit.bptt.ops`) becomes one ONNX node with `direction` "forward" or "reverse" and
`sequence_lens` from `lengths`: ONNX reads a reverse direction from each row's own last valid
step, as rnnkit does, and its outputs past a row's length are zeros. What changes on the way:

    gate order      torch.nn (ONNX)                    weights
    RNN             -                                  W = W_ih, R = W_hh
    LSTM            i, f, g, o  ->  i, o, f, c         rows of W_ih, W_hh, b_ih, b_hh
    GRU             r, z, n     ->  z, r, h            linear_before_reset=1 (torch.nn's n:
                                                       tanh(W_in x + b_in + r (W_hn h + b_hn)))

    W (1, G*H, I)   R (1, G*H, H)   B (1, 2*G*H) = [b_ih, b_hh]   initial_h (1, B, H)
    Y (T, 1, B, H) -> out (T, B, H)     Y_h, Y_c (1, B, H) -> h_n, c_n (B, H)

The operators' saved-for-backward outputs (LSTM Z, C; GRU A, U) have no meaning in an
inference graph: they are written as empty tensors, which nothing reads. ONNX's LSTM has no
projection of h: an LSTM with proj_size > 0 (an operator given w_hr) is refused, never
written as a wrong model (`refuse_projection`).
"""

from __future__ import annotations

from onnxscript import ir
from onnxscript import opset18 as op

LSTM_ORDER = (0, 3, 1, 2)  # ONNX's i, o, f, c from torch.nn's i, f, g, o
GRU_ORDER = (1, 0, 2)  # ONNX's z, r, h from torch.nn's r, z, n


def _gates(w, order: tuple[int, ...]):
    """w's G row blocks in `order`, with a leading direction axis: (1, G*H, ...). Slices, not
    Split, so that the exporter folds them into the weights."""
    if len(order) == 1:
        return op.Unsqueeze(w, [0])
    H = w.shape[0] // len(order)
    blocks = [op.Slice(w, [k * H], [(k + 1) * H], [0]) for k in order]
    return op.Unsqueeze(op.Concat(*blocks, axis=0), [0])


def _bias(b_ih, b_hh, order: tuple[int, ...]):
    """B (1, 2*G*H) = [b_ih, b_hh] reordered, or None without biases (ONNX: zeros)."""
    if b_ih is None and b_hh is None:
        return None
    b_ih = b_ih if b_ih is not None else op.Sub(b_hh, b_hh)
    b_hh = b_hh if b_hh is not None else op.Sub(b_ih, b_ih)
    return op.Concat(_gates(b_ih, order), _gates(b_hh, order), axis=1)


ONNX_TYPES = (ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16)


def _common(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, order):
    """The inputs every ONNX recurrent node takes, in its order, and hidden_size."""
    if x.dtype is not None and x.dtype not in ONNX_TYPES:
        raise ValueError(
            f"ONNX's RNN, LSTM and GRU take float32, float64 or float16, not {x.dtype.name}: "
            "convert the model (e.g. model.float()) before exporting it"
        )
    hidden = w_hh.shape[1]
    if not isinstance(hidden, int):
        raise ValueError("ONNX needs a fixed hidden size; W_hh's shape is symbolic")
    seq = op.Cast(lengths, to=ir.DataType.INT32) if lengths is not None else None
    inputs = (x, _gates(w_ih, order), _gates(w_hh, order), _bias(b_ih, b_hh, order), seq)
    return inputs, op.Unsqueeze(h0, [0]), hidden


def refuse_projection(proj_size) -> None:
    """ONNX's LSTM has no projection of h (torch.nn's proj_size): refuse one, by its size."""
    if proj_size:
        raise ValueError(
            f"ONNX's LSTM has no projection (proj_size=P): an LSTM with proj_size={proj_size} "
            "cannot be exported to ONNX; save it as a torch.export program (.pt2) instead, "
            "or use proj_size=0"
        )


def _direction(reverse: bool) -> str:
    return "reverse" if reverse else "forward"


def _empty(like):
    """An empty tensor of like's type: a saved-for-backward output in an inference graph."""
    return op.Slice(op.Reshape(like, [-1]), [0], [0])


def rnn(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse: bool, relu: bool):
    """rnnkit::rnn -> ONNX RNN: h_t = act(W x_t + R h_{t-1} + Wb + Rb)."""
    inputs, initial_h, hidden = _common(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, (0,))
    Y, Y_h = op.RNN(
        *inputs,
        initial_h,
        activations=["Relu" if relu else "Tanh"],
        direction=_direction(reverse),
        hidden_size=hidden,
    )
    return op.Squeeze(Y, [1]), op.Squeeze(Y_h, [0])


def lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse: bool, save: bool, w_hr=None):
    """rnnkit::lstm -> ONNX LSTM (gates reordered to i, o, f, c); no w_hr (proj_size)."""
    refuse_projection(None if w_hr is None else "P")
    inputs, initial_h, hidden = _common(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, LSTM_ORDER)
    Y, Y_h, Y_c = op.LSTM(
        *inputs,
        initial_h,
        op.Unsqueeze(c0, [0]),
        direction=_direction(reverse),
        hidden_size=hidden,
    )
    out = op.Squeeze(Y, [1])
    return out, op.Squeeze(Y_h, [0]), op.Squeeze(Y_c, [0]), _empty(x), _empty(x)


def gru(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse: bool, save: bool):
    """rnnkit::gru -> ONNX GRU (gates reordered to z, r, h; linear_before_reset=1)."""
    inputs, initial_h, hidden = _common(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, GRU_ORDER)
    Y, Y_h = op.GRU(
        *inputs,
        initial_h,
        direction=_direction(reverse),
        hidden_size=hidden,
        linear_before_reset=1,
    )
    return op.Squeeze(Y, [1]), op.Squeeze(Y_h, [0]), _empty(x), _empty(x)


def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr=None):
    """rnnkit::lstm_cell (one step, no autograd) -> an ONNX LSTM over one step; no w_hr."""
    refuse_projection(None if w_hr is None else "P")
    inputs, initial_h, hidden = _common(
        op.Unsqueeze(x, [0]), h, w_ih, w_hh, b_ih, b_hh, None, LSTM_ORDER
    )
    _, Y_h, Y_c = op.LSTM(
        *inputs, initial_h, op.Unsqueeze(c, [0]), direction="forward", hidden_size=hidden
    )
    return op.Squeeze(Y_h, [0]), op.Squeeze(Y_c, [0])
