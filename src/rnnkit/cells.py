"""RNNCell, LSTMCell and GRUCell, and what a layer and a cell share: the `Cell` descriptor of
each kind of cell and torch.nn's parameter layout.

    B: batch, I: input size, H: hidden size, G: gate blocks (RNN 1, LSTM 4, GRU 3),
    P: an LSTM layer's proj_size (h of size P; H where proj_size = 0)
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit import bptt, precision
from rnnkit import functional as F
from rnnkit.errors import ArgumentTypeError, ShapeError, TorchScriptError

State = list[Tensor]  # [h] or [h, c], each (B, H); an LSTM's h (B, P) with proj_size = P
# (W_ih, W_hh, b_ih or None, b_hh or None), and W_hr last for an LSTM with proj_size > 0
Weights = tuple


@dataclass(frozen=True)
class Cell:
    """One kind of cell, as the layers and the cells use it: everything that differs between
    the Elman RNN, the LSTM and the GRU is here, so no code outside branches on the kind.

    Parameters, as torch.nn names and packs them (`parameter_shapes`):
        weight_ih (G*H, I)   weight_hh (G*H, H)   bias_ih, bias_hh (G*H)
        with proj_size = P (LSTM): weight_hh (4H, P) and weight_hr (P, H), h_t = W_hr m_t
    """

    name: str  # "rnn", "lstm" or "gru": the layers' and cells' `mode`
    torch_name: str  # torch.nn's class of the layer ("RNN", "LSTM", "GRU")
    gates: int  # G, the gate blocks packed in W_ih and W_hh: (h), (i, f, g, o), (r, z, n)
    states: int  # state arity: 1 for h, 2 for (h, c)
    # step(x (B, I), state, weights, nonlinearity[, rec]) -> the next state (functional.py);
    # rec: recurrent dropout's mask on h_{t-1} in W_hh h_{t-1}
    step: Callable[..., State]
    # the same step without autograd in one C++ call where it can (generation), else `step`
    fast_step: Callable[[Tensor, State, Weights, str | None], State]
    # kernel(x (T, B, I), state, weights, batch_sizes, nonlinearity[, noise]) -> (out (T, B, H),
    # state): one layer and direction with the hand-written BPTT (bptt/); noise: a
    # regularisers.Noise in the kernel's layout, or None
    kernel: Callable[..., tuple[Tensor, State]]
    function: type  # the kernel's torch.autograd.Function
    # op(x (T, B, I), state, weights, lengths, reverse, nonlinearity) -> (out (T, B, H), state):
    # the kernel as PyTorch operators, in the caller's row order (bptt/ops.py); what a layer
    # runs under torch.compile and torch.export
    op: Callable[[Tensor, State, Weights, Tensor | None, bool, str | None], tuple[Tensor, State]]
    layer_norm: bool = False  # the layer-normalised twin (layer_norm.LN_CELLS)

    def __deepcopy__(self, memo) -> "Cell":
        return self  # one shared, immutable description per kind: copy.deepcopy(layer) works

    def __reduce__(self):  # pickled by name (a layer-normalised kernel holds a Python module)
        return cell_named, (self.name, self.layer_norm)

    def parameter_shapes(
        self, input_size: int, hidden_size: int, bias: bool, suffix: str = "", proj_size: int = 0
    ) -> dict[str, tuple[int, ...]]:
        """Name -> shape of one cell's parameters, in torch.nn's order; `suffix` is "" for a
        cell, "_l{k}" or "_l{k}_reverse" for layer k of a layer. No biases with bias=False;
        weight_hr (P, H) last with proj_size = P > 0 (an LSTM's, as torch.nn.LSTM's)."""
        gh, h_size = self.gates * hidden_size, proj_size or hidden_size
        shapes = {f"weight_ih{suffix}": (gh, input_size), f"weight_hh{suffix}": (gh, h_size)}
        if bias:
            shapes.update({f"bias_ih{suffix}": (gh,), f"bias_hh{suffix}": (gh,)})
        if proj_size:
            shapes[f"weight_hr{suffix}"] = (proj_size, hidden_size)
        return shapes


# The steps take recurrent dropout's mask `rec` (B, P) for h_{t-1} in W_hh h_{t-1}, or None;
# the Elman RNN and the LSTM read h_{t-1} nowhere else.


def _rnn_step(x, state, w, nonlinearity, rec=None):
    h = state[0] if rec is None else state[0] * rec
    return [F.rnn_step(x, h, *w, nonlinearity)]


def _lstm_step(x, state, w, nonlinearity=None, rec=None):
    h = state[0] if rec is None else state[0] * rec
    return list(F.lstm_step(x, (h, state[1]), *w))


def _lstm_fast_step(x, state, w, nonlinearity=None):
    return list(bptt.lstm_step(x, state[0], state[1], *w) or F.lstm_step(x, tuple(state), *w))


def _gru_step(x, state, w, nonlinearity=None, rec=None):
    return [F.gru_step(x, state[0], *w, rec)]


# The kernels take a `regularisers.Noise` in their layout, or None.


def _rnn_kernel(x, state, w, batch_sizes, nonlinearity, noise=None):
    out, h = bptt.rnn(x, state[0], *w, batch_sizes, nonlinearity, noise)
    return out, [h]


def _lstm_kernel(x, state, w, batch_sizes, nonlinearity=None, noise=None, cells=False):
    """(out, [h_n, c_n]), and every c_t last with `cells` (LSTM.forward_with_cells)."""
    w_hr = w[4] if len(w) > 4 else None  # proj_size > 0
    out, h, c, *C = bptt.lstm(x, state[0], state[1], *w[:4], batch_sizes, w_hr, noise, cells)
    return (out, [h, c], *C)


def _gru_kernel(x, state, w, batch_sizes, nonlinearity=None, noise=None):
    out, h = bptt.gru(x, state[0], *w, batch_sizes, noise)
    return out, [h]


CELLS = {
    "rnn": Cell(
        "rnn", "RNN", 1, 1, _rnn_step, _rnn_step, _rnn_kernel, bptt.RNNFunction, bptt.rnn_layer
    ),
    "lstm": Cell(
        "lstm",
        "LSTM",
        4,
        2,
        _lstm_step,
        _lstm_fast_step,
        _lstm_kernel,
        bptt.LSTMFunction,
        bptt.lstm_layer,
    ),
    "gru": Cell(
        "gru", "GRU", 3, 1, _gru_step, _gru_step, _gru_kernel, bptt.GRUFunction, bptt.gru_layer
    ),
}
GATES = {name: cell.gates for name, cell in CELLS.items()}


def cell_named(name: str, layer_norm: bool = False) -> Cell:
    """The Cell of CELLS, or its layer-normalised twin: what a pickled Cell loads as."""
    if not layer_norm:
        return CELLS[name]
    from rnnkit.layer_norm import LN_CELLS  # here: layer_norm.py builds on this module

    return LN_CELLS[name]


def add_parameters(module: nn.Module, shapes: dict, device=None, dtype=None) -> None:
    """Register an empty nn.Parameter of each shape under its name (then `init_uniform`)."""
    for name, shape in shapes.items():
        module.register_parameter(
            name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
        )


def check_size(name: str, value, allow_zero: bool = False) -> int:
    """Reject a size that is not a positive int, naming it (a bool too, which torch.nn takes
    as 0 or 1). ShapeError is the ValueError torch.nn's layers raise for a size <= 0 and the
    RuntimeError its cells raise for a negative one."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < (0 if allow_zero else 1):
        raise ShapeError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def check_flag(name: str, value) -> bool:
    """Reject a flag that is not a bool, as torch.nn does for bias and batch_first."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def check_dropout(dropout) -> float:
    """A probability in [0, 1] as a float; not a number (a bool included) is an ArgumentTypeError,
    a TypeError that is also the ValueError torch.nn raises for it."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise ArgumentTypeError(f"dropout must be a float in [0, 1], got {dropout!r}")
    if not 0 <= dropout <= 1:
        raise ValueError(f"dropout must be a float in [0, 1], got {dropout}")
    return float(dropout)


