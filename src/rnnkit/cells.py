"""RNNCell, LSTMCell and GRUCell, and what a layer and a cell share: the `Cell` descriptor of
each kind of cell and torch.nn's parameter layout.

    B: batch, I: input size, H: hidden size, G: gate blocks (RNN 1, LSTM 4, GRU 3)
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit import bptt
from rnnkit import functional as F

State = list[Tensor]  # [h] or [h, c], each (B, H)
Weights = tuple  # (W_ih, W_hh, b_ih or None, b_hh or None)


@dataclass(frozen=True)
class Cell:
    """One kind of cell, as the layers and the cells use it: everything that differs between
    the Elman RNN, the LSTM and the GRU is here, so no code outside branches on the kind.

    Parameters, as torch.nn names and packs them (`parameter_shapes`):
        weight_ih (G*H, I)   weight_hh (G*H, H)   bias_ih, bias_hh (G*H)
    """

    name: str  # "rnn", "lstm" or "gru": the layers' and cells' `mode`
    torch_name: str  # torch.nn's class of the layer ("RNN", "LSTM", "GRU")
    gates: int  # G, the gate blocks packed in W_ih and W_hh: (h), (i, f, g, o), (r, z, n)
    states: int  # state arity: 1 for h, 2 for (h, c)
    # step(x (B, I), state, weights, nonlinearity) -> the next state (functional.py)
    step: Callable[[Tensor, State, Weights, str | None], State]
    # the same step without autograd in one C++ call where it can (generation), else `step`
    fast_step: Callable[[Tensor, State, Weights, str | None], State]
    # kernel(x (T, B, I), state, weights, batch_sizes, nonlinearity) -> (out (T, B, H), state):
    # one layer and direction with the hand-written BPTT (bptt/)
    kernel: Callable[[Tensor, State, Weights, tuple | None, str | None], tuple[Tensor, State]]
    function: type  # the kernel's torch.autograd.Function

    def parameter_shapes(
        self, input_size: int, hidden_size: int, bias: bool, suffix: str = ""
    ) -> dict[str, tuple[int, ...]]:
        """Name -> shape of one cell's parameters, in torch.nn's order; `suffix` is "" for a
        cell, "_l{k}" or "_l{k}_reverse" for layer k of a layer. No biases with bias=False."""
        gh = self.gates * hidden_size
        shapes = {f"weight_ih{suffix}": (gh, input_size), f"weight_hh{suffix}": (gh, hidden_size)}
        if bias:
            shapes.update({f"bias_ih{suffix}": (gh,), f"bias_hh{suffix}": (gh,)})
        return shapes


def _rnn_step(x, state, w, nonlinearity):
    return [F.rnn_step(x, state[0], *w, nonlinearity)]


def _lstm_step(x, state, w, nonlinearity=None):
    return list(F.lstm_step(x, (state[0], state[1]), *w))


def _lstm_fast_step(x, state, w, nonlinearity=None):
    return list(bptt.lstm_step(x, state[0], state[1], *w) or F.lstm_step(x, tuple(state), *w))


def _gru_step(x, state, w, nonlinearity=None):
    return [F.gru_step(x, state[0], *w)]


def _rnn_kernel(x, state, w, batch_sizes, nonlinearity):
    out, h = bptt.rnn(x, state[0], *w, batch_sizes, nonlinearity)
    return out, [h]


def _lstm_kernel(x, state, w, batch_sizes, nonlinearity=None):
    out, h, c = bptt.lstm(x, state[0], state[1], *w, batch_sizes)
    return out, [h, c]


def _gru_kernel(x, state, w, batch_sizes, nonlinearity=None):
    out, h = bptt.gru(x, state[0], *w, batch_sizes)
    return out, [h]


CELLS = {
    "rnn": Cell("rnn", "RNN", 1, 1, _rnn_step, _rnn_step, _rnn_kernel, bptt.RNNFunction),
    "lstm": Cell(
        "lstm", "LSTM", 4, 2, _lstm_step, _lstm_fast_step, _lstm_kernel, bptt.LSTMFunction
    ),
    "gru": Cell("gru", "GRU", 3, 1, _gru_step, _gru_step, _gru_kernel, bptt.GRUFunction),
}
GATES = {name: cell.gates for name, cell in CELLS.items()}


def add_parameters(module: nn.Module, shapes: dict, device=None, dtype=None) -> None:
    """Register an empty nn.Parameter of each shape under its name (then `init_uniform`)."""
    for name, shape in shapes.items():
        module.register_parameter(
            name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
        )


def check_size(name: str, value, allow_zero: bool = False) -> int:
    """Reject a size that is not a positive int, naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def check_nonlinearity(nonlinearity: str) -> str:
    if nonlinearity not in F.NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {F.NONLINEARITIES}, got {nonlinearity!r}")
    return nonlinearity


