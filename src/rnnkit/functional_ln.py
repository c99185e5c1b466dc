"""The step equations of the layer-normalised cells (`layer_norm=True`), written once, for
autograd: the reference the kernels (bptt/layer_norm.py) are tested against, and the step of
impl="loop" and of `step()`. Symbols as functional.py's, and:

    LN(v; gamma, beta) = gamma (v - mean(v)) / sqrt(var(v) + eps) + beta over the last axis
        (biased variance, eps = 1e-5, torch.nn.functional.layer_norm)
    gamma_ih, gamma_hh (G*H)   gains of the input and recurrent projections' LayerNorm
    gamma_c, beta_c (H)        gain and bias of the LSTM cell state's LayerNorm

Each takes w = (W_ih, W_hh, b_ih, b_hh, W_hr, gamma_ih, gamma_hh[, gamma_c, beta_c]), the
biases and W_hr None where absent, and `rec`: recurrent dropout's mask m on h_{t-1} in
W_hh (m h_{t-1}), or None.
"""

import torch
from torch import Tensor
from torch.nn.functional import layer_norm

from rnnkit.bptt.layer_norm import EPS  # torch.nn.LayerNorm's, the kernels' too


def _ln(v: Tensor, gain: Tensor, bias: Tensor | None = None) -> Tensor:
    return layer_norm(v, v.shape[-1:], gain, bias, EPS)


def _projections(x: Tensor, h: Tensor, w, rec: Tensor | None) -> tuple[Tensor, Tensor]:
    """(a, u): a = LN(W_ih x; gamma_ih) + b_ih,  u = LN(W_hh h; gamma_hh) + b_hh, with h the
    masked m * h where recurrent dropout's mask m = rec is given."""
    w_ih, w_hh, b_ih, b_hh, _, g_ih, g_hh = w[:7]
    h = h if rec is None else h * rec
    a, u = _ln(x @ w_ih.t(), g_ih), _ln(h @ w_hh.t(), g_hh)
    return (a if b_ih is None else a + b_ih), (u if b_hh is None else u + b_hh)


def rnn_step(x: Tensor, state: list[Tensor], w, nonlinearity: str = "tanh", rec=None):
    """h_t = act(LN(W_ih x_t; gamma_ih) + b_ih + LN(W_hh h_{t-1}; gamma_hh) + b_hh)."""
    a, u = _projections(x, state[0], w, rec)
    z = a + u
    return [torch.tanh(z) if nonlinearity == "tanh" else torch.relu(z)]


def lstm_step(x: Tensor, state: list[Tensor], w, nonlinearity=None, rec=None):
    """[z_i, z_f, z_g, z_o] = LN(W_ih x_t; gamma_ih) + LN(W_hh h_{t-1}; gamma_hh) + b_ih + b_hh
    i, f, o = sigmoid(z_i, z_f, z_o)   g = tanh(z_g)   c_t = f * c_{t-1} + i * g
    h_t = o * tanh(LN(c_t; gamma_c, beta_c)), or W_hr (o * tanh(LN(c_t))) with a projection."""
    h, c = state
    a, u = _projections(x, h, w, rec)
    i, f, g, o = (a + u).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(_ln(c, w[7], w[8]))
    return [h if w[4] is None else h @ w[4].t(), c]


def gru_step(x: Tensor, state: list[Tensor], w, nonlinearity=None, rec=None):
    """[a_r, a_z, a_n] = LN(W_ih x_t; gamma_ih) + b_ih,  [u_r, u_z, u_n] = LN(W_hh h_{t-1};
    gamma_hh) + b_hh (normalised over all 3H, then the bias)
    r = sigmoid(a_r + u_r)   z = sigmoid(a_z + u_z)   n = tanh(a_n + r * u_n)
    h_t = (1 - z) * n + z * h_{t-1}"""
    h = state[0]
    a, u = _projections(x, h, w, rec)
    a_r, a_z, a_n = a.chunk(3, dim=-1)
    u_r, u_z, u_n = u.chunk(3, dim=-1)
    r, z = torch.sigmoid(a_r + u_r), torch.sigmoid(a_z + u_z)
    n = torch.tanh(a_n + r * u_n)
    return [(1 - z) * n + z * h]
