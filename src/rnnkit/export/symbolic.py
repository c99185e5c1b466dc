"""rnnkit's layers in a plain `torch.onnx.export(model, args, dynamo=True)`, the call a client
of torch.nn's layers already makes: without rnnkit's translation table (`rnnkit.export.onnx`)
the exporter has no ONNX function for rnnkit's operators, so while it traces, each layer and
direction writes ONNX's own RNN, LSTM or GRU node itself through torch.onnx.ops (public since
torch 2.8), with the gate order, biases, `sequence_lens` and direction of `onnx_ops`.

    x (T, B, I)   W (1, G*H, I)   R (1, G*H, H)   B (1, 2*G*H)   initial_h, initial_c (1, B, H)
    Y (T, 1, B, H) -> out (T, B, H)     Y_h, Y_c (1, B, H) -> h_n, c_n (B, H)

`rnnkit.export.onnx` keeps its translation table (`translating()` tells the layers so).
"""

from __future__ import annotations

import contextlib
import threading

import torch
from torch import Tensor

from rnnkit.cells import Cell
from rnnkit.export.onnx_ops import refuse_projection

# ONNX's gate order from torch.nn's (onnx_ops.LSTM_ORDER, GRU_ORDER, without onnxscript)
ORDERS = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}
ONNX_DTYPES = (torch.float32, torch.float64, torch.float16)

_state = threading.local()


@contextlib.contextmanager
def translating():
    """While rnnkit.export.onnx exports: the layers call their operators, which its
    translation table writes."""
    before = getattr(_state, "translating", False)
    _state.translating = True
    try:
        yield
    finally:
        _state.translating = before


def wanted() -> bool:
    """Whether a layer traced now writes ONNX nodes itself: in torch.onnx's dynamo exporter,
    outside rnnkit.export.onnx, on a torch that has torch.onnx.ops.symbolic_multi_out."""
    return (
        torch.onnx.is_in_onnx_export()
        and not getattr(_state, "translating", False)
        and hasattr(getattr(torch.onnx, "ops", None), "symbolic_multi_out")
    )


def _gates(w: Tensor, order: tuple[int, ...]) -> Tensor:
    """w's G row blocks in `order`, with a leading direction axis: (1, G*H, ...)."""
    H = w.shape[0] // len(order)
    return torch.cat([w[k * H : (k + 1) * H] for k in order]).unsqueeze(0)


def direction(cell: Cell, nonlinearity: str | None, lengths: Tensor | None):
    """`directions.op_direction`'s run(x, state, weights, reverse), as one ONNX node."""
    order = ORDERS[cell.name]

    def run(x: Tensor, state: list[Tensor], w, reverse: bool):
        w_ih, w_hh, b_ih, b_hh, *w_hr = w
        if w_hr and w_hr[0] is not None:
            refuse_projection(w_hr[0].shape[0])
        if x.dtype not in ONNX_DTYPES:
            raise ValueError(
                f"ONNX's RNN, LSTM and GRU take float32, float64 or float16, not {x.dtype}"
            )
        H = w_hh.shape[1]
        bias = None
        if b_ih is not None or b_hh is not None:
            b_ih = b_ih if b_ih is not None else torch.zeros_like(b_hh)
            b_hh = b_hh if b_hh is not None else torch.zeros_like(b_ih)
            bias = torch.cat([_gates(b_ih, order), _gates(b_hh, order)], 1)
        seq = lengths.to(torch.int32) if lengths is not None else None
        inputs = [x, _gates(w_ih, order), _gates(w_hh, order), bias, seq]
        inputs += [s.unsqueeze(0) for s in state]
        attrs = {"hidden_size": H, "direction": "reverse" if reverse else "forward"}
        if cell.name == "rnn":
            attrs["activations"] = ["Relu" if nonlinearity == "relu" else "Tanh"]
        if cell.name == "gru":
            # torch.nn's n = tanh(W_in x + b_in + r (W_hn h + b_hn))
            attrs["linear_before_reset"] = 1
        T, B = x.shape[:2]
        shapes = [[T, 1, B, H]] + [[1, B, H]] * len(state)
        y, *finals = torch.onnx.ops.symbolic_multi_out(
            cell.name.upper(), inputs, attrs, dtypes=[x.dtype] * len(shapes), shapes=shapes
        )
        return y.squeeze(1), [f.squeeze(0) for f in finals]

    return run
