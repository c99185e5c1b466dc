"""torch's own fused RNN operators, for the configurations they support: the layers' path on
CUDA tensors (impl="auto"), where cuDNN runs the whole stack in one call and rnnkit's
hand-written kernels would run a Python loop over time, and impl="fused" on any device (the
CPU tests compare it with the kernels: the same equations, the same parameters).

rnnkit's kernels keep what the fused operators cannot do: the gradient lab's record of
dL/dh_t (`bptt.probe`), torch.compile and torch.export (the custom operators), and the
options torch.nn does not have.

    L: num_layers, D: directions, T: time, B: batch, I: input size, H: hidden size,
    P: proj_size (H where 0)
    x (T, B, I)    out (T, B, D*P)    h (L*D, B, P)    c (L*D, B, H)

The operators take the weights as one flat list, layer by layer and within a layer forward
then reverse: W_ih, W_hh, then b_ih, b_hh with biases, then W_hr with a projection, the
order of the layer's own parameter names (`RNNBase._names`).
"""

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.bptt import probe
from rnnkit.lengths import check_lengths

# torch.nn's mode strings, as cuDNN's flatten and torch._VF name them
MODES = {"rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU", "lstm": "LSTM", "gru": "GRU"}


def chosen(layer, device: torch.device) -> bool:
    """Whether impl="auto" runs `layer` on a tensor of `device` with the fused operator: on
    CUDA, for the plain cells (rnnkit's kernels for anything more), unless the gradient lab
    is recording dL/dh_t or torch.compile / torch.export traces the call (its operators)."""
    return (
        device.type == "cuda"
        and layer.fusable()
        and not probe.recording()
        and not torch.compiler.is_compiling()
    )


def resolve(layer, device: torch.device, impl: str) -> str:
    """The implementation a call runs: impl="auto" made "fused" or "bptt" (`chosen`); an
    impl="fused" the layer's options forbid is a ValueError."""
    if impl == "auto":
        return "fused" if chosen(layer, device) else "bptt"
    if impl == "fused" and not layer.fusable():
        raise ValueError(
            "impl='fused' runs torch's own operator, which has none of this layer's "
            "options beyond torch.nn's: use impl='auto' or 'bptt'"
        )
    return impl


def run(layer, x: Tensor, state: list[Tensor], lengths) -> tuple[Tensor, list[Tensor]]:
    """(out (T, B, D*P), final states) of x (T, B, I) from the fused operator of the layer's
    mode; with lengths, a packed batch: padded steps output zeros and change no state."""
    op = getattr(torch._VF, mode(layer))
    hx = tuple(state) if len(state) == 2 else state[0]
    weights = flat_weights(layer, x.dtype)
    setting = (layer.bias, layer.num_layers, float(layer.dropout), layer.training)
    bidirectional = bool(layer.bidirectional)
    if lengths is None:
        out, *finals = op(x, hx, weights, *setting, bidirectional, False)
        return out, finals
    T, B = x.shape[:2]
    lengths = check_lengths(lengths, T, B)
    pack = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
    order, back = pack.sorted_indices, pack.unsorted_indices
    hx = tuple(s.index_select(1, order) for s in state) if len(state) == 2 else hx[:, order]
    data, *finals = op(pack.data, pack.batch_sizes, hx, weights, *setting, bidirectional)
    out, _ = pad_packed_sequence(PackedSequence(data, pack.batch_sizes, order, back), False, 0.0, T)
    return out, [s.index_select(1, back) for s in finals]


def mode(layer) -> str:
    """torch.nn's mode of the layer, lower case: rnn_tanh, rnn_relu, lstm or gru."""
    return f"rnn_{layer.nonlinearity}" if layer.mode == "rnn" else layer.mode


def flat_weights(layer, dtype: torch.dtype) -> list[Tensor]:
    """The layer's parameters in the fused operators' order, in `dtype` (differentiably)."""
    weights = []
    for index in range(len(layer._names)):
        w_ih, w_hh, b_ih, b_hh, *w_hr = layer._weights(index, dtype)
        weights += [w_ih, w_hh, *((b_ih, b_hh) if layer.bias else ()), *w_hr]
    return weights


def flatten(layer) -> None:
    """On CUDA with cuDNN, make the layer's parameters views of one buffer in cuDNN's layout,
    as torch.nn's flatten_parameters does, so that cuDNN does not copy them on every call;
    anywhere else (the CPU, mixed devices or dtypes, shared tensors) leave them as they are."""
    weights = flat_weights(layer, layer.weight_ih_l0.dtype)
    first = weights[0]
    if not all(
        w.is_cuda and w.dtype == first.dtype and torch.backends.cudnn.is_acceptable(w)
        for w in weights
    ) or len({w.data_ptr() for w in weights}) < len(weights):
        return
    if not torch._use_cudnn_rnn_flatten_weight():
        return
    from torch.backends.cudnn import rnn as cudnn_rnn

    per_layer = (4 if layer.bias else 2) + (1 if layer.proj_size else 0)
    cudnn_mode = cudnn_rnn.get_cudnn_mode(MODES[mode(layer)])
    with torch.cuda.device_of(first), torch.no_grad():
        torch._cudnn_rnn_flatten_weight(
            weights, per_layer, layer.input_size, cudnn_mode, layer.hidden_size,
            layer.proj_size, layer.num_layers, layer.batch_first, bool(layer.bidirectional),
        )  # fmt: skip
