"""rnnkit.LSTM with proj_size = P, as torch.nn.LSTM defines it: h_t = W_hr (o * tanh(c_t)),
weight_hr_l{k} (P, H), h (and the output) P wide, c H wide. Against torch.nn.LSTM(proj_size=P)
in float64 on one state dict (both ways), on both time loops (C++ and Python); the kernel and
the operators gradchecked and opchecked; step(), torch.compile, torch.export, float16; bad
values. ONNX refuses it: tests/export/test_onnx.py.

    T: time, B: batch, I: input size, H: hidden size, P: proj_size, L: layers, D: directions
"""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.testing import assert_close

import rnnkit
from rnnkit import functional as F
from rnnkit.bptt import LSTMFunction, gemm, native, ops, ops_backward
from rnnkit.errors import ShapeError

T, B, I, H, P = 5, 3, 4, 6, 2
DT = torch.float64
EXACT = {"atol": 1e-10, "rtol": 1e-10}  # float64, two orders of summation
LENGTHS = torch.tensor([3, 5, 1])  # unsorted, one full row
# id -> constructor kwargs
CONFIGS = {
    "plain": {},
    "2layer-bidir": {"num_layers": 2, "bidirectional": True},
    "batch_first-nobias": {"batch_first": True, "bias": False},
    "3layer-dropout0": {"num_layers": 3, "dropout": 0.0},
}


def twins(**kw):
    """(rnnkit.LSTM, torch.nn.LSTM) in float64 with proj_size = P and torch.nn's weights."""
    theirs = nn.LSTM(I, H, proj_size=P, dtype=DT, **kw)
    ours = rnnkit.LSTM(I, H, proj_size=P, dtype=DT, **kw)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def state_of(layer, batch=(B,), seed=2):
    """A random (h_0 (L*D, B, P), c_0 (L*D, B, H)), leaves requiring grad."""
    gen = torch.Generator().manual_seed(seed)
    LD = layer.num_layers * (2 if layer.bidirectional else 1)
    return tuple(
        torch.randn(LD, *batch, n, generator=gen, dtype=DT).requires_grad_() for n in (P, H)
    )


def run(layer, x, hx=None, packed=None, **kw):
    """[output, h_n, c_n] and the gradients of x, of hx and of every parameter, for one fixed
    random weighting of the three. With `packed` lengths the layer gets x packed, and its
    output is compared padded."""
    inp = x if packed is None else pack_padded_sequence(x, packed, enforce_sorted=False)
    out, (h, c) = layer(inp, hx, **kw)
    if packed is not None:
        out = pad_packed_sequence(out, total_length=x.shape[0])[0]
    flat = [out, h, c]
    gen = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in flat)
    leaves = [x, *(hx or ()), *layer.parameters()]
    return [t.detach() for t in flat], list(torch.autograd.grad(loss, leaves))


def leaf(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=DT).requires_grad_()


# ---- the module: parameters and state dicts ---------------------------------------------------


