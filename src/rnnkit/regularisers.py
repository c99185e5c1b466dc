"""The layers' regularisers beyond torch.nn's dropout between layers: their options, checked
once (`Regularisers`), and the masks of one forward call (`draw`), drawn on the host from
torch's default CPU generator in a fixed order, so that `torch.manual_seed` fixes them whatever
the device and the thread count.

    L: layers, D: directions, T: time, B: batch, I: input size, H: hidden size,
    P: the size of h (an LSTM's proj_size, else H), G: gate blocks (RNN 1, LSTM 4, GRU 3)

Each is a probability p in [0, 1), 0 for off; every mask is scaled so that its mean is 1
(dropout's 1 / (1 - p)) except zoneout's, which chooses between two values:

    weight_drop = p        W_hh * M,  M (G*H, P) per layer and direction, one per call
                           (DropConnect on W_hh, Merity et al. 2017)
    dropout_input = p      x_t * m,   m (B, I), one per sequence for all t (locked dropout)
    dropout_output = p     y_t * m,   m (B, D*P), the last layer's output, likewise
    recurrent_dropout = p  W_hh (m * h_{t-1}) in the recurrent product, m (B, P) per layer and
                           direction, one per sequence (Gal & Ghahramani 2016)
    zoneout = p or (p_h, p_c) (LSTM)
                           h_t = k_t * h_{t-1} + (1 - k_t) * h~_t, h~_t the cell's new state,
                           k_t (B, P) ~ Bernoulli(p_h) per step in training, k_t = p_h in eval
                           (the expectation); the LSTM's c_t likewise with p_c, and
                           h~_t = o * tanh(c~_t) from the cell's unzoned c~_t (Krueger et al. 2016)

In eval mode every option but zoneout is off, and zoneout is its expectation. Masks are drawn
in this order: the input's, then per layer and direction W_hh's, the recurrent one, zoneout's
(h then c, (T, B, .) each), then the output's.
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def check_probability(name: str, value) -> float:
    """A float in [0, 1) (an int 0 too); a bool or a non-number is a TypeError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(value).__name__} {value!r}")
    if not (0 <= value < 1) or math.isnan(value):
        raise ValueError(f"{name} must be a float in [0, 1), got {value}")
    return float(value)


def check_zoneout(value, states: int, cell: str) -> tuple[float, float]:
    """(p_h, p_c) from p or a pair (p_h, p_c); a pair only for a cell with c (the LSTM)."""
    if isinstance(value, (tuple, list)):
        if states < 2:
            raise ValueError(
                f"zoneout for {cell} is one probability (it has no cell state c), got {value!r}"
            )
        if len(value) != 2:
            raise ValueError(f"zoneout must be p or a pair (p_h, p_c), got {value!r}")
        p_h, p_c = (check_probability(f"zoneout {n}", v) for n, v in zip(("p_h", "p_c"), value))
        return p_h, p_c
    p = check_probability("zoneout", value)
    return p, (p if states == 2 else 0.0)


@dataclass(frozen=True)
class Regularisers:
    """A layer's regularisers (module docstring); all 0: a plain layer."""

    weight_drop: float = 0.0  # DropConnect on W_hh, one mask per forward call
    dropout_input: float = 0.0  # locked dropout on the layer's input
    dropout_output: float = 0.0  # locked dropout on the layer's output
    recurrent_dropout: float = 0.0  # one mask per sequence on h_{t-1} in W_hh h_{t-1}
    zoneout: tuple[float, float] = (0.0, 0.0)  # (p_h, p_c); p_c 0 for RNN and GRU

    @classmethod
    def of(cls, cell, **options) -> "Regularisers":
        """Checked options of a layer of `cell` (cells.Cell)."""
        zoneout = check_zoneout(options.pop("zoneout", 0.0), cell.states, cell.torch_name)
        probs = {name: check_probability(name, value) for name, value in options.items()}
        return cls(**probs, zoneout=zoneout)

    def any(self) -> bool:
        # field by field: torch.compile cannot trace a dataclass comparison
        return bool(
            self.weight_drop or self.dropout_input or self.dropout_output or self.in_kernel()
        )

    def in_kernel(self) -> bool:
        """Whether the kernels' loops apply some (recurrent dropout, zoneout)."""
        return bool(self.recurrent_dropout or any(self.zoneout))

    def describe(self) -> str:
        """The non-zero options as constructor keywords, for extra_repr."""
        parts = [f"{k}={getattr(self, k)}" for k in self.__dataclass_fields__ if k != "zoneout"]
        parts = [p for p in parts if not p.endswith("=0.0")]
        if any(self.zoneout):
            parts.append(f"zoneout={self.zoneout}")
        return ", ".join(parts)