def check_sequence(layer: nn.Module, x) -> Tensor:
    """The checks every sequence layer makes of its input: a floating-point Tensor of the
    parameters' dtype, (T, B, I) / (B, T, I) with batch_first, or unbatched (T, I), I =
    layer.input_size, not empty."""
    if not isinstance(x, Tensor):
        raise TypeError(f"input must be a Tensor or PackedSequence, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")
    if x.dtype != layer.weight_ih_l0.dtype:
        raise TypeError(
            f"input dtype {x.dtype} does not match the parameters' dtype "
            f"{layer.weight_ih_l0.dtype}; convert one with .to()"
        )
    if x.dim() not in (2, 3):
        raise ValueError(
            f"input must be 3-D ({'B, T' if layer.batch_first else 'T, B'}, "
            f"{layer.input_size}) or 2-D (T, {layer.input_size}), got shape {tuple(x.shape)}"
        )
    if x.shape[-1] != layer.input_size:
        raise ValueError(f"input.size(-1) must be input_size={layer.input_size}, got {x.shape[-1]}")
    if x.numel() == 0:
        raise ValueError(f"input must have at least one step and row, got {tuple(x.shape)}")
    return x


def init_uniform(module: nn.Module, hidden_size: int) -> None:
    """torch.nn's initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
    k = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-k, k)


class _CellBase(nn.Module):
    """One time step of one `Cell` with torch.nn's parameters: weight_ih (G*H, I),
    weight_hh (G*H, H), bias_ih and bias_hh (G*H,) or None with bias=False."""

    cell = CELLS["rnn"]

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.bias = bias
        shapes = self.cell.parameter_shapes(input_size, hidden_size, bias)
        add_parameters(self, shapes, device, dtype)
        if not bias:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        init_uniform(self, hidden_size)

    @property
    def mode(self) -> str:
        return self.cell.name

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"

    def _check(self, x: Tensor, h: Tensor | None, name: str = "hx") -> tuple[Tensor, bool]:
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")
        if x.dim() not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"input must have shape (B, {self.input_size}) or ({self.input_size},), "
                f"got {tuple(x.shape)}"
            )
        batched = x.dim() == 2
        want = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        if h is not None and tuple(h.shape) != want:
            raise ValueError(f"{name} must have shape {want}, got {tuple(h.shape)}")
        return x, batched

    def _zeros(self, x: Tensor) -> Tensor:
        return x.new_zeros(*x.shape[:-1], self.hidden_size)

    def _weights(self):
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh


class RNNCell(_CellBase):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu (see `functional.rnn_step`).

    input (B, I) or (I,); hx (B, H) or (H,), zeros when None; returns h' of hx's shape.
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", **kw):
        self.nonlinearity = check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, **kw)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, _ = self._check(input, hx)
        h = self._zeros(x) if hx is None else hx
        return F.rnn_step(x, h, *self._weights(), self.nonlinearity)


class LSTMCell(_CellBase):
    """One LSTM step, gates (i, f, g, o) (see `functional.lstm_step`).

    input (B, I) or (I,); hx = (h, c), each (B, H) or (H,), zeros when None; returns (h', c').
    """

    cell = CELLS["lstm"]

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        if hx is None:
            x, _ = self._check(input, None)
            hx = (self._zeros(x), self._zeros(x))
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("hx must be a tuple (h, c) for LSTMCell")
            x, _ = self._check(input, hx[0], "h")
            self._check(input, hx[1], "c")
        return F.lstm_step(x, tuple(hx), *self._weights())


class GRUCell(_CellBase):
    """One GRU step in torch.nn's convention, gates (r, z, n) (see `functional.gru_step`).

    input (B, I) or (I,); hx (B, H) or (H,), zeros when None; returns h' of hx's shape.
    """

    cell = CELLS["gru"]

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, _ = self._check(input, hx)
        h = self._zeros(x) if hx is None else hx
        return F.gru_step(x, h, *self._weights())
