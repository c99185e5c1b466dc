"""RNN, LSTM and GRU layers: torch.nn's interface plus `lengths=` and a stepping API.

The layer owns stacking, directions, dropout between layers, variable lengths and the checks
on user input; what differs between the three is their `cells.Cell`: the gate count, the
state arity, the step and the kernel. The loop over time is the cell's kernel from `bptt/`
(impl="bptt", the fast path) or its step from `functional.py` looped under autograd
(impl="loop", the reference). Under torch.compile and torch.export (torch.compiler.is_compiling),
impl="bptt" runs each layer and direction as the cell's operator (`Cell.op`, bptt/ops.py), the
same kernels with no data-dependent Python around them; a PackedSequence input stays eager
(packing it is data-dependent: a graph break, refused by fullgraph=True and torch.export).

    L: num_layers, D: directions (1 or 2), T: time, B: batch, I: input size, H: hidden size
    input (T, B, I)    output (T, B, D*H)    h_0, h_n (and c_0, c_n) (L*D, B, H)

States and parameters are ordered as torch.nn's: layer by layer, and within a layer the
forward direction then the reverse one (state row k*D + d; parameters weight_ih_l{k} then
weight_ih_l{k}_reverse). The output holds the forward direction's h_t in [..., :H] and the
reverse direction's in [..., H:].
"""

import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import (
    CELLS,
    Cell,
    add_parameters,
    check_dropout,
    check_flag,
    check_nonlinearity,
    check_sequence,
    check_size,
    describe_state,
    init_uniform,
)
from rnnkit.errors import ArgumentTypeError, ShapeError, TorchScriptError
from rnnkit.lengths import Batch, check_lengths
from rnnkit.minrnn import MinGRU, MinLSTM

IMPLS = ("bptt", "loop")


def check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


def check_proj_size(proj_size, hidden_size: int) -> int:
    """torch.nn.LSTM's rules (an int in [0, hidden_size)), then rnnkit's: only 0 for now."""
    check_size("proj_size", proj_size, allow_zero=True)
    if proj_size >= hidden_size:
        raise ValueError(f"proj_size must be < hidden_size={hidden_size}, got {proj_size}")
    if proj_size > 0:
        raise ValueError(
            f"proj_size > 0 (LSTM projections) is not supported yet, got proj_size={proj_size}"
        )
    return proj_size


def reject_proj_size(layer: str, proj_size) -> None:
    """RNN and GRU take no proj_size: torch.nn raises this ValueError even for proj_size=0."""
    if proj_size is not None:
        raise ValueError(
            f"proj_size is an LSTM option (projections of h); {layer} takes none, "
            f"got proj_size={proj_size!r}"
        )