@dataclass
class Noise:
    """What the kernels of one layer and direction apply: the recurrent dropout mask m (B, P)
    and the zoneout weights k of h (T, B, P) and of c (T, B, H), each None where off."""

    recurrent: Tensor | None = None
    zone_h: Tensor | None = None
    zone_c: Tensor | None = None

    def any(self) -> bool:
        return any(t is not None for t in (self.recurrent, self.zone_h, self.zone_c))


@dataclass
class Masks:
    """The masks of one forward call: input (B, I), output (B, D*P), and per layer and
    direction (index k*D + d) W_hh's mask and the kernels' `Noise`."""

    input: Tensor | None
    output: Tensor | None
    weight: list
    noise: list


_INT64 = torch.empty(0, dtype=torch.int64)  # the draws' dtype, for workspace.buffer


def _mask16(shape, p: float, hi: float, lo: float, dtype) -> Tensor:
    """hi where U >= t, else lo, of `shape` in dtype, for U uniform on {0, ..., 2**16 - 1} and
    t = round(p 2**16), so P(U < t) = p to within 2**-17 (8e-6). U comes from the default
    CPU generator as 64-bit draws cut into four (torch's serial full-range `random_`: the
    same numbers whatever the thread count), a quarter of the draws of `torch.rand`, which
    spends one 32-bit draw per float; the mask is then written in one pass by the C++ loops'
    mask16 where they are loaded, else by torch.where (the same values)."""
    from rnnkit.bptt import native, workspace  # here: the kernels import this module

    n = math.prod(shape)
    draws = workspace.buffer("masks.draws", ((n + 3) // 4,), _INT64)  # used up below
    bits = draws.random_(-(2**63), None).view(torch.int16)[:n]  # U - 2**15
    t = min(round(p * 2**16), 2**16 - 1) - 2**15
    module = native.loaded()
    if module is not None and dtype in (torch.float32, torch.float64):
        out = workspace.recycled("masks", shape, torch.empty(0, dtype=dtype))
        module.mask16(bits, t, hi, lo, out)
        return out
    values = torch.tensor(hi, dtype=dtype), torch.tensor(lo, dtype=dtype)
    return torch.where(bits.reshape(shape) >= t, *values)


def bernoulli_keep(shape, p: float, dtype=torch.float64) -> Tensor:
    """1 / (1 - p) with probability 1 - p, else 0, on the CPU (`_mask16`)."""
    return _mask16(shape, p, 1 / (1 - p), 0.0, dtype)


def bernoulli(shape, p: float, dtype=torch.float64) -> Tensor:
    """1 with probability p, else 0 (zoneout's k), on the CPU (`_mask16`)."""
    return _mask16(shape, p, 0.0, 1.0, dtype)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """torch.nn.functional.dropout(x, p, training), the mask drawn as the options' are
    (`bernoulli_keep`): on the CPU 4.2x faster than torch's, forward and backward (a
    (128, 64, 512) float32 tensor, p = 0.25, Xeon, 2 threads: 10.5 against 44 ms). Elsewhere
    (CUDA, p = 1, integer x) torch's own."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu" or p >= 1 or not x.dtype.is_floating_point:
        return nn.functional.dropout(x, p, True)
    return x * bernoulli_keep(x.shape, p, x.dtype)


class Dropout(nn.Dropout):
    """torch.nn.Dropout (same p, scaling, repr and empty state dict) with `dropout`'s mask."""

    def forward(self, input: Tensor) -> Tensor:
        if self.inplace:
            return super().forward(input)
        return dropout(input, self.p, self.training)


def draw(layer, T: int, B: int, like: Tensor) -> Masks:
    """The masks of one forward call of `layer` (its `regularisers`, `training`) over T steps
    of B sequences, on like's device in its dtype; None for whatever is off."""
    reg: Regularisers = layer.regularisers
    train, D = layer.training, layer.num_directions
    P, H = layer.proj_size or layer.hidden_size, layer.hidden_size

    def keep(shape, p):
        return bernoulli_keep(shape, p, like.dtype).to(like.device) if train and p else None

    def zone(shape, p):
        if not p:
            return None
        return bernoulli(shape, p, like.dtype).to(like.device) if train else like.new_full(shape, p)

    masks = Masks(keep((B, layer.input_size), reg.dropout_input), None, [], [])
    for k in range(layer.num_layers):
        for _ in range(D):
            masks.weight.append(keep(getattr(layer, f"weight_hh_l{k}").shape, reg.weight_drop))
            rec = keep((B, P), reg.recurrent_dropout)
            masks.noise.append(
                Noise(rec, zone((T, B, P), reg.zoneout[0]), zone((T, B, H), reg.zoneout[1]))
            )
    masks.output = keep((B, D * P), reg.dropout_output)
    return masks