@pytest.mark.parametrize("config", list(CONFIGS))
def test_state_dict_and_repr_are_torch_nns_both_ways(config):
    theirs = nn.LSTM(I, H, proj_size=P, dtype=DT, **CONFIGS[config])
    ours = rnnkit.LSTM(I, H, proj_size=P, dtype=DT, **CONFIGS[config])
    shapes = {k: v.shape for k, v in theirs.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == shapes
    assert list(ours.state_dict()) == list(shapes)  # torch.nn's order, weight_hr last
    ours.load_state_dict(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    assert repr(ours) == repr(theirs)
    assert ours.proj_size == theirs.proj_size == P
    name = {id(p): n for n, p in ours.named_parameters()}
    assert [[name[id(w)] for w in ws] for ws in ours.all_weights] == theirs._all_weights


# ---- outputs and every gradient against torch.nn, float64 -------------------------------------


@pytest.mark.usefixtures("both_loops")
@pytest.mark.parametrize("impl", ["bptt", "loop"])
@pytest.mark.parametrize("with_hx", [False, True], ids=["zeros", "hx"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_matches_torch_nn(config, with_hx, impl):
    torch.manual_seed(0)
    ours, theirs = twins(**CONFIGS[config])
    shape = (B, T, I) if ours.batch_first else (T, B, I)
    x = leaf(*shape)
    hx = state_of(ours) if with_hx else None
    got, g_got = run(ours, x, hx, impl=impl)
    want, g_want = run(theirs, x, hx)
    assert [t.shape[-1] for t in got] == [ours.num_directions * P, P, H]
    assert_close(got, want, **EXACT)
    assert_close(g_got, g_want, **EXACT)


@pytest.mark.usefixtures("both_loops")
def test_unbatched_matches_torch_nn():
    ours, theirs = twins(num_layers=2, bidirectional=True)
    x, hx = leaf(T, I), tuple(s[:, 0].detach().requires_grad_() for s in state_of(ours))
    got, g_got = run(ours, x, hx)
    want, g_want = run(theirs, x, hx)
    assert_close(got, want, **EXACT)
    assert_close(g_got, g_want, **EXACT)


@pytest.mark.usefixtures("both_loops")
@pytest.mark.parametrize("packed_input", [False, True], ids=["lengths", "packed"])
def test_lengths_match_torch_nn_on_a_packed_sequence(packed_input):
    """rnnkit's lengths= (or a PackedSequence) against torch.nn on the PackedSequence, 2 layers,
    both directions, with hx: padded outputs, h_n and c_n at each row's own end."""
    ours, theirs = twins(num_layers=2, bidirectional=True)
    x, hx = leaf(T, B, I), state_of(ours)
    if packed_input:
        got, g_got = run(ours, x, hx, packed=LENGTHS)
    else:
        got, g_got = run(ours, x, hx, lengths=LENGTHS)
    want, g_want = run(theirs, x, hx, packed=LENGTHS)
    assert_close(got, want, **EXACT)
    assert_close(g_got, g_want, **EXACT)


# ---- the C++ loop against the Python loop -----------------------------------------------------


def _loops_agree(layer, x, lengths, monkeypatch, tol):
    results = []
    for loops in ("native", "python"):
        with monkeypatch.context() as m:
            if loops == "python":
                m.setitem(native._state, "module", None)
            results.append(run(layer, x, None, lengths=lengths))
    (a, ga), (b, gb) = results
    assert_close(a + ga, b + gb, atol=tol, rtol=tol)


needs_native = pytest.mark.skipif(
    native.load() is None, reason="the C++ time loops could not be built here (no compiler?)"
)


@needs_native
def test_native_equals_python_float64_rows_split_across_threads(monkeypatch):
    """B x H above the row grain (16384 / H rows), so the C++ loop splits rows into ranges."""
    torch.manual_seed(3)
    layer = rnnkit.LSTM(8, 512, num_layers=2, bidirectional=True, proj_size=96, dtype=DT)
    x = torch.randn(4, 70, 8, dtype=DT, requires_grad=True)
    _loops_agree(layer, x, torch.randint(1, 5, (70,)), monkeypatch, 1e-12)


@needs_native
@pytest.mark.parametrize("lib", ["onednn", "aten", "mkl_packed"])
def test_native_equals_python_float32_on_each_gemm_library(lib, monkeypatch):
    """As test_native.py's float32 case: every product on one library (40 steps: the step
    weights, W_hr's included, are packed), a ragged batch."""
    if lib == "onednn" and not gemm.ONEDNN:
        pytest.skip("this torch has no oneDNN")
    if lib == "mkl_packed" and gemm._MKL_REORDER is None:
        pytest.skip("this torch has no MKL packed GEMM")
    min_flops = 0 if lib == "onednn" else gemm.NEVER
    monkeypatch.setattr(gemm, "MIN_FLOPS", min_flops)
    monkeypatch.setattr(gemm, "MIN_FLOPS_PACKED", min_flops)
    monkeypatch.setattr(gemm, "MIN_WEIGHT", gemm.NEVER)
    monkeypatch.setattr(gemm, "MKL_PACKED_MIN_ROWS", 1 if lib == "mkl_packed" else gemm.NEVER)
    torch.manual_seed(4)
    layer = rnnkit.LSTM(6, 32, proj_size=12)
    x = torch.randn(40, 5, 6, requires_grad=True)
    _loops_agree(layer, x, torch.tensor([40, 17, 40, 1, 33]), monkeypatch, 1e-5)


# ---- the kernel and the operators: gradcheck, opcheck ----------------------------------------

KB, KI, KH, KP = 3, 2, 4, 3  # the kernel tests' batch, input, hidden and projection sizes


def kernel_inputs(T_, bias=True, seed=0):
    """[x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr] in float64, leaves requiring grad."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        t = (torch.rand(*shape, generator=gen, dtype=DT) * 2 - 1) * scale
        return t.requires_grad_()

    b = [rand(4 * KH, scale=0.5), rand(4 * KH, scale=0.5)] if bias else [None, None]
    x, h0, c0 = rand(T_, KB, KI), rand(KB, KP), rand(KB, KH)
    return [x, h0, c0, rand(4 * KH, KI, scale=0.8), rand(4 * KH, KP, scale=0.8), *b, rand(KP, KH)]


@pytest.mark.usefixtures("both_loops")
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("batch_sizes", [None, (3, 3, 2, 1, 1)], ids=["full", "ragged"])
def test_gradcheck_kernel(batch_sizes, bias):
    args = kernel_inputs(5, bias)
    present = [a for a in args if a is not None]

    def fn(*ts):
        it = iter(ts)
        full = [None if a is None else next(it) for a in args]
        return LSTMFunction.apply(*full[:7], batch_sizes, full[7])

    assert torch.autograd.gradcheck(fn, tuple(present), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_kernel_matches_the_functional_step():
    """The kernel's outputs are the projected step's, looped (T = 1 and 5)."""
    for T_ in (1, 5):
        x, h, c, *w = [a.detach() for a in kernel_inputs(T_, seed=T_)]
        out, h_n, c_n = LSTMFunction.apply(x, h, c, *w[:4], None, w[4])
        outs = []
        for t in range(T_):
            h, c = F.lstm_step(x[t], (h, c), *w)
            outs.append(h)
        assert_close((out, h_n, c_n), (torch.stack(outs), h, c), **EXACT)


OP_LENGTHS = torch.tensor([3, 5, 1])


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_gradcheck_and_opcheck_through_the_op(reverse):
    x, h0, c0, *w = kernel_inputs(5, seed=4)
    torch.library.opcheck(ops.lstm, (x, h0, c0, *w[:4], OP_LENGTHS, reverse, True, w[4]))

    def fn(*a):
        return ops.lstm(*a[:7], OP_LENGTHS, reverse, True, a[7])[:3]

    args = (x, h0, c0, *w)
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("some", [False, True], ids=["all_grads", "some_grads"])
def test_opcheck_backward_op(some):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr = [a.detach() for a in kernel_inputs(5, seed=5)]
    out, h_n, c_n, Z, C = ops.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, OP_LENGTHS, some, True, w_hr)
    gen = torch.Generator().manual_seed(6)
    dout, dh_n, dc_n = (torch.randn(t.shape, generator=gen, dtype=DT) for t in (out, h_n, c_n))
    needs = [i % 2 == 0 for i in range(7)] if some else [True] * 7
    args = (dout, dh_n, dc_n, x, h0, c0, w_ih, w_hh, out, Z, C, OP_LENGTHS, some, needs, w_hr)
    torch.library.opcheck(ops_backward.lstm_backward, args)
    grads = ops_backward.lstm_backward(*args)
    assert [g.numel() > 0 for g in grads] == needs
    assert grads[6].shape == w_hr.shape


def test_opcheck_lstm_cell():
    x, h0, c0, *w = [a.detach() for a in kernel_inputs(1, seed=7)]
    torch.library.opcheck(ops.lstm_cell, (x[0], h0, c0, *w))
    got = ops.lstm_cell(x[0], h0, c0, *w)
    assert_close(got, F.lstm_step(x[0], (h0, c0), *w), **EXACT)
    assert got[0].shape == (KB, KP)


@pytest.mark.usefixtures("both_loops")
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_op_path_matches_eager_path(with_lengths, monkeypatch):
    """The branch torch.compile and torch.export take (one operator per layer and direction),
    forced in eager mode, against the eager path at 1e-10."""
    ours, _ = twins(num_layers=2, bidirectional=True)
    x, hx = leaf(T, B, I), state_of(ours)
    lengths = LENGTHS if with_lengths else None
    want = run(ours, x, hx, lengths=lengths)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    got = run(ours, x, hx, lengths=lengths)
    assert_close(got, want, **EXACT)


# ---- step(), torch.compile, torch.export, float16 ---------------------------------------------


@pytest.mark.usefixtures("both_loops")
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_step_equals_forward(grad):
    """step() one step at a time (no_grad: the C++ lstm_cell and the projection) gives the
    forward's outputs and final states."""
    ours, _ = twins(num_layers=2)
    x = leaf(T, B, I).detach()
    with torch.set_grad_enabled(grad):
        out, (h, c) = ours(x)
        state, outs = None, []
        for t in range(T):
            y, state = ours.step(x[t], state)
            outs.append(y)
    assert_close((torch.stack(outs), *state), (out, h, c), **EXACT)
    assert outs[0].shape == (B, P)


class Tagger(nn.Module):
    """A 2-layer bidirectional batch-first LSTM with projections and a linear head."""

    def __init__(self):
        super().__init__()
        self.rnn = rnnkit.LSTM(I, H, 2, batch_first=True, bidirectional=True, proj_size=P)
        self.head = nn.Linear(2 * P, 3)

    def forward(self, x, lengths=None, hx=None):
        out, (h_n, c_n) = self.rnn(x, hx, lengths=lengths)
        return self.head(out), h_n, c_n


def tagger_batch(T_, B_, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B_, T_, I, generator=gen).requires_grad_()
    lengths = torch.randint(1, T_ + 1, (B_,), generator=gen)
    lengths[0] = T_
    hx = (torch.randn(4, B_, P, generator=gen), torch.randn(4, B_, H, generator=gen))
    return x, lengths, hx


def test_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = Tagger()
    fast = torch.compile(model, fullgraph=True, dynamic=True, backend="aot_eager")
    tol = {"atol": 1e-5, "rtol": 1e-4}
    for T_, B_ in [(7, 5), (6, 3)]:  # the second: no recompile for other sizes
        x, lengths, hx = tagger_batch(T_, B_, seed=T_)
        results = []
        for fn in (fast, model):
            y, h_n, c_n = fn(x, lengths, hx)
            loss = (y * torch.linspace(-1, 1, 3)).sum() + h_n.square().sum() + c_n.sum()
            grads = torch.autograd.grad(loss, [x, *model.parameters()])
            results.append(((y, h_n, c_n), grads))
        assert_close(results[0], results[1], **tol)
    explained = torch._dynamo.explain(model)(*tagger_batch(6, 3, seed=1))
    assert explained.graph_break_count == 0, explained.break_reasons


def test_compiled_step_matches_eager():
    layer = rnnkit.LSTM(I, H, num_layers=2, proj_size=P).eval()
    x = torch.randn(3, I)
    step = torch.compile(layer.step, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        assert_close(step(x), layer.step(x), atol=1e-6, rtol=1e-5)


def test_export_save_load_dynamic_batch_and_time(tmp_path):
    torch.manual_seed(0)
    model = Tagger().eval()
    batch, time = torch.export.Dim("batch", min=1, max=512), torch.export.Dim("time", max=4096)
    x, lengths, _ = tagger_batch(7, 5, seed=0)
    dynamic = {"x": {0: batch, 1: time}, "lengths": {0: batch}}
    with torch.no_grad():
        program = torch.export.export(model, (x.detach(), lengths), dynamic_shapes=dynamic)
    targets = {n.target for n in program.graph.nodes if n.op == "call_function"}
    assert torch.ops.rnnkit.lstm.default in targets
    torch.export.save(program, tmp_path / "lstmp.pt2")
    loaded = torch.export.load(tmp_path / "lstmp.pt2").module()
    for T_, B_ in [(7, 5), (3, 2), (11, 1)]:
        x, lengths, _ = tagger_batch(T_, B_, seed=T_)
        with torch.no_grad():
            assert_close(loaded(x, lengths), model(x, lengths), atol=1e-5, rtol=1e-4)


def test_float16_layer_is_float32_rounded_once():
    """A float16 layer computes in float32 (rnnkit.precision): its outputs and gradients are
    the float32 layer's on the same weights, rounded once (within float16's eps)."""
    torch.manual_seed(0)
    low = rnnkit.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P).half()
    ref = rnnkit.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P)
    ref.load_state_dict(low.state_dict())
    x = torch.randn(T, B, I).half()
    results = []
    for layer, inp in ((low, x), (ref, x.float())):
        inp = inp.clone().requires_grad_()
        out, (h, c) = layer(inp, lengths=LENGTHS)
        gen = torch.Generator().manual_seed(1)
        flat = [out, h, c]
        w = [torch.randint(-4, 5, t.shape, generator=gen) / 4 for t in flat]
        sum((t.float() * wt).sum() for t, wt in zip(flat, w)).backward()
        results.append([*flat, inp.grad, *(p.grad for p in layer.parameters())])
    assert {t.dtype for t in results[0]} == {torch.float16}
    eps = torch.finfo(torch.float16).eps
    for a, b in zip(*results, strict=True):
        assert_close(a.float(), b.float(), atol=eps, rtol=eps)


# ---- bad values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, error, message",
    [
        (-1, ValueError, "proj_size must be >= 0, got -1"),
        (H, ValueError, f"proj_size must be < hidden_size={H}, got {H}"),
        (H + 2, ValueError, f"< hidden_size={H}, got {H + 2}"),
        (2.0, TypeError, "proj_size must be an int, got float 2.0"),
        (True, TypeError, "proj_size must be an int, got bool True"),
        ("2", TypeError, "proj_size must be an int, got str '2'"),
    ],
)
def test_bad_proj_size_is_one_clear_error(value, error, message):
    with pytest.raises(error, match=message):
        rnnkit.LSTM(I, H, proj_size=value)


def test_a_state_of_the_unprojected_size_is_refused_as_torch_nn_does():
    ours, theirs = twins()
    x, hx = torch.randn(T, B, I, dtype=DT), (torch.zeros(1, B, H, dtype=DT),) * 2
    with pytest.raises(RuntimeError):
        theirs(x, hx)
    with pytest.raises(
        ShapeError, match=rf"h_0 must have shape \(1, {B}, {P}\), got \(1, {B}, {H}\)"
    ):
        ours(x, hx)