class RNNBase(nn.Module):
    """Shared by RNN, LSTM and GRU; the class's `cell` (a `cells.Cell`) is what differs.

    Parameters per layer k and direction (suffix "_l{k}", then "_l{k}_reverse"), as
    torch.nn's: weight_ih (G*H, I) for k = 0, (G*H, D*H) above; weight_hh (G*H, H);
    bias_ih, bias_hh (G*H) unless bias=False.
    """

    cell: Cell = CELLS["rnn"]

    # torch.nn.LSTM's arguments, in its order (RNN and GRU: theirs, see their __init__)
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,  # LSTM only, and only 0 for now (check_proj_size)
        device=None,
        dtype=None,
        *,
        impl: str = "bptt",  # "bptt": hand-written BPTT kernels; "loop": autograd reference
    ):
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.num_layers = check_size("num_layers", num_layers)
        self.dropout = check_dropout(dropout)
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"dropout={dropout} has no effect with num_layers=1: it applies between layers",
                stacklevel=2,
            )
        self.bias = check_flag("bias", bias)
        self.batch_first = check_flag("batch_first", batch_first)
        self.bidirectional = bidirectional  # any truthy value, as torch.nn takes it
        self.impl = check_impl(impl)
        self.proj_size = check_proj_size(proj_size, hidden_size)  # torch.nn's attribute
        D = self.num_directions
        self._names = []  # per (layer, direction): names of W_ih, W_hh, b_ih, b_hh
        for k in range(num_layers):
            for d in range(D):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                layer_input = input_size if k == 0 else D * hidden_size
                shapes = self.cell.parameter_shapes(layer_input, hidden_size, True, sfx)
                self._names.append(list(shapes))
                if not bias:
                    shapes = dict(list(shapes.items())[:2])
                add_parameters(self, shapes, device, dtype)
        init_uniform(self, hidden_size)

    @property
    def mode(self) -> str:
        """ "rnn", "lstm" or "gru" (the cell's name)."""
        return self.cell.name

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for key, default in [("num_layers", 1), ("bias", True), ("batch_first", False)]:
            if getattr(self, key) != default:
                s += f", {key}={getattr(self, key)}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    def __prepare_scriptable__(self):
        """torch.jit.script calls this first: refuse, pointing to torch.compile/torch.export."""
        raise TorchScriptError(self, "torch.jit.script")

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        return [[getattr(self, n) for n in names if hasattr(self, n)] for names in self._names]

    def flatten_parameters(self) -> None:
        """No-op, for code written against torch.nn (there is no cuDNN weight buffer)."""

    def _weights(self, index: int) -> tuple:
        w_ih, w_hh, b_ih, b_hh = self._names[index]
        if not self.bias:
            return getattr(self, w_ih), getattr(self, w_hh), None, None
        return getattr(self, w_ih), getattr(self, w_hh), getattr(self, b_ih), getattr(self, b_hh)

    # ---- input checks -------------------------------------------------------------------

    def _check_input(self, x) -> Tensor:
        return check_sequence(self, x)

    def _check_state(self, s, name: str, B: int, batched: bool, ref: Tensor) -> Tensor:
        want = (self.num_layers * self.num_directions, B, self.hidden_size)
        if not batched:
            want = (want[0], want[2])
        if not isinstance(s, Tensor):
            raise ArgumentTypeError(
                f"{name} must be a Tensor of shape {want}, got {describe_state(s)}"
            )
        if tuple(s.shape) != want:
            raise ShapeError(f"{name} must have shape {want}, got {tuple(s.shape)}")
        if s.dtype != ref.dtype or s.device != ref.device:
            raise ArgumentTypeError(
                f"{name} must be {ref.dtype} on {ref.device} like the input, "
                f"got {s.dtype} on {s.device}"
            )
        return s if batched else s.unsqueeze(1)

    def _initial_state(self, hx, x: Tensor, batched: bool) -> list[Tensor]:
        """[h0] or [h0, c0], each (L*D, B, H) and contiguous."""
        B = x.shape[1]
        n = self.cell.states
        if hx is None:
            z = x.new_zeros(self.num_layers * self.num_directions, B, self.hidden_size)
            return [z] * n
        if n == 2:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ArgumentTypeError(
                    f"hx for {self.cell.torch_name} must be a tuple (h_0, c_0), "
                    f"got {describe_state(hx)}"
                )
            names = ("h_0", "c_0")
        else:
            hx, names = (hx,), ("hx",)
        return [
            self._check_state(s, m, B, batched, x).contiguous()
            for s, m in zip(hx, names, strict=True)
        ]

    # ---- forward ------------------------------------------------------------------------

    def forward(self, input, hx=None, lengths=None, *, impl: str | None = None):
        """Run the layer over a sequence.

        input: (T, B, I), (B, T, I) with batch_first, (T, I) unbatched, or a PackedSequence
            (eager only: under torch.compile a graph break, under torch.export an error).
        hx: h_0 (L*D, B, H), or (h_0, c_0) for LSTM, (L*D, H) each unbatched; zeros when None.
        lengths: valid steps of each sequence, a 1-D integer tensor of B values in [1, T],
            any order. Padded steps change no state and output zeros; h_n is taken at each
            sequence's own last step; the reverse direction starts at each true end.
        impl: overrides the constructor's choice for this call ("bptt" or "loop").
        Returns (output, h_n), or (output, (h_n, c_n)) for LSTM: output (T, B, D*H) ((B, T, D*H)
        with batch_first, (T, D*H) unbatched, or packed like the input), the last layer's h_t
        of each direction side by side; h_n, c_n (L*D, B, H), row k*D + d for layer k and
        direction d (0 forward, 1 reverse).
        """
        impl = self.impl if impl is None else check_impl(impl)
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError("pass lengths= or a PackedSequence, not both")
            if torch.compiler.is_exporting():  # packing is data-dependent
                raise NotImplementedError(
                    "torch.export cannot trace a PackedSequence input: export the layer "
                    "called with the padded tensor and lengths= instead"
                )
            pack = input
            input, lengths = pad_packed_sequence(input, batch_first=self.batch_first)
        x = self._check_input(input)
        batched = x.dim() == 3
        if not batched:
            if lengths is not None:
                raise ValueError("lengths= needs a batched (3-D) input")
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        x = x.contiguous()  # (T, B, I)
        state = self._initial_state(hx, x, batched)
        if impl == "bptt" and torch.compiler.is_compiling():  # torch.compile, torch.export
            if lengths is not None:  # values are data: the operators check them
                lengths = check_lengths(lengths, *x.shape[:2], values=False)
            out, state = self._stack(x, state, self._op_direction(lengths))
        else:
            out, state = self._eager(x, state, lengths, impl)

        if not batched:
            out, state = out.squeeze(1), [s.squeeze(1) for s in state]
        elif self.batch_first:
            out = out.transpose(0, 1)
        if packed:
            out = _repack(out, pack, lengths, self.batch_first)
        return out, self._state_out(state)

    def _state_out(self, state: list[Tensor]):
        """h_n, or (h_n, c_n) for a cell with two states, as torch.nn returns them."""
        return tuple(state) if self.cell.states == 2 else state[0]

    def _stack(self, x: Tensor, state: list[Tensor], direction):
        """Layers x directions; `direction(x, states, weights, reverse)` owns the time loop."""
        finals = [[] for _ in state]
        D = self.num_directions
        for k in range(self.num_layers):
            outs = []
            for d in range(D):
                idx = k * D + d
                out, last = direction(x, [s[idx] for s in state], self._weights(idx), d == 1)
                outs.append(out)
                for f, s in zip(finals, last, strict=True):
                    f.append(s)
            x = outs[0] if D == 1 else torch.cat(outs, 2)
            if self.dropout and self.training and k < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, True)
        return x, [torch.stack(f) for f in finals]

    def _eager(self, x: Tensor, state: list[Tensor], lengths, impl: str):
        """The eager path: the rows sorted by length once for all layers (lengths.Batch), each
        (layer, direction) a kernel's autograd Function (impl="bptt") or the reference loop."""
        batch = Batch(check_lengths(lengths, *x.shape[:2]) if lengths is not None else None, x)
        x = batch.zero_padding(x)  # padding may hold anything, even NaN: it must not reach dW
        if impl == "loop":
            return self._stack(x, state, self._loop_direction(batch))
        x, state = batch.sort(x), [batch.sort(s, dim=1) for s in state]
        out, state = self._stack(x, state, self._bptt_direction(batch))
        return batch.unsort(out), [batch.unsort(s, dim=1) for s in state]

    def _op_direction(self, lengths: Tensor | None):
        """Each (layer, direction) as the cell's operator (bptt/ops.py), in the caller's row
        order: the path under torch.compile and torch.export, with no data-dependent Python."""
        op, nonlinearity = self.cell.op, getattr(self, "nonlinearity", None)
        return lambda x, state, w, reverse: op(x, state, w, lengths, reverse, nonlinearity)

    def _bptt_direction(self, batch: "Batch"):
        kernel, nonlinearity = self.cell.kernel, getattr(self, "nonlinearity", None)

        def run(x, state, w, reverse):  # x (T, B, I) -> out (T, B, H), [h_n] or [h_n, c_n]
            if reverse:
                x = batch.reverse(x)
            out, last = kernel(x, state, w, batch.batch_sizes, nonlinearity)
            return (batch.reverse(out) if reverse else out), last

        return run

    def _loop_direction(self, batch: "Batch"):
        step = self._step_fn()
        mask = batch.mask()  # (T, B, 1) bool or None

        def run(x, state, w, reverse):
            outs = [None] * x.shape[0]
            times = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
            for t in times:
                new = step(x[t], state, w)
                if mask is not None:  # padded steps keep the state and output zeros
                    new = [torch.where(mask[t], n, s) for n, s in zip(new, state, strict=True)]
                    outs[t] = torch.where(mask[t], new[0], 0.0)
                else:
                    outs[t] = new[0]
                state = new
            return torch.stack(outs), state

        return run

    def _step_fn(self, fast: bool = False):
        """One step on a state list: [h] -> [h'] or [h, c] -> [h', c'] (functional.py; with
        `fast`, the LSTM's no-grad CPU steps run in one C++ call, bptt.lstm_step)."""
        step = self.cell.fast_step if fast else self.cell.step
        nonlinearity = getattr(self, "nonlinearity", None)
        return lambda x, s, w: step(x, s, w, nonlinearity)

    # ---- stepping -----------------------------------------------------------------------

    def step(self, input: Tensor, hx=None):
        """Advance one time step with a carried state (generation, streaming).

        input: (B, I); hx: as for forward (None for zeros). Returns (output (B, H), hx').
        Unidirectional layers only: a reverse direction needs the whole sequence.
        """
        if self.bidirectional:
            raise ValueError("step() needs a unidirectional layer (bidirectional=False)")
        x = self._check_input(input)
        if x.dim() != 2:
            raise ValueError(
                f"step() takes one step of shape (B, {self.input_size}), got {tuple(x.shape)}"
            )
        state = self._initial_state(hx, x.unsqueeze(0), True)
        step, new = self._step_fn(fast=True), [[] for _ in state]
        for k in range(self.num_layers):
            if k and self.dropout and self.training:
                x = nn.functional.dropout(x, self.dropout, True)
            layer_state = step(x, [s[k] for s in state], self._weights(k))
            for n, s in zip(new, layer_state, strict=True):
                n.append(s)
            x = layer_state[0]
        state = [torch.stack(n) for n in new]
        return x, self._state_out(state)


