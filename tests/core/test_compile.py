"""rnnkit's layers under torch.compile(fullgraph=True): no graph breaks, eager's outputs and
gradients, dynamic batch and time; the operator path (what compiling runs) against the eager
path in float64; step() and PackedSequence under the compiler."""

import functools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.testing import assert_close

import rnnkit

I, H = 3, 4
# Most models compile with aot_eager: Dynamo, AOTAutograd and the operators' fakes and
# autograd formulas, without Inductor's code generation (seconds per graph on two cores);
# test_inductor_* runs the default backend on one model.
BACKEND = "aot_eager"
TOL = {"atol": 1e-5, "rtol": 1e-4}  # float32, across two paths that sum in other orders

# id -> (layer class, constructor kwargs, with lengths, with hx)
CONFIGS = {
    "lstm-2layer-bidir-batch_first-lengths-hx": (rnnkit.LSTM, {"num_layers": 2}, True, True),
    "gru-2layer-bidir-batch_first-lengths-hx": (rnnkit.GRU, {"num_layers": 2}, True, True),
    "rnn_relu-2layer-bidir-batch_first-lengths-hx": (
        rnnkit.RNN,
        {"num_layers": 2, "nonlinearity": "relu"},
        True,
        True,
    ),
    "lstm-1layer": (rnnkit.LSTM, {"bidirectional": False, "batch_first": False}, False, False),
    "gru-1layer-bidir-lengths": (rnnkit.GRU, {"batch_first": False}, True, False),
    "rnn_tanh-2layer-hx": (rnnkit.RNN, {"num_layers": 2, "bidirectional": False}, False, True),
}


class Tagger(nn.Module):
    """A layer and a linear head over its outputs: what a task model shows the compiler."""

    def __init__(self, cls, **kw):
        super().__init__()
        kw = {"bidirectional": True, "batch_first": True, **kw}
        self.rnn = cls(I, H, **kw)
        self.head = nn.Linear(self.rnn.num_directions * H, 2)

    def forward(self, x, lengths=None, hx=None):
        out, last = self.rnn(x, hx, lengths=lengths)
        h_n = last[0] if isinstance(last, tuple) else last
        return self.head(out), h_n


def batch(model, T, B, with_lengths, with_hx, seed=0, dtype=torch.float32):
    """(x, lengths, hx) for the model, x a leaf requiring grad; lengths include T and 1."""
    gen = torch.Generator().manual_seed(seed)
    layer = model.rnn
    shape = (B, T, I) if layer.batch_first else (T, B, I)
    x = torch.randn(shape, generator=gen, dtype=dtype).requires_grad_()
    lengths = None
    if with_lengths:
        lengths = torch.randint(1, T + 1, (B,), generator=gen)
        lengths[0], lengths[-1] = 1, T
    hx = None
    if with_hx:
        LD = layer.num_layers * layer.num_directions
        states = [torch.randn(LD, B, H, generator=gen, dtype=dtype) for _ in range(2)]
        hx = tuple(states) if layer.mode == "lstm" else states[0]
    return x, lengths, hx


@pytest.fixture(scope="module", autouse=True)
def _dynamo_cache():
    """Every Tagger shares one forward, compiled once per model and configuration: more
    entries than Dynamo's default limit of 8; cleared afterwards."""
    with torch._dynamo.config.patch(recompile_limit=64, accumulated_recompile_limit=256):
        yield
    torch._dynamo.reset()


def loss_and_grads(fn, model, args):
    """A loss over both outputs, and the gradients of x and of the parameters."""
    x = args[0]
    y, h_n = fn(*args)
    loss = (y * torch.linspace(-1, 1, y.shape[-1])).sum() + h_n.square().sum()
    params = [p for p in model.parameters()]
    grads = torch.autograd.grad(loss, [x, *params])
    return (y, h_n), grads


