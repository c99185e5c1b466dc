"""MinGRU and MinLSTM layers: rnnkit.GRU's interface on recurrences that train in parallel.

The layer owns stacking, directions, dropout between layers, variable lengths and the checks
on user input; the time axis is solved by `scan.log_scan` (impl="scan": all steps at once in
log space) or by `functional.step` looped under autograd (impl="loop": the reference, also the
faster one on this CPU from B * H of about 1000 up, see `choose_impl`).

    L: num_layers, D: directions (1 or 2), T: time, B: batch, I: input size, H: hidden size,
    G: gate blocks (2 for minGRU, 3 for minLSTM)

The gates see only x_t, so one GEMM computes p = W_ih x + b_ih (T, B, G*H) for all steps; the
recurrence left is h_t = (1 - w_t) * h_{t-1} + w_t * h~_t (`functional.py`). A float16 or
bfloat16 layer, and any layer under torch.autocast, computes in float32 (`rnnkit.precision`):
the log-space scan in bfloat16 drifts by 0.2 in 100 steps. Under autocast it returns the
autocast dtype, as torch.nn.RNN and LSTM do.
"""

import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnkit import precision
from rnnkit.bptt import gemm
from rnnkit.cells import (
    check_dropout,
    check_flag,
    check_sequence,
    check_size,
    describe_state,
    init_uniform,
)
from rnnkit.errors import ArgumentTypeError, ShapeError, TorchScriptError
from rnnkit.lengths import check_lengths
from rnnkit.minrnn import functional as MF
from rnnkit.minrnn.scan import check_chunk_size, log_scan
from rnnkit.regularisers import dropout

IMPLS = ("auto", "scan", "loop")

# impl="auto": the scan where it measured faster than the loop (docs/minrnn.md, "Scan or
# loop": one layer, I = H, 1 thread, each case in a fresh process, minGRU and minLSTM alike).
# The loop costs one lerp per step plus a few us of dispatch; the scan's chunks cost a few
# GEMMs and exps per element, so the scan wins where B * H is small and T long enough:
# training, B8 H64 T4096 1.24x (minLSTM 1.20x), B1 H64 T4096 3.75x, but B8 H256 T4096 0.69x;
# inference, B1 H64 T4096 2.62x, B8 H64 T4096 0.63x.
AUTO_SCAN_TRAIN = ((64, 128), (256, 512))  # (T at least, B * H at most): scan if any holds
AUTO_SCAN_INFER = ((64, 64),)  # the same without autograd


def check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


def choose_impl(T: int, B: int, H: int, grad: bool) -> str:
    """impl="auto": "scan" or "loop" from the shape and whether autograd records the call."""
    rules = AUTO_SCAN_TRAIN if grad else AUTO_SCAN_INFER
    return "scan" if any(T >= t and B * H <= bh for t, bh in rules) else "loop"


