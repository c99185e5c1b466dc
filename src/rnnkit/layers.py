"""RNN, LSTM and GRU layers: torch.nn's interface plus `lengths=` and a stepping API.

The layer owns stacking, directions, dropout between layers, variable lengths and the checks
on user input (`layer_checks.py`); what differs between the three is their `cells.Cell`: the
gate count, the state arity, the step and the kernel. The loop over time (`directions.py`) is
the cell's kernel from `bptt/` (impl="bptt", the fast path) or its step from `functional.py`
looped under autograd (impl="loop", the reference); impl="auto", the default, is "bptt" but on
CUDA, where torch's fused operator (cuDNN) runs the plain cells (`fused.py`, impl="fused").
Under torch.compile and torch.export (torch.compiler.is_compiling), impl="bptt" runs each
layer and direction as the cell's operator (`Cell.op`, bptt/ops.py), the same kernels with
no data-dependent Python around them; a PackedSequence input stays eager (packing it is
data-dependent: a graph break, refused by fullgraph=True and torch.export). Every path
computes in float32 for a float16 or bfloat16 layer and under torch.autocast (`precision.py`).

    L: num_layers, D: directions (1 or 2), T: time, B: batch, I: input size, H: hidden size,
    P: an LSTM's proj_size, the size of h (H where proj_size = 0, and for RNN and GRU)
    input (T, B, I)    output (T, B, D*P)    h_0, h_n (L*D, B, P)    c_0, c_n (L*D, B, H)

States and parameters are ordered as torch.nn's: layer by layer, and within a layer the
forward direction then the reverse one (state row k*D + d; parameters weight_ih_l{k} then
weight_ih_l{k}_reverse). The output holds the forward direction's h_t in [..., :H] and the
reverse direction's in [..., H:].
"""

from rnnkit.cells import CELLS, check_nonlinearity
from rnnkit.layer_checks import IMPLS, check_impl, reject_proj_size
from rnnkit.minrnn import MinGRU, MinLSTM
from rnnkit.rnnbase import RNNBase

__all__ = ["IMPLS", "LAYERS", "GRU", "LSTM", "RNN", "RNNBase", "check_impl"]


class RNN(RNNBase):
    """Elman RNN layer: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh | relu.

    Same constructor, call and state_dict as torch.nn.RNN, plus `lengths=`, `impl=` and `step`.
    Shapes: see `RNNBase.forward`.
    """

    # torch.nn.RNN's arguments, in its order: nonlinearity fourth, no proj_size
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        impl: str = "auto",
        proj_size=None,  # refused as torch.nn.RNN refuses it (reject_proj_size)
        weight_drop: float = 0.0,  # the regularisers: see RNNBase (regularisers.py)
        dropout_input: float = 0.0,
        dropout_output: float = 0.0,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        layer_norm: bool = False,  # LayerNorm in the cells: see RNNBase (layer_norm.py)
    ):
        reject_proj_size("RNN", proj_size)
        self.nonlinearity = check_nonlinearity(nonlinearity)
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
            impl=impl,
            weight_drop=weight_drop,
            dropout_input=dropout_input,
            dropout_output=dropout_output,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            layer_norm=layer_norm,
        )


class LSTM(RNNBase):
    """LSTM layer (gates i, f, g, o; state (h, c)), a drop-in for torch.nn.LSTM.

    c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t); see `functional.lstm_step`. With
    proj_size = P > 0, as torch.nn.LSTM: h_t = W_hr (o * tanh(c_t)), weight_hr_l{k} (P, H).
    State (h, c), h (L*D, B, P), c (L*D, B, H); shapes: see `RNNBase.forward`.
    """

    cell = CELLS["lstm"]

    def forward_with_cells(self, input, hx=None, lengths=None, *, impl: str | None = None):
        """forward, and the last layer's cell state c_t at every step (the kernels keep them
        for the backward anyway), differentiable: (output, (h_n, c_n), cells), cells
        (T, B, D*H) as the output is laid out ((B, T, D*H) with batch_first, (T, D*H)
        unbatched, packed like a packed input), the forward direction's c_t in [..., :H];
        padded steps 0. Eager only (not under torch.compile/export), impl "bptt" or "loop"."""
        return self._forward(input, hx, lengths, impl, cells=True)


class GRU(RNNBase):
    """GRU layer in torch.nn's convention (r, z, n), a drop-in for torch.nn.GRU.

    h_t = (1 - z) * n + z * h_{t-1}; see `functional.gru_step`. Shapes: see `RNNBase.forward`.
    """

    cell = CELLS["gru"]
    autocast_promotes_on = ("cpu",)  # torch.nn.GRU's h' = (1 - z) n + z h promotes to h's dtype

    # torch.nn.GRU's arguments, in its order: no proj_size
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        impl: str = "auto",
        proj_size=None,  # refused as torch.nn.GRU refuses it (reject_proj_size)
        weight_drop: float = 0.0,  # the regularisers: see RNNBase (regularisers.py)
        dropout_input: float = 0.0,
        dropout_output: float = 0.0,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        layer_norm: bool = False,  # LayerNorm in the cells: see RNNBase (layer_norm.py)
    ):
        reject_proj_size("GRU", proj_size)
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
            impl=impl,
            weight_drop=weight_drop,
            dropout_input=dropout_input,
            dropout_output=dropout_output,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            layer_norm=layer_norm,
        )


# the task models' `cell` option -> layer class
LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN, "mingru": MinGRU, "minlstm": MinLSTM}