def _repack(out: Tensor, pack: PackedSequence, lengths: Tensor, batch_first: bool):
    """The padded output back in the input PackedSequence's layout and order."""
    if pack.sorted_indices is not None:
        out = out.index_select(0 if batch_first else 1, pack.sorted_indices.to(out.device))
        lengths = lengths[pack.sorted_indices.cpu()]
    data = pack_padded_sequence(out, lengths, batch_first=batch_first).data
    return PackedSequence(data, pack.batch_sizes, pack.sorted_indices, pack.unsorted_indices)


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
        impl: str = "bptt",
        proj_size=None,  # refused as torch.nn.RNN refuses it (reject_proj_size)
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
        )


class LSTM(RNNBase):
    """LSTM layer (gates i, f, g, o; state (h, c)), a drop-in for torch.nn.LSTM.

    c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t); see `functional.lstm_step`.
    State (h, c), each (L*D, B, H); shapes: see `RNNBase.forward`.
    """

    cell = CELLS["lstm"]


class GRU(RNNBase):
    """GRU layer in torch.nn's convention (r, z, n), a drop-in for torch.nn.GRU.

    h_t = (1 - z) * n + z * h_{t-1}; see `functional.gru_step`. Shapes: see `RNNBase.forward`.
    """

    cell = CELLS["gru"]

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
        impl: str = "bptt",
        proj_size=None,  # refused as torch.nn.GRU refuses it (reject_proj_size)
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
        )


# the task models' `cell` option -> layer class
LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN, "mingru": MinGRU, "minlstm": MinLSTM}
