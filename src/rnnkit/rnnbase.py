"""RNNBase: what torch.nn's RNN, LSTM and GRU share, for rnnkit's three layers (layers.py).

The layer owns stacking, directions, dropout between layers, variable lengths and the checks
on user input (`layer_checks.py`); what differs between the three is their `cells.Cell`: the
gate count, the state arity, the step and the kernel. See layers.py for the paths a call takes
and the shape legend.
"""

import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnkit import fast_step, fused, precision
from rnnkit import layer_norm as ln
from rnnkit.cells import (
    CELLS,
    Cell,
    add_parameters,
    check_dropout,
    check_flag,
    check_sequence,
    check_size,
    init_uniform,
)
from rnnkit.directions import bptt_direction, loop_direction, op_direction, step_fn
from rnnkit.errors import TorchScriptError
from rnnkit.layer_checks import (
    check_impl,
    check_layer_norm,
    check_proj_size,
    initial_state,
)
from rnnkit.lengths import Batch, check_lengths, repack, unpack
from rnnkit.regularisers import Regularisers, draw, dropout


class RNNBase(nn.Module):
    """Shared by RNN, LSTM and GRU; the class's `cell` (a `cells.Cell`) is what differs.

    Parameters per layer k and direction (suffix "_l{k}", then "_l{k}_reverse"), as
    torch.nn's: weight_ih (G*H, I) for k = 0, (G*H, D*P) above; weight_hh (G*H, P);
    bias_ih, bias_hh (G*H) unless bias=False; weight_hr (P, H) with proj_size = P > 0 (LSTM);
    with layer_norm=True, ln_ih_weight, ln_hh_weight (G*H) and the LSTM's ln_c_weight,
    ln_c_bias (H) (layer_norm.py).
    """

    cell: Cell = CELLS["rnn"]
    # device types where torch.nn's class under autocast returns the promotion of the autocast
    # dtype with the input's and states' rather than the autocast dtype (precision.plan)
    autocast_promotes_on: tuple[str, ...] = ()

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
        proj_size: int = 0,  # LSTM only: h_t = W_hr (o * tanh(c_t)), P wide (check_proj_size)
        device=None,
        dtype=None,
        *,
        impl: str = "auto",  # layer_checks.IMPLS: "auto", "bptt", "fused" or "loop"
        weight_drop: float = 0.0,  # the regularisers (regularisers.py), each a p in [0, 1)
        dropout_input: float = 0.0,
        dropout_output: float = 0.0,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,  # (p_h, p_c) for the LSTM
        layer_norm: bool = False,  # LayerNorm in the cells (layer_norm.py), a bool
    ):
        super().__init__()
        self.regularisers = Regularisers.of(
            self.cell,
            weight_drop=weight_drop,
            dropout_input=dropout_input,
            dropout_output=dropout_output,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
        )
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
        self.layer_norm = check_layer_norm(layer_norm)
        # the cell the time loops run: its layer-normalised twin with layer_norm
        self._kernels = ln.LN_CELLS[self.cell.name] if layer_norm else self.cell
        self.proj_size = check_proj_size(proj_size, hidden_size)  # torch.nn's attribute
        self._add_parameters(device, dtype)

    def _add_parameters(self, device, dtype) -> None:
        """torch.nn's parameters per layer and direction (the class docstring), then with
        layer_norm the LayerNorm's (layer_norm.py); torch.nn's initialisation, gains 1."""
        D, P, H = self.num_directions, self.proj_size, self.hidden_size
        self._names = []  # per (layer, direction): names of W_ih, W_hh, b_ih, b_hh (, W_hr)
        self._ln_names = []  # ... and of the LayerNorm parameters with layer_norm, else []
        for k in range(self.num_layers):
            for d in range(D):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                layer_input = self.input_size if k == 0 else D * (P or H)
                shapes = self.cell.parameter_shapes(layer_input, H, True, sfx, P)
                self._names.append(list(shapes))
                if not self.bias:
                    shapes = {n: s for n, s in shapes.items() if not n.startswith("bias")}
                add_parameters(self, shapes, device, dtype)
                if self.layer_norm:
                    shapes = ln.parameter_shapes(self.cell, H, sfx)
                    self._ln_names.append(list(shapes))
                    add_parameters(self, shapes, device, dtype)
        init_uniform(self, H)
        ln.reset(self, self._ln_names)

    @property
    def mode(self) -> str:
        """ "rnn", "lstm" or "gru" (the cell's name)."""
        return self.cell.name

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _nonlinearity(self) -> str | None:
        """RNN's "tanh" or "relu"; None for LSTM and GRU, which have no choice."""
        return getattr(self, "nonlinearity", None)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        for key, default in [("num_layers", 1), ("bias", True), ("batch_first", False)]:
            if getattr(self, key) != default:
                s += f", {key}={getattr(self, key)}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.regularisers.any():
            s += ", " + self.regularisers.describe()
        if self.layer_norm:
            s += ", layer_norm=True"
        return s

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """torch's, after a clear ValueError for a state dict without the LayerNorm parameters
        a layer_norm=True layer needs, or with those of one (strict loading; a model holding
        the layer gets torch's RuntimeError, which lists the keys): layer_norm.check_state_dict."""
        if strict:
            ln.check_state_dict(self, state_dict)
        return super().load_state_dict(state_dict, strict, assign)

    def __prepare_scriptable__(self):
        """torch.jit.script calls this first: refuse, pointing to torch.compile/torch.export."""
        raise TorchScriptError(self, "torch.jit.script")

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        return [[getattr(self, n) for n in names if hasattr(self, n)] for names in self._names]

    def flatten_parameters(self) -> None:
        """On CUDA with cuDNN, the parameters become views of one buffer in cuDNN's layout, as
        torch.nn's do; elsewhere nothing (fused.flatten)."""
        fused.flatten(self)

    def _apply(self, fn, recurse=True):
        """.to() / .cuda() / .half(), then flatten_parameters, as torch.nn's layers do."""
        result = super()._apply(fn, recurse)
        self.flatten_parameters()
        return result

    def fusable(self) -> bool:
        """Whether torch's fused operator computes this layer (fused.py): the plain cells,
        without rnnkit's regularisers (regularisers.py) and layer_norm."""
        return not (self.regularisers.any() or self.layer_norm)

    def _weights(self, index: int, dtype: torch.dtype, drop: Tensor | None = None) -> tuple:
        """(W_ih, W_hh, b_ih, b_hh), and W_hr with proj_size > 0, of layer and direction
        `index` in `dtype` (differentiably; no copy when they have it); the biases None with
        bias=False (`cells.Weights`); W_hh * drop with weight_drop's mask `drop`."""
        w_ih, w_hh, b_ih, b_hh, *w_hr = self._names[index]
        w = [precision.cast(getattr(self, n), dtype) for n in (w_ih, w_hh, *w_hr)]
        if drop is not None:  # DropConnect: a new contiguous W_hh, autograd through the mask
            w[1] = w[1] * drop
        b = [precision.cast(getattr(self, n), dtype) for n in (b_ih, b_hh)] if self.bias else []
        if self.layer_norm:  # then W_hr or None, and the gains and biases (functional_ln.py)
            norms = [precision.cast(getattr(self, n), dtype) for n in self._ln_names[index]]
            return (*w[:2], *(b or (None, None)), (w[2:] or [None])[0], *norms)
        return (*w[:2], *(b or (None, None)), *w[2:])

    # ---- input checks -------------------------------------------------------------------

    def _check_input(self, x) -> Tensor:
        return check_sequence(self, x)

    # ---- forward ------------------------------------------------------------------------

    def forward(self, input, hx=None, lengths=None, *, impl: str | None = None):
        """Run the layer over a sequence.

        input: (T, B, I), (B, T, I) with batch_first, (T, I) unbatched, or a PackedSequence
            (eager only: under torch.compile a graph break, under torch.export an error).
        hx: h_0 (L*D, B, P), or (h_0, c_0) for LSTM, c_0 (L*D, B, H); unbatched without the
            B axis; zeros when None.
        lengths: valid steps of each sequence, a 1-D integer tensor of B values in [1, T],
            any order. Padded steps change no state and output zeros; h_n is taken at each
            sequence's own last step; the reverse direction starts at each true end.
        impl: overrides the constructor's choice for this call (layer_checks.IMPLS).
        Returns (output, h_n), or (output, (h_n, c_n)) for LSTM: output (T, B, D*P) ((B, T, D*P)
        with batch_first, (T, D*P) unbatched, or packed like the input), the last layer's h_t
        of each direction side by side; h_n (L*D, B, P), c_n (L*D, B, H), row k*D + d for
        layer k and direction d (0 forward, 1 reverse); in the parameters' dtype, or under
        torch.autocast the dtype torch.nn's layer returns (precision.plan).
        """
        out, state, _ = self._forward(input, hx, lengths, impl, cells=False)
        return out, state

    def _forward(self, input, hx, lengths, impl, cells: bool):
        """forward's work: (output, h_n or (h_n, c_n), the last layer's c_t or None)."""
        impl = self.impl if impl is None else check_impl(impl)
        pack = input if isinstance(input, PackedSequence) else None
        if pack is not None:
            input, lengths = unpack(pack, lengths, self.batch_first)
        x = self._check_input(input)
        batched = x.dim() == 3
        if not batched:
            if lengths is not None:
                raise ValueError("lengths= needs a batched (3-D) input")
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        x = x.contiguous()  # (T, B, I)
        prec, x, state = self._plan(x, initial_state(self, hx, x, batched))
        with prec.kernels():
            out, state, C = self._run(x, state, lengths, impl, cells)
        seqs = [prec.down(out)] + ([] if C is None else [prec.down(C)])  # output, cells
        state = [prec.down(s) for s in state]
        if not batched:
            seqs, state = [s.squeeze(1) for s in seqs], [s.squeeze(1) for s in state]
        elif self.batch_first:
            seqs = [s.transpose(0, 1) for s in seqs]
        if pack is not None:
            seqs = [repack(s, pack, lengths, self.batch_first) for s in seqs]
        return seqs[0], self._state_out(state), (seqs[1] if cells else None)

    def _plan(self, x: Tensor, state: list[Tensor]):
        """(Precision, x, state): the call's dtypes (precision.py), x and the states cast to its
        compute dtype (float32 for float16/bfloat16 layers and under autocast)."""
        prec = precision.plan(self.weight_ih_l0.dtype, [x, *state], self.autocast_promotes_on)
        return prec, prec.up(x), [prec.up(s) for s in state]

    def _run(self, x: Tensor, state: list[Tensor], lengths, impl: str, cells: bool = False):
        """(out (T, B, D*P), final states (L*D, B, P or H), the last layer's c_t (T, B, D*H)
        with `cells`, else None) of x (T, B, I), all in one dtype; with regularisers, their
        masks drawn once for the call (regularisers.draw)."""
        masks = None
        if self.regularisers.any():
            masks = draw(self, *x.shape[:2], x)
            if masks.input is not None:
                x = x * masks.input  # (T, B, I) * (B, I): one mask for every step
        out, state, C = self._run_stack(x, state, lengths, impl, masks, cells)
        if masks is not None and masks.output is not None:
            out = out * masks.output
        return out, state, C

    def _run_stack(self, x: Tensor, state: list[Tensor], lengths, impl: str, masks, cells):
        if cells and impl == "auto":  # torch's fused operators return no c_t
            impl = "bptt"
        impl = fused.resolve(self, x.device, impl)
        if impl == "fused":
            if cells:
                raise ValueError("forward_with_cells needs impl 'auto', 'bptt' or 'loop'")
            return (*fused.run(self, x, state, lengths), None)
        if impl == "bptt" and torch.compiler.is_compiling():  # torch.compile, torch.export
            if self.layer_norm:
                ln.refuse_traced()
            if masks is not None and any(n is not None and n.any() for n in masks.noise):
                raise NotImplementedError(
                    "recurrent_dropout (in training) and zoneout run in the eager kernels only: "
                    "torch.compile and torch.export trace rnnkit's operators, which have neither"
                )
            if lengths is not None:  # values are data: the operators check them
                lengths = check_lengths(lengths, *x.shape[:2], values=False)
            if cells:
                raise NotImplementedError("forward_with_cells runs eagerly only")
            direction = op_direction(self.cell, self._nonlinearity, lengths)
            return self._stack(x, state, direction, masks)
        return self._eager(x, state, lengths, impl, masks, cells)

    def _state_out(self, state: list[Tensor]):
        """h_n, or (h_n, c_n) for a cell with two states, as torch.nn returns them."""
        return tuple(state) if self.cell.states == 2 else state[0]

    def _stack(self, x: Tensor, state: list[Tensor], direction, masks=None, cells=False):
        """Layers x directions; `direction(x, states, weights, reverse, noise[, cells])` owns
        the time loop; `masks` (regularisers.Masks) or None. (out, finals, the last layer's
        c_t of each direction side by side with `cells`, else None)."""
        finals, C = [[] for _ in state], []
        D = self.num_directions
        for k in range(self.num_layers):
            outs = []
            for d in range(D):
                idx = k * D + d
                drop, noise = (masks.weight[idx], masks.noise[idx]) if masks else (None, None)
                w = self._weights(idx, x.dtype, drop)
                noise = noise if noise is not None and noise.any() else None
                s = [s[idx] for s in state]
                if cells and k == self.num_layers - 1:
                    out, last, c = direction(x, s, w, d == 1, noise, True)
                    C.append(c)
                else:
                    out, last = direction(x, s, w, d == 1, noise)
                outs.append(out)
                for f, s in zip(finals, last, strict=True):
                    f.append(s)
            x = outs[0] if D == 1 else torch.cat(outs, 2)
            if self.dropout and self.training and k < self.num_layers - 1:
                x = dropout(x, self.dropout)
        C = None if not C else C[0] if D == 1 else torch.cat(C, 2)
        return x, [torch.stack(f) for f in finals], C

    def _eager(self, x: Tensor, state: list[Tensor], lengths, impl: str, masks=None, cells=False):
        """The eager path: the rows sorted by length once for all layers (lengths.Batch), each
        (layer, direction) a kernel's autograd Function (impl="bptt") or the reference loop."""
        batch = Batch(check_lengths(lengths, *x.shape[:2]) if lengths is not None else None, x)
        x = batch.zero_padding(x)  # padding may hold anything, even NaN: it must not reach dW
        if impl == "loop":
            direction = loop_direction(self._kernels, self._nonlinearity, batch)
            return self._stack(x, state, direction, masks, cells)
        x, state = batch.sort(x), [batch.sort(s, dim=1) for s in state]
        direction = bptt_direction(self._kernels, self._nonlinearity, batch)
        out, state, C = self._stack(x, state, direction, masks, cells)
        C = None if C is None else batch.unsort(C)
        return batch.unsort(out), [batch.unsort(s, dim=1) for s in state], C

    # ---- stepping -----------------------------------------------------------------------

    def step(self, input: Tensor, hx=None):
        """Advance one time step with a carried state (generation, streaming).

        input: (B, I); hx: as for forward (None for zeros). Returns (output (B, P), hx').
        Unidirectional layers only: a reverse direction needs the whole sequence. Sampling
        from a plain LSTM on the CPU takes fast_step.py's shorter path.
        """
        fast = fast_step.step(self, input, hx)
        if fast is not None:
            return fast
        if self.bidirectional:
            raise ValueError("step() needs a unidirectional layer (bidirectional=False)")
        x = self._check_input(input)
        if x.dim() != 2:
            raise ValueError(
                f"step() takes one step of shape (B, {self.input_size}), got {tuple(x.shape)}"
            )
        prec, x, state = self._plan(x, initial_state(self, hx, x.unsqueeze(0), True))
        # regularisers: masks drawn per call (step() cannot know where a sequence starts)
        masks = draw(self, 1, len(x), x) if self.regularisers.any() else None
        fast = masks is None or not self.regularisers.in_kernel()
        step, new = step_fn(self._kernels, self._nonlinearity, fast=fast), [[] for _ in state]
        if masks is not None and masks.input is not None:
            x = x * masks.input
        with prec.kernels():
            for k in range(self.num_layers):
                if k and self.dropout and self.training:
                    x = dropout(x, self.dropout)
                drop, noise = (masks.weight[k], masks.noise[k]) if masks else (None, None)
                w, s_k = self._weights(k, x.dtype, drop), [s[k] for s in state]
                layer_state = step(x, s_k, w, noise, 0)
                for n, s in zip(new, layer_state, strict=True):
                    n.append(s)
                x = layer_state[0]
        if masks is not None and masks.output is not None:
            x = x * masks.output
        return prec.down(x), self._state_out([prec.down(torch.stack(n)) for n in new])