def describe_state(value) -> str:
    """A state as an error message names it: its type, and the length of a tuple or list."""
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def check_nonlinearity(nonlinearity: str) -> str:
    if nonlinearity not in F.NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {F.NONLINEARITIES}, got {nonlinearity!r}")
    return nonlinearity


def check_sequence(layer: nn.Module, x) -> Tensor:
    """The checks every sequence layer makes of its input: a floating-point Tensor of the
    parameters' dtype (any floating dtype under torch.autocast, as torch.nn takes it), (T, B, I)
    / (B, T, I) with batch_first, or unbatched (T, I), I = layer.input_size, not empty (torch.nn
    takes B = 0; rnnkit's kernels do not). Not under torch.jit.trace (errors.TorchScriptError)."""
    if torch.jit.is_tracing():
        raise TorchScriptError(layer, "torch.jit.trace")
    if not isinstance(x, Tensor):
        raise TypeError(f"input must be a Tensor or PackedSequence, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ArgumentTypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")
    dtype = layer.weight_ih_l0.dtype
    if x.dtype != dtype and not precision.autocasting(x.device.type, dtype):
        raise ArgumentTypeError(
            f"input dtype {x.dtype} does not match the parameters' dtype "
            f"{layer.weight_ih_l0.dtype}; convert one with .to()"
        )
    if x.dim() not in (2, 3):
        raise ShapeError(
            f"input must be 3-D ({'B, T' if layer.batch_first else 'T, B'}, "
            f"{layer.input_size}) or 2-D (T, {layer.input_size}), got shape {tuple(x.shape)}"
        )
    if x.shape[-1] != layer.input_size:
        raise ShapeError(f"input.size(-1) must be input_size={layer.input_size}, got {x.shape[-1]}")
    if x.numel() == 0:
        raise ShapeError(f"input must have at least one step and row, got {tuple(x.shape)}")
    return x