class MinRNNBase(nn.Module):
    """Shared by MinGRU and MinLSTM; `mode` picks the gates ("mingru" or "minlstm")."""

    mode = "mingru"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        impl: str = "auto",  # "scan": log-space parallel scan; "loop": step by step; "auto"
        chunk_size: int | None = None,  # scan chunk length; None: scan.default_chunk_size
        device=None,
        dtype=None,
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
        self.bidirectional = check_flag("bidirectional", bidirectional)
        self.impl = check_impl(impl)
        self.chunk_size = check_chunk_size(chunk_size)
        D, H, gh = self.num_directions, hidden_size, MF.GATES[self.mode] * hidden_size
        kw = {"device": device, "dtype": dtype}
        self._names = []  # per (layer, direction): names of W_ih, b_ih
        for k in range(num_layers):
            for d in range(D):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                names = [f"weight_ih{sfx}", f"bias_ih{sfx}"]
                shapes = [(gh, input_size if k == 0 else D * H), (gh,)]
                for name, shape in zip(names if bias else names[:1], shapes):
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **kw)))
                self._names.append(names)
        init_uniform(self, hidden_size)

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
        s += f", impl={self.impl!r}"
        return s + (f", chunk_size={self.chunk_size}" if self.chunk_size else "")

    def __prepare_scriptable__(self):
        """torch.jit.script calls this first: refuse, pointing to torch.compile/torch.export."""
        raise TorchScriptError(self, "torch.jit.script")

    def _weights(self, index: int, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        """(W_ih, b_ih or None) of layer and direction `index` in `dtype` (differentiably)."""
        w, b = self._names[index]
        bias = precision.cast(getattr(self, b), dtype) if self.bias else None
        return precision.cast(getattr(self, w), dtype), bias

    # ---- input checks -------------------------------------------------------------------

    def _check_input(self, x) -> Tensor:
        if isinstance(x, PackedSequence):
            raise TypeError(
                f"{type(self).__name__} takes a padded tensor and lengths=, not a PackedSequence"
            )
        return check_sequence(self, x)

    def _initial_state(self, hx, x: Tensor, batched: bool) -> Tensor | None:
        """h_0 as (L*D, B, H), or None for zeros. Any real values: the scan takes h_0 linearly."""
        if hx is None:
            return None
        want = (self.num_layers * self.num_directions, x.shape[1], self.hidden_size)
        if not batched:
            want = (want[0], want[2])
        if not isinstance(hx, Tensor):
            raise ArgumentTypeError(
                f"hx must be a Tensor of shape {want} (a minRNN state is h alone, no c), "
                f"got {describe_state(hx)}"
            )
        if tuple(hx.shape) != want:
            raise ShapeError(f"hx must have shape {want}, got {tuple(hx.shape)}")
        autocast = hx.is_floating_point() and precision.autocasting(x.device.type, x.dtype)
        if (hx.dtype != x.dtype and not autocast) or hx.device != x.device:
            raise ArgumentTypeError(
                f"hx must be {x.dtype} on {x.device} like the input, got {hx.dtype} on {hx.device}"
            )
        return hx if batched else hx.unsqueeze(1)

    # ---- forward ------------------------------------------------------------------------

    def forward(self, input: Tensor, hx: Tensor | None = None, lengths=None, *, impl=None):
        """Run the layer over a sequence.

        input: (T, B, I), (B, T, I) with batch_first, or (T, I) unbatched.
        hx: h_0 (L*D, B, H) (or (L*D, H) unbatched), any real values; zeros when None.
        lengths: valid steps of each sequence, a 1-D integer tensor of B values in [1, T],
            any order. Padded steps change no state and output zeros; h_n is taken at each
            sequence's own last step; the reverse direction starts at each true end.
        impl: overrides the constructor's choice for this call ("auto", "scan" or "loop").
        Returns (output (T, B, D*H) or (B, T, D*H), h_n (L*D, B, H)), in the parameters'
        dtype (under torch.autocast, the autocast dtype).
        """
        impl = self.impl if impl is None else check_impl(impl)
        x = self._check_input(input)
        batched = x.dim() == 3
        if not batched:
            if lengths is not None:
                raise ValueError("lengths= needs a batched (3-D) input")
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        x = x.contiguous()  # (T, B, I)
        T, B = x.shape[:2]
        h0 = self._initial_state(hx, x, batched)
        prec = precision.plan(self.weight_ih_l0.dtype, [x] if h0 is None else [x, h0])
        x, h0 = prec.up(x), None if h0 is None else prec.up(h0)
        if lengths is not None:
            lengths = check_lengths(lengths, T, B).to(x.device)
            if bool((lengths == T).all()):
                lengths = None
        if impl == "auto":
            grad = torch.is_grad_enabled() and (
                x.requires_grad
                or (h0 is not None and h0.requires_grad)
                or any(p.requires_grad for p in self.parameters())
            )
            impl = choose_impl(T, B, self.hidden_size, grad)
        with prec.kernels():
            x, h_n = self._stack(x, h0, impl, lengths)
        x, h_n = prec.down(x), prec.down(h_n)
        if not batched:
            return x.squeeze(1), h_n.squeeze(1)
        return (x.transpose(0, 1) if self.batch_first else x), h_n

    def _stack(self, x: Tensor, h0: Tensor | None, impl: str, lengths: Tensor | None):
        """Layers x directions: (out (T, B, D*H), h_n (L*D, B, H)) of x (T, B, I)."""
        mask = None
        if lengths is not None:
            mask = (torch.arange(x.shape[0], device=x.device).unsqueeze(1) < lengths).unsqueeze(2)
            x = x.masked_fill(~mask, 0)  # (T, B, I); padding may hold anything, even NaN
        finals, D = [], self.num_directions
        for k in range(self.num_layers):
            outs = []
            for d in range(D):
                idx = k * D + d
                h_init = None if h0 is None else h0[idx]
                weights = self._weights(idx, x.dtype)
                out, h_n = self._direction(x, h_init, weights, impl, lengths, d == 1)
                outs.append(out)
                finals.append(h_n)
            x = outs[0] if D == 1 else torch.cat(outs, 2)  # (T, B, D*H)
            if mask is not None:
                x = x.masked_fill(~mask, 0)
            if self.dropout and self.training and k < self.num_layers - 1:
                x = dropout(x, self.dropout)
        return x, torch.stack(finals)

    def _direction(self, x, h0, weights, impl: str, lengths, reverse: bool):
        """(h (T, B, H), h_n (B, H)) of one layer and direction; x (T, B, I) zero-padded.

        Padding needs no masking inside the time loop: sequences are padded at the end and
        the recurrence is causal, so padded steps reach only padded outputs (zeroed by the
        caller) and h_n is read at each sequence's last valid step.
        """
        if reverse:
            x = _reverse(x, lengths)
        p = _project(x, *weights)  # (T, B, G*H)
        if impl == "scan":
            log_a, log_b = MF.log_coefficients(p, self.mode)  # (T, B, H) each
            h = log_scan(log_a, log_b, h0, self.chunk_size)
        else:
            w, h_tilde = MF.gates(p, self.mode)  # (T, B, H) each
            h = _loop(w, h_tilde, h0)
        if lengths is None:
            h_n = h[-1]
        else:
            index = (lengths - 1).view(1, -1, 1).expand(1, -1, h.shape[2])
            h_n = h.gather(0, index).squeeze(0)
        return (_reverse(h, lengths) if reverse else h), h_n

    # ---- stepping -----------------------------------------------------------------------

    def step(self, input: Tensor, hx: Tensor | None = None):
        """Advance one time step with a carried state (generation, streaming).

        input: (B, I); hx: h (L, B, H), None for zeros. Returns (output (B, H), hx' (L, B, H)).
        Unidirectional layers only: a reverse direction needs the whole sequence.
        """
        if self.bidirectional:
            raise ValueError("step() needs a unidirectional layer (bidirectional=False)")
        x = self._check_input(input)
        if x.dim() != 2:
            raise ValueError(
                f"step() takes one step of shape (B, {self.input_size}), got {tuple(x.shape)}"
            )
        h0 = self._initial_state(hx, x.unsqueeze(0), True)
        prec = precision.plan(self.weight_ih_l0.dtype, [x] if h0 is None else [x, h0])
        x, h0, new = prec.up(x), None if h0 is None else prec.up(h0), []
        with prec.kernels():
            for k in range(self.num_layers):
                if k and self.dropout and self.training:
                    x = dropout(x, self.dropout)
                p = _project(x, *self._weights(k, x.dtype))  # (B, G*H)
                w, h_tilde = MF.gates(p, self.mode)  # (B, H) each
                h = torch.zeros_like(h_tilde) if h0 is None else h0[k]
                x = MF.step(h, w, h_tilde)  # (B, H)
                new.append(x)
        return prec.down(x), prec.down(torch.stack(new))


def _project(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """p = W_ih x + b_ih over every leading dim; without autograd on bptt/gemm.py's faster GEMM."""
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return nn.functional.linear(x, w, b)
    return gemm.linear(x.reshape(-1, x.shape[-1]), w, b).view(*x.shape[:-1], w.shape[0])


def _loop(w: Tensor, h_tilde: Tensor, h0: Tensor | None) -> Tensor:
    """h (T, B, H): h_t = (1 - w_t) * h_{t-1} + w_t * h~_t, one step at a time."""
    h = torch.zeros_like(h_tilde[0]) if h0 is None else h0
    out = []
    for w_t, h_tilde_t in zip(w.unbind(0), h_tilde.unbind(0)):
        h = MF.step(h, w_t, h_tilde_t)
        out.append(h)
    return torch.stack(out)


def _reverse(x: Tensor, lengths: Tensor | None) -> Tensor:
    """x (T, B, F) with each sequence reversed within its own length; padding stays in place."""
    if lengths is None:
        return x.flip(0)
    t = torch.arange(x.shape[0], device=x.device).unsqueeze(1)  # (T, 1)
    src = torch.where(t < lengths, lengths - 1 - t, t)  # (T, B), an involution
    return x.gather(0, src.unsqueeze(2).expand_as(x))


class MinGRU(MinRNNBase):
    """minGRU layer (Feng et al. 2024): z and h~ from x_t alone, so it trains as a scan.

    [k | v] = W_ih x_t + b_ih    (weight_ih_l0: (2H, I), blocks z then h~)
    z_t = sigmoid(k),   h~_t = g(v),   h_t = (1 - z_t) * h_{t-1} + z_t * h~_t
    with g(v) = v + 1/2 (v >= 0), sigmoid(v) (v < 0); see `minrnn.functional`.

    The state is one tensor h (L*D, B, H); the call, `lengths=` and `step` are rnnkit.GRU's.
    """

    mode = "mingru"


class MinLSTM(MinRNNBase):
    """minLSTM layer (Feng et al. 2024): normalised input and forget gates, no output gate.

    [k_f | k_i | v] = W_ih x_t + b_ih    (weight_ih_l0: (3H, I), blocks f, i, h~)
    f = sigmoid(k_f), i = sigmoid(k_i), f' = f / (f + i), i' = i / (f + i), h~ = g(v)
    h_t = f'_t * h_{t-1} + i'_t * h~_t

    The state is one tensor h (L*D, B, H) (no cell state c); otherwise as MinGRU.
    """

    mode = "minlstm"
