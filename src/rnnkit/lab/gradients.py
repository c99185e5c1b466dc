"""Gradient flow through time, measured: the norm of dL/dh_t at every step (from the BPTT
kernels' opt-in record), the norm of the state Jacobian over a lag, and the spectral radius
of the recurrent weights.

    T: time steps, B: batch, H: hidden size; the state s_t is h_t (RNN, GRU) or [h_t, c_t]
    (LSTM). J_t = ds_t / ds_{t-1}, the step Jacobian (per sequence).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit import functional as F
from rnnkit.bptt.probe import GradientRecord
from rnnkit.init import GATE_INDEX, mode_of


def hidden_grad_norms(model: nn.Module, inputs, targets) -> Tensor:
    """(K, T): || dL/dh_t || of each of the model's K recurrent kernel calls (layer by layer,
    forward direction first), from one forward and backward of `model(inputs, targets)`.
    The parameters' .grad are left as that backward made them."""
    with GradientRecord() as record:
        _, loss = model(inputs, targets)
        loss.backward()
    if not record.norms:
        raise ValueError(
            "the model ran no BPTT kernel with gradients: its layers must be rnnkit layers "
            "with impl='auto' or 'bptt' and parameters that require grad"
        )
    return record.stacked()


def jacobian_norms(
    layer: nn.Module, x: Tensor, k: int = 0, points: int = 40
) -> tuple[Tensor, Tensor]:
    """(lags, norms): || ds_t / ds_0 ||_2 = || J_t J_{t-1} ... J_1 ||_2, the spectral norm of
    the product of the step Jacobians of layer `k` (forward direction) along the sequence
    x (T, I) started from a zero state (s_0: the state after the first step): how much a
    change of the state at step 0 still moves the state t steps later. The product is formed
    at every step; its norm (an SVD) at about `points` lags spaced evenly in log t, T - 1
    included."""
    mode = mode_of(layer)
    if x.dim() != 2:
        raise ValueError(f"x must be one sequence (T, I), got shape {tuple(x.shape)}")
    if k and x.shape[-1] != layer.hidden_size * (2 if layer.bidirectional else 1):
        raise ValueError("for k > 0 give x as the input of layer k (the output of layer k-1)")
    sfx = f"_l{k}"
    w = [
        getattr(layer, f"{n}{sfx}", None) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ]
    w = [None if p is None else p.detach() for p in w]
    H = layer.hidden_size
    nl = getattr(layer, "nonlinearity", "tanh")

    def step(x_t: Tensor, s: Tensor) -> Tensor:
        if mode == "lstm":
            h, c = F.lstm_step(x_t, (s[:H], s[H:]), *w)
            return torch.cat([h, c])
        if mode == "gru":
            return F.gru_step(x_t, s, *w)
        return F.rnn_step(x_t, s, *w, nl)

    if getattr(layer, "layer_norm", False):  # rnnkit's layer-normalised cells: their step
        step = _layer_norm_step(layer, k, x.dtype)

    n = 2 * H if mode == "lstm" else H
    states = [torch.zeros(n, dtype=x.dtype, device=x.device)]  # s_{-1} = 0, then s_0 ...
    with torch.no_grad():
        for x_t in x:
            states.append(step(x_t, states[-1]))
    if len(x) < 2:
        return torch.zeros(0, dtype=torch.int64), x.new_zeros(0)
    T = len(x)
    lags = torch.logspace(0, math.log10(T - 1), points, dtype=torch.float64).round().long()
    lags = torch.unique(torch.cat([lags, torch.tensor([T - 1])]))
    wanted = set(lags.tolist())
    # J_t = ds_t / ds_{t-1} at the trajectory's s_{t-1}, t = 1..T-1, all in one vmap
    J = torch.func.vmap(torch.func.jacrev(step, argnums=1))(x[1:], torch.stack(states[1:-1]))
    product = torch.eye(n, dtype=x.dtype, device=x.device)
    norms = []
    for t, J_t in enumerate(J, start=1):  # (n, n)
        product = J_t @ product
        if t in wanted:
            norms.append(torch.linalg.matrix_norm(product, ord=2))
    return lags, torch.stack(norms)


def _layer_norm_step(layer: nn.Module, k: int, dtype: torch.dtype):
    """step(x_t, s) of layer k (forward direction) of a layer_norm=True rnnkit layer, on the
    flat state s as jacobian_norms takes it (functional_ln.py's equations)."""
    cell, H = layer._kernels, layer.hidden_size
    w = tuple(
        None if p is None else p.detach() for p in layer._weights(k * layer.num_directions, dtype)
    )
    nl = getattr(layer, "nonlinearity", "tanh")

    def step(x_t: Tensor, s: Tensor) -> Tensor:
        if cell.states == 2:
            return torch.cat(cell.step(x_t, [s[:H], s[H:]], w, nl))
        return cell.step(x_t, [s], w, nl)[0]

    return step


def spectral_radius(layer: nn.Module, k: int = 0) -> dict[str, float]:
    """max |eigenvalue| of each H x H gate block of W_hh of layer k (forward direction):
    {"h": r} for the RNN, {"i", "f", "g", "o"} for the LSTM, {"r", "z", "n"} for the GRU."""
    mode, H = mode_of(layer), layer.hidden_size
    w = getattr(layer, f"weight_hh_l{k}").detach().double().cpu()
    names = GATE_INDEX.get(mode, {"h": 0})
    return {
        name: float(torch.linalg.eigvals(w[g * H : (g + 1) * H]).abs().max())
        for name, g in names.items()
    }


@torch.no_grad()
def scale_spectral_radius_(layer: nn.Module, radius: float, k: int = 0) -> nn.Module:
    """Scale each gate block of W_hh of layer k so that its spectral radius is `radius`."""
    mode, H = mode_of(layer), layer.hidden_size
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    w = getattr(layer, f"weight_hh_l{k}")
    for gate in range(w.shape[0] // H):
        block = w[gate * H : (gate + 1) * H]
        r = float(torch.linalg.eigvals(block.double().cpu()).abs().max())
        if r == 0:
            raise ValueError(f"W_hh of layer {k} ({mode}) is zero: no radius to scale")
        block.mul_(radius / r)
    return layer
