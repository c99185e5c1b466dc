"""Initialisations for recurrent layers, by name: `initialize(layer, scheme)`.

They work on any layer with torch.nn's parameter names (rnnkit's and torch.nn's RNN, LSTM
and GRU, every layer and direction). G gates of H units are packed in W_hh (G*H, H) as in
torch.nn: RNN (h), LSTM (i, f, g, o), GRU (r, z, n).

    default      torch.nn's: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))
    orthogonal   each H x H gate block of W_hh a random orthogonal matrix (Saxe et al. 2014),
                 W_ih Glorot-uniform, biases 0; LSTM forget bias 1
    identity     IRNN (Le et al. 2015), Elman RNN only, meant for relu: W_hh = I,
                 W_ih ~ N(0, 0.001^2), biases 0
    chrono       Tallec & Ollivier 2018, LSTM and GRU, for dependencies up to t_max steps:
                 LSTM b_f = log(u), b_i = -b_f; GRU b_z = log(u) (z keeps h_{t-1});
                 u ~ U(1, t_max - 1), on b_ih (b_hh's gate part 0); the rest as orthogonal

`forget_bias_(lstm, value)` sets the LSTM forget-gate bias alone (1 is Jozefowicz et al.'s).
"""

from __future__ import annotations

import math

import torch
from torch import nn

SCHEMES = ("default", "orthogonal", "identity", "chrono")
GATE_INDEX = {"lstm": {"i": 0, "f": 1, "g": 2, "o": 3}, "gru": {"r": 0, "z": 1, "n": 2}}


def mode_of(layer: nn.Module) -> str:
    """ "rnn", "lstm" or "gru" from the layer's class (rnnkit's `mode`, or torch.nn's `mode`)."""
    mode = getattr(layer, "mode", None)
    mode = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "LSTM": "lstm", "GRU": "gru"}.get(mode, mode)
    if mode not in ("rnn", "lstm", "gru"):
        raise TypeError(f"expected an RNN, LSTM or GRU layer, got {type(layer).__name__}")
    return mode


def _groups(layer: nn.Module):
    """(W_ih, W_hh, b_ih or None, b_hh or None) for each layer and direction."""
    names = [n for n, _ in layer.named_parameters() if n.startswith("weight_hh")]
    for name in names:
        sfx = name[len("weight_hh") :]
        yield (
            getattr(layer, f"weight_ih{sfx}"),
            getattr(layer, name),
            getattr(layer, f"bias_ih{sfx}", None),
            getattr(layer, f"bias_hh{sfx}", None),
        )


def _block(p: torch.Tensor, gate: int, H: int) -> torch.Tensor:
    return p[gate * H : (gate + 1) * H]


@torch.no_grad()
def default_(layer: nn.Module) -> nn.Module:
    k = 1.0 / math.sqrt(layer.hidden_size)
    for p in layer.parameters():
        p.uniform_(-k, k)
    return layer


@torch.no_grad()
def orthogonal_(layer: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    mode, H = mode_of(layer), layer.hidden_size
    for w_ih, w_hh, b_ih, b_hh in _groups(layer):
        for gate in range(w_hh.shape[0] // H):
            _block(w_hh, gate, H).copy_(_orthogonal(H, w_hh, generator))
            nn.init.xavier_uniform_(_block(w_ih, gate, H), generator=generator)
        for b in (b_ih, b_hh):
            if b is not None:
                b.zero_()
    if mode == "lstm":
        forget_bias_(layer, 1.0)
    return layer


def _orthogonal(H: int, like: torch.Tensor, generator) -> torch.Tensor:
    a = torch.randn(H, H, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))  # uniform over the orthogonal group (Mezzadri)
    return q.to(like.dtype)


@torch.no_grad()
def identity_(layer: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    if mode_of(layer) != "rnn":
        raise ValueError(
            f"the identity initialisation is the IRNN's, for the Elman RNN; got a "
            f"{type(layer).__name__}: use orthogonal or chrono for gated cells"
        )
    for w_ih, w_hh, b_ih, b_hh in _groups(layer):
        w_hh.copy_(torch.eye(layer.hidden_size, dtype=w_hh.dtype))
        w_ih.copy_(torch.randn(w_ih.shape, generator=generator, dtype=w_ih.dtype) * 1e-3)
        for b in (b_ih, b_hh):
            if b is not None:
                b.zero_()
    return layer


@torch.no_grad()
def chrono_(layer: nn.Module, t_max: int, generator: torch.Generator | None = None) -> nn.Module:
    mode, H = mode_of(layer), layer.hidden_size
    if mode == "rnn":
        raise ValueError("the chrono initialisation sets gate biases: use it with LSTM or GRU")
    if isinstance(t_max, bool) or not isinstance(t_max, int) or t_max < 3:
        raise ValueError(f"chrono needs t_max, the longest dependency, an int >= 3; got {t_max!r}")
    if not getattr(layer, "bias", True):
        raise ValueError("the chrono initialisation sets gate biases: the layer has bias=False")
    orthogonal_(layer, generator)
    gates = GATE_INDEX[mode]
    for _, _, b_ih, b_hh in _groups(layer):
        u = torch.rand(H, generator=generator, dtype=torch.float64) * (t_max - 2) + 1
        keep = u.log().to(b_ih.dtype)  # in [0, log(t_max - 1))
        if mode == "lstm":
            _block(b_ih, gates["f"], H).copy_(keep)
            _block(b_ih, gates["i"], H).copy_(-keep)
            _block(b_hh, gates["f"], H).zero_()
            _block(b_hh, gates["i"], H).zero_()
        else:
            _block(b_ih, gates["z"], H).copy_(keep)
            _block(b_hh, gates["z"], H).zero_()
    return layer


@torch.no_grad()
def forget_bias_(layer: nn.Module, value: float = 1.0) -> nn.Module:
    if mode_of(layer) != "lstm":
        raise ValueError(f"a forget-gate bias is the LSTM's; got a {type(layer).__name__}")
    H, f = layer.hidden_size, GATE_INDEX["lstm"]["f"]
    for _, _, b_ih, b_hh in _groups(layer):
        if b_ih is None:
            raise ValueError("the layer has bias=False: there is no forget-gate bias to set")
        _block(b_ih, f, H).fill_(value)
        _block(b_hh, f, H).zero_()
    return layer


def initialize(
    layer: nn.Module,
    scheme: str = "default",
    *,
    t_max: int | None = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Apply the named scheme (SCHEMES) to every layer and direction of `layer`, in place."""
    if scheme not in SCHEMES:
        raise ValueError(f"init must be one of {SCHEMES}, got {scheme!r}")
    mode_of(layer)
    if scheme == "default":
        return default_(layer)
    if scheme == "orthogonal":
        return orthogonal_(layer, generator)
    if scheme == "identity":
        return identity_(layer, generator)
    if t_max is None:
        raise ValueError("the chrono initialisation needs t_max (the longest dependency)")
    return chrono_(layer, t_max, generator)