def init_uniform(module: nn.Module, hidden_size: int) -> None:
    """torch.nn's initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
    k = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-k, k)


class _CellBase(nn.Module):
    """One time step of one `Cell` with torch.nn's parameters: weight_ih (G*H, I),
    weight_hh (G*H, H), bias_ih and bias_hh (G*H,) or None with bias=False. It computes in
    float32 for float16 and bfloat16 cells and under torch.autocast, as the layers (precision.py).
    """

    cell = CELLS["rnn"]
    # device types where torch.nn's cell under autocast returns the promotion of the autocast
    # dtype with the input's and states' rather than the autocast dtype (precision.plan)
    autocast_promotes_on: tuple[str, ...] = ()

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

    def __prepare_scriptable__(self):
        """torch.jit.script calls this first: refuse, pointing to torch.compile/torch.export."""
        raise TorchScriptError(self, "torch.jit.script")

    def _check(self, x: Tensor, h: Tensor | None, name: str = "hx") -> tuple[Tensor, bool]:
        """input (B, I) or (I,) of the parameters' dtype; h None, or (B, H) or (H,) like the
        input. Each class is also the one torch.nn raises (errors.py)."""
        if torch.jit.is_tracing():
            raise TorchScriptError(self, "torch.jit.trace")
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ArgumentTypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")
        autocast = precision.autocasting(x.device.type, self.weight_ih.dtype)
        if x.dtype != self.weight_ih.dtype and not autocast:
            raise ArgumentTypeError(
                f"input dtype {x.dtype} does not match the parameters' dtype "
                f"{self.weight_ih.dtype}; convert one with .to()"
            )
        if x.dim() not in (1, 2) or x.shape[-1] != self.input_size:
            raise ShapeError(
                f"input must have shape (B, {self.input_size}) or ({self.input_size},), "
                f"got {tuple(x.shape)}"
            )
        batched = x.dim() == 2
        want = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        if h is None:
            return x, batched
        if not isinstance(h, Tensor):
            raise ArgumentTypeError(
                f"{name} must be a Tensor of shape {want}, got {type(h).__name__}"
            )
        if tuple(h.shape) != want:
            raise ShapeError(f"{name} must have shape {want}, got {tuple(h.shape)}")
        if (h.dtype != x.dtype and not (autocast and h.is_floating_point())) or (
            h.device != x.device
        ):
            raise ArgumentTypeError(
                f"{name} must be {x.dtype} on {x.device} like the input, "
                f"got {h.dtype} on {h.device}"
            )
        return x, batched

    def _zeros(self, x: Tensor) -> Tensor:
        return x.new_zeros(*x.shape[:-1], self.hidden_size)

    def _step(self, x: Tensor, state: State) -> State:
        """The cell's step on [h] or [h, c] in the compute dtype of `precision.plan`, the new
        state in the dtype torch.nn's cell returns (the parameters', or autocast's)."""
        prec = precision.plan(self.weight_ih.dtype, [x, *state], self.autocast_promotes_on)
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        w = tuple(None if p is None else prec.up(p) for p in weights)
        with prec.kernels():
            new = self.cell.step(prec.up(x), [prec.up(s) for s in state], w, self._nonlinearity)
        return [prec.down(s) for s in new]

    @property
    def _nonlinearity(self) -> str | None:
        return getattr(self, "nonlinearity", None)


class RNNCell(_CellBase):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu (see `functional.rnn_step`).

    input (B, I) or (I,); hx (B, H) or (H,), zeros when None; returns h' of hx's shape.
    """

    def __init__(
        self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None
    ):
        self.nonlinearity = check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, _ = self._check(input, hx)
        return self._step(x, [self._zeros(x) if hx is None else hx])[0]


class LSTMCell(_CellBase):
    """One LSTM step, gates (i, f, g, o) (see `functional.lstm_step`).

    input (B, I) or (I,); hx = (h, c), each (B, H) or (H,), zeros when None; returns (h', c').
    """

    cell = CELLS["lstm"]
    autocast_promotes_on = ("cpu",)  # torch.nn's c' = f c + i g promotes to c's dtype

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        if hx is None:
            x, _ = self._check(input, None)
            hx = (self._zeros(x), self._zeros(x))
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ArgumentTypeError(
                    f"hx must be a tuple (h, c) for LSTMCell, got {describe_state(hx)}"
                )
            x, _ = self._check(input, hx[0], "h")
            self._check(input, hx[1], "c")
        return tuple(self._step(x, list(hx)))


class GRUCell(_CellBase):
    """One GRU step in torch.nn's convention, gates (r, z, n) (see `functional.gru_step`).

    input (B, I) or (I,); hx (B, H) or (H,), zeros when None; returns h' of hx's shape.
    """

    cell = CELLS["gru"]
    autocast_promotes_on = ("cpu",)  # torch.nn's h' = (1 - z) n + z h promotes to h's dtype

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, _ = self._check(input, hx)
        return self._step(x, [self._zeros(x) if hx is None else hx])[0]
