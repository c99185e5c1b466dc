"""The step equations of the Elman RNN, the LSTM and the GRU, written once.

Symbols (shared with `bptt/`, `cells.py` and `docs/bptt.md`):

    B: batch size, I: input size, H: hidden size
    x (B, I)          input of one step
    h (B, H)          hidden state h_{t-1}; the functions return h_t
    c (B, H)          LSTM cell state c_{t-1}
    W_ih (G*H, I)     input weights, gates packed as in torch.nn (G = 1, 4, 3)
    W_hh (G*H, H)     recurrent weights
    b_ih, b_hh (G*H)  biases (either may be None)
    W_hr (P, H)       an LSTM's projection (proj_size = P): then h and W_hh's columns are P

Every function is one time step and differentiable by autograd: they are the
reference that the hand-written BPTT kernels are tested against.
"""

import torch
from torch import Tensor

from rnnkit.bptt import gemm

NONLINEARITIES = ("tanh", "relu")


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """W x + b; without autograd, on the faster GEMM library (`bptt/gemm.py`): a generation step is
    two matrix-vector products per layer, memory-bound on the weights. Under torch.compile and
    torch.export, torch's own: the library choice reads the batch size, which would fix it."""
    if torch.compiler.is_compiling():
        return torch.nn.functional.linear(x, w, b)
    if x.dim() == 2 and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)):
        return gemm.linear(x, w, b)
    return torch.nn.functional.linear(x, w, b)


def rnn_step(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
) -> Tensor:
    """Elman RNN step.

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   act = tanh or relu
    """
    z = _linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)
    if nonlinearity == "tanh":
        return torch.tanh(z)
    if nonlinearity == "relu":
        return torch.relu(z)
    raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")


def lstm_step(
    x: Tensor,
    state: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """LSTM step; gates packed (i, f, g, o) as in torch.nn.

    [z_i, z_f, z_g, z_o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

    With a projection W_hr (P, H) (torch.nn.LSTM's proj_size = P), h is (B, P), W_hh (4H, P):
    m_t = o * tanh(c_t) (B, H),   h_t = W_hr m_t
    """
    h, c = state
    z = _linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)
    z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    if w_hr is not None:
        h = _linear(h, w_hr, None)
    return h, c


def gru_step(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    rec: Tensor | None = None,
) -> Tensor:
    """GRU step in torch.nn's convention; gates packed (r, z, n).

    [a_r, a_z, a_n] = W_ih x_t + b_ih          (input part)
    [u_r, u_z, u_n] = W_hh h_{t-1} + b_hh      (recurrent part; W_hh (m * h_{t-1}) with
                                                recurrent dropout's mask m = rec)
    r = sigmoid(a_r + u_r)   z = sigmoid(a_z + u_z)
    n = tanh(a_n + r * u_n)                    (reset gate multiplies W_hn h + b_hn)
    h_t = (1 - z) * n + z * h_{t-1}
    """
    a_r, a_z, a_n = _linear(x, w_ih, b_ih).chunk(3, dim=-1)
    u_r, u_z, u_n = _linear(h if rec is None else h * rec, w_hh, b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(a_r + u_r)
    z = torch.sigmoid(a_z + u_z)
    n = torch.tanh(a_n + r * u_n)
    return (1 - z) * n + z * h
