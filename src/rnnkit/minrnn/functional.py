"""The minGRU and minLSTM equations (Feng et al. 2024), written once, in linear and log space.

Both cells are one gated average whose gates see only the input, never h_{t-1}:

    h_t = (1 - w_t) * h_{t-1} + w_t * h~_t          w_t in (0, 1), h~_t > 0

so a sequence is the linear recurrence h_t = a_t * h_{t-1} + b_t with a_t = 1 - w_t and
b_t = w_t * h~_t, which `scan.log_scan` solves for all t at once from (log a, log b).

Symbols (shared with `layers.py`, `scan.py` and `docs/minrnn.md`):

    p (..., G*H)   the input projection W_ih x_t + b_ih, blocks packed as named below
    minGRU  (G=2): p = [k | v]         z = sigmoid(k),   h~ = g(v)
    minLSTM (G=3): p = [k_f | k_i | v] f = sigmoid(k_f), i = sigmoid(k_i), h~ = g(v),
                   f' = f / (f + i),   i' = i / (f + i)
    g(v) = v + 1/2 for v >= 0, sigmoid(v) for v < 0     (continuous, > 0, so log h~ exists)

    minGRU:  h_t = (1 - z_t) * h_{t-1} + z_t * h~_t     w = z
    minLSTM: h_t = f'_t * h_{t-1} + i'_t * h~_t         w = i' (f' + i' = 1, so f' = 1 - w)

Every function is elementwise over any leading shape and differentiable by autograd.
"""

import torch
from torch import Tensor
from torch.nn.functional import softplus

GATES = {"mingru": 2, "minlstm": 3}  # blocks of H in p


# g and log g are written without torch.where, which cost 7 ms per 2M elements here (and
# two more in its backward) against 0.6 for relu or clamp; the pieces agree with the
# two-branch definitions exactly, because sigmoid(0) = 1/2.


def g(v: Tensor) -> Tensor:
    """g(v) = v + 1/2 for v >= 0, sigmoid(v) otherwise: positive and continuous (1/2 at 0).

    Computed as relu(v) + sigmoid(min(v, 0)).
    """
    return torch.relu(v) + torch.sigmoid(v.clamp(max=0))


def log_g(v: Tensor) -> Tensor:
    """log g(v) = log(v + 1/2) for v >= 0, log sigmoid(v) = -softplus(-v) otherwise.

    Computed as log(1 + 2 relu(v)) + log sigmoid(u) with u = min(v, 0) and
    log sigmoid(u) = u - softplus(u) (the two pieces' log 2 and -log 2 cancel).
    """
    u = v.clamp(max=0)
    return torch.log1p(2 * torch.relu(v)) + (u - softplus(u))


def _blocks(p: Tensor, mode: str) -> tuple[Tensor, ...]:
    return p.chunk(GATES[mode], dim=-1)


def gates(p: Tensor, mode: str) -> tuple[Tensor, Tensor]:
    """(w, h~) in linear space: minGRU w = z = sigmoid(k); minLSTM w = i' = i / (f + i)."""
    if mode == "mingru":
        k, v = _blocks(p, mode)
        return torch.sigmoid(k), g(v)
    k_f, k_i, v = _blocks(p, mode)
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    return i / (f + i), g(v)


def log_coefficients(p: Tensor, mode: str) -> tuple[Tensor, Tensor]:
    """(log a, log b) of h_t = a_t h_{t-1} + b_t, computed in log space from p.

    minGRU:  log a = log(1 - z) = -softplus(k)
             log b = log z + log h~ = -softplus(-k) + log g(v)
    minLSTM: diff = softplus(-k_f) - softplus(-k_i)            (= log i - log f)
             log a = log f' = -softplus(diff)
             log b = log i' + log h~ = -softplus(-diff) + log g(v)

    The code computes one softplus per pair, with log sigmoid(x) = x - softplus(x):
    minGRU log b = k - softplus(k) + log g(v), minLSTM log b = diff - softplus(diff) + ...
    """
    if mode == "mingru":
        k, v = _blocks(p, mode)
        sp = softplus(k)
        return -sp, (k - sp) + log_g(v)
    k_f, k_i, v = _blocks(p, mode)
    diff = softplus(-k_f) - softplus(-k_i)
    sp = softplus(diff)
    return -sp, (diff - sp) + log_g(v)


def step(h: Tensor, w: Tensor, h_tilde: Tensor) -> Tensor:
    """h_t = (1 - w_t) * h_{t-1} + w_t * h~_t, one time step (torch.lerp computes exactly this)."""
    return torch.lerp(h, h_tilde, w)
