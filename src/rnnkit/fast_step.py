"""The LSTM's generation step in its shortest form: `RNNBase.step` for the common case of
sampling (a plain unidirectional LSTM on the CPU, no gradient, no autocast, a state given),
all layers one C++ call (native.cpp's `lstm_steps`).

`RNNBase.step` is the reference: it checks its input, plans dtypes (precision.py), draws the
regularisers' masks and dispatches each layer through the cells' step functions, some 25
Python calls per layer. At the 2 x 512 generation step those cost about a tenth of the step,
so where every one of them would be a no-op this module skips them:

    for k in layers:  m_k, c'_k = lstm_cell([x_k, h_k], c_k, [W_ih, W_hh], b_ih + b_hh)
                      h'_k = m_k (or m_k W_hr^T with proj_size), x_{k+1} = h'_k
    returns (h'_{L-1}, (stack h'_k, stack c'_k))    h (L, B, P), c (L, B, H), x (B, I)

The joined weight [W_ih, W_hh] (4H, I + P) makes each layer's gates one product that reads W
once: at batch 1 the step is a matrix-vector product bound by memory, and on an AMD EPYC the
2 x 512 step's products took 177 us joined against 273 us as four. It is built from a weight
version the second time that version is stepped (`_joined`; so a step between optimiser
updates never pays the copy), kept beside the layer (a weak map, so not in its state dict or
its pickle) and dropped with it; the first step at a version runs the layers apart.

`step` returns None wherever it does not apply (any check below fails), and the caller takes
the reference path, which also raises the errors for bad input.
"""

import weakref

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
        and dtype in (torch.float32, torch.float64)  # the loops' types; half: the reference
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
    joined = _joined(layer, len(x))
    if joined is None:
        return _separate(loops, layer, x, h, c)
    out, h_new, c_new = loops.lstm_steps(x, h, c, *joined)
    return out, (h_new, c_new)


def _separate(loops, layer, x: Tensor, h: Tensor, c: Tensor) -> tuple:
    """step() with W_ih and W_hh apart: the first call at a weight version."""
    hs, cs = [], []
    for k, (w_ih, w_hh, b_ih, b_hh, w_hr) in enumerate(_weights(layer)):
        onednn = gemm.uses_onednn(len(x), w_hh)
        m, c_k = loops.lstm_cell(x, h[k], c[k], w_ih, w_hh, b_ih, b_hh, onednn)
        x = m if w_hr is None else gemm.linear(m, w_hr)  # h' = m W_hr^T with proj_size
        hs.append(x)
        cs.append(c_k)
    return x, (torch.stack(hs), torch.stack(cs))


def _weights(layer) -> list[tuple]:
    """Per layer (W_ih, W_hh, b_ih, b_hh, W_hr), None for those the layer lacks."""
    params = layer._parameters
    return [tuple(params.get(n) for n in (*names, None)[:5]) for names in layer._names]


_JOINED = weakref.WeakKeyDictionary()  # layer -> (key, lstm_steps' weight arguments or None)


def _joined(layer, rows: int) -> tuple | None:
    """lstm_steps' (w, b, w_hr, onednn) for this version of the layer's weights and `rows`,
    or None the first time a version is seen (module docstring)."""
    weights = _weights(layer)
    key = (rows, *((t.data_ptr(), t._version) for ws in weights for t in ws if t is not None))
    seen = _JOINED.get(layer)
    if seen is None or seen[0] != key:
        _JOINED[layer] = (key, None)
        return None
    if seen[1] is None:
        w, b, w_hr, onednn = [], [], [], []
        for w_ih, w_hh, b_ih, b_hh, hr in weights:
            w.append(torch.cat((w_ih, w_hh), 1))
            b.append(b_ih if b_hh is None else (b_hh if b_ih is None else b_ih + b_hh))
            w_hr.append(hr)
            onednn += [gemm.uses_onednn(rows, w[-1]), hr is not None and gemm.uses_onednn(rows, hr)]
        seen = _JOINED[layer] = (key, (w, b, w_hr, onednn))
    return seen[1]
