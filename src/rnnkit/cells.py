"""RNNCell, LSTMCell and GRUCell: parameters with torch.nn's names and one time step."""

import math

import torch
from torch import Tensor, nn

from rnnkit import functional as F

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


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
    mode = "rnn"

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.bias = bias
        kw = {"device": device, "dtype": dtype}
        gh = GATES[self.mode] * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(gh, hidden_size, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gh, **kw))
            self.bias_hh = nn.Parameter(torch.empty(gh, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        init_uniform(self, hidden_size)

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
    """h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu (see `functional.rnn_step`)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", **kw):
        self.nonlinearity = check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, **kw)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, _ = self._check(input, hx)
        h = self._zeros(x) if hx is None else hx
        return F.rnn_step(x, h, *self._weights(), self.nonlinearity)


class LSTMCell(_CellBase):
    """One LSTM step, gates (i, f, g, o); returns (h', c') (see `functional.lstm_step`)."""

    mode = "lstm"

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
    """One GRU step in torch.nn's convention (see `functional.gru_step`)."""

    mode = "gru"

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, _ = self._check(input, hx)
        h = self._zeros(x) if hx is None else hx
        return F.gru_step(x, h, *self._weights())