@functools.cache
def compiled(config):
    """(model, its torch.compile(fullgraph=True, dynamic=True)), made once per module run."""
    cls, kw, _, _ = CONFIGS[config]
    torch.manual_seed(0)
    model = Tagger(cls, **kw)
    return model, torch.compile(model, fullgraph=True, dynamic=True, backend=BACKEND)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_compiled_model_matches_eager_and_trains(config):
    _, _, with_lengths, with_hx = CONFIGS[config]
    model, fast = compiled(config)
    # the first sizes differ from every other size the graph sees (I, H, L*D): Dynamo gives
    # equal sizes one symbol at the first trace (duck shaping), which would tie B to L*D
    for T, B in [(7, 5), (6, 3)]:  # the second: another batch size and length, no recompile
        args = batch(model, T, B, with_lengths, with_hx, seed=T)
        with torch._dynamo.config.patch(error_on_recompile=T == 6):
            got_out, got_grads = loss_and_grads(fast, model, args)
        want_out, want_grads = loss_and_grads(model, model, args)
        assert_close(got_out, want_out, **TOL)
        assert_close(got_grads, want_grads, **TOL)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, *rest = batch(model, 6, 3, with_lengths, with_hx, seed=9)
    losses = []
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(3):  # a few training steps through the compiled graph
            opt.zero_grad()
            y, h_n = fast(x, *rest)
            loss = y.square().mean() + h_n.square().mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("config", list(CONFIGS))
def test_no_graph_breaks(config):
    cls, kw, with_lengths, with_hx = CONFIGS[config]
    model = Tagger(cls, **kw)
    explained = torch._dynamo.explain(model)(*batch(model, 6, 3, with_lengths, with_hx))
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")  # Inductor's own
def test_inductor_lstm_with_lengths_and_dynamic_shapes():
    """The default backend (Inductor) on the 2-layer bidirectional LSTM, batch and time marked
    dynamic: eager's outputs and gradients at two batch sizes and lengths."""
    torch.manual_seed(0)
    model = Tagger(rnnkit.LSTM, num_layers=2)
    fast = torch.compile(model, fullgraph=True)
    for T, B in [(7, 5), (6, 3)]:
        x, lengths, hx = batch(model, T, B, True, True, seed=T)
        torch._dynamo.mark_dynamic(x, 0)
        torch._dynamo.mark_dynamic(x, 1)
        torch._dynamo.mark_dynamic(lengths, 0)
        for s in hx:
            torch._dynamo.mark_dynamic(s, 1)
        got = loss_and_grads(fast, model, (x, lengths, hx))
        want = loss_and_grads(model, model, (x, lengths, hx))
        assert_close(got, want, **TOL)


def test_compiled_lengths_out_of_range_raise_value_error():
    model, fast = compiled("gru-1layer-bidir-lengths")
    x, _, _ = batch(model, 5, 3, False, False)
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 5\]"):
        fast(x, torch.tensor([5, 6, 2]))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_compiled_step_matches_eager(cell):
    layer = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}[cell](I, H, num_layers=2)
    layer.eval()
    x = torch.randn(3, I)
    step = torch.compile(layer.step, fullgraph=True, backend=BACKEND)
    with torch.no_grad():
        got, want = step(x), layer.step(x)
        assert torch._dynamo.explain(layer.step)(x).graph_break_count == 0
    assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_packed_sequence_compiles_with_a_graph_break():
    """PackedSequence input stays eager (packing is data-dependent): torch.compile without
    fullgraph still gives eager's results."""
    layer = rnnkit.GRU(I, H, bidirectional=True)
    x = torch.randn(6, 4, I)
    pack = pack_padded_sequence(x, torch.tensor([6, 2, 3, 4]), enforce_sorted=False)
    out, h_n = torch.compile(layer, backend=BACKEND)(pack)
    want_out, want_h = layer(pack)
    assert_close((out.data, h_n), (want_out.data, want_h), **TOL)


# ---- the operator path in eager mode against the eager path, float64 -----------------------

OP_PATH_CASES = [
    (rnnkit.LSTM, {"num_layers": 2, "bidirectional": True}),
    (rnnkit.GRU, {"num_layers": 2, "bidirectional": True, "batch_first": True}),
    (rnnkit.RNN, {"num_layers": 2, "bidirectional": True, "nonlinearity": "relu"}),
    (rnnkit.RNN, {"bidirectional": True, "bias": False}),
]


@pytest.mark.usefixtures("both_loops")
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("case", range(len(OP_PATH_CASES)))
def test_op_path_matches_eager_path(case, with_lengths, monkeypatch):
    """Forcing the compiled path's branch in eager mode: the operators per (layer, direction)
    give the outputs and gradients of the eager path (sorted once, autograd Functions) at
    1e-10 in float64 (test_ops.py compares the operators with the impl="loop" reference)."""
    cls, kw = OP_PATH_CASES[case]
    torch.manual_seed(case)
    model = Tagger(cls, **{"batch_first": False, **kw}).double()
    args = batch(model, 6, 4, with_lengths, True, seed=case, dtype=torch.float64)
    want = loss_and_grads(model, model, args)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    got = loss_and_grads(model, model, args)
    assert_close(got, want, atol=1e-10, rtol=1e-10)
