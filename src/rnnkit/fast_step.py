"""The LSTM's generation step in its shortest form: `RNNBase.step` for the common case of
sampling (a plain unidirectional LSTM on the CPU, no gradient, no autocast, a state given),
each layer one C++ call (native.cpp's `lstm_cell`).

`RNNBase.step` is the reference: it checks its input, plans dtypes (precision.py), draws the
regularisers' masks and dispatches each layer through the cells' step functions, some 25
Python calls per layer. At the 2 x 512 generation step those cost about a tenth of the step,
so where every one of them would be a no-op this module skips them:

    for k in layers:  m_k, c'_k = lstm_cell(x_k, h_k, c_k, W_ih, W_hh, b_ih, b_hh)
                      h'_k = m_k (or m_k W_hr^T with proj_size), x_{k+1} = h'_k
    returns (h'_{L-1}, (stack h'_k, stack c'_k))    h (L, B, P), c (L, B, H), x (B, I)

`step` returns None wherever it does not apply (any check below fails), and the caller takes
the reference path, which also raises the errors for bad input.
"""

import torch
from torch import Tensor

from rnnkit import precision
from rnnkit.bptt import gemm, native


def _applies(layer, x, hx) -> bool:
    """Whether the short path computes exactly what RNNBase.step would, with no check that
    could fail: a plain LSTM layer in eval-like conditions and tensors of the right kinds."""
    if (
        layer.cell.name != "lstm"
        or layer.layer_norm
        or layer.bidirectional
        or layer.regularisers.any()
        or (layer.training and layer.dropout)
        or torch.is_grad_enabled()
        or not isinstance(x, Tensor)
        or not isinstance(hx, tuple)
        or len(hx) != 2
    ):
        return False
    h, c = hx
    B, dtype = (x.shape[0] if x.dim() == 2 else -1), layer.weight_ih_l0.dtype
    L, H = layer.num_layers, layer.hidden_size
    return (
        isinstance(h, Tensor)
        and isinstance(c, Tensor)
        and tuple(x.shape) == (B, layer.input_size)
        and tuple(h.shape) == (L, B, layer.proj_size or H)
        and tuple(c.shape) == (L, B, H)
        and x.dtype == h.dtype == c.dtype == dtype
        and x.device.type == h.device.type == c.device.type == "cpu"
        and x.is_contiguous()
        and h.is_contiguous()
        and c.is_contiguous()
        and not precision.autocasting("cpu", dtype)
        and not torch.compiler.is_compiling()
    )


def step(layer, x: Tensor, hx) -> tuple | None:
    """(output (B, P), (h' (L, B, P), c' (L, B, H))) of one step, or None where the short
    path does not apply (module docstring)."""
    if not _applies(layer, x, hx):
        return None
    loops = native.for_cpu(x)
    if loops is None:
        return None
    h, c = hx
    hs, cs = [], []
    for k, names in enumerate(layer._names):
        w_ih, w_hh, b_ih, b_hh, *w_hr = (getattr(layer, n, None) for n in names)
        onednn = gemm.uses_onednn(len(x), w_hh)
        m, c_k = loops.lstm_cell(x, h[k], c[k], w_ih, w_hh, b_ih, b_hh, onednn)
        x = gemm.linear(m, w_hr[0]) if w_hr else m  # h' = m W_hr^T with proj_size
        hs.append(x)
        cs.append(c_k)
    return x, (torch.stack(hs), torch.stack(cs))
