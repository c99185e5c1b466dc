"""Layer-normalised cells (`layer_norm=True`): the C++ loop, the Python loop and impl="loop"
against a plain autograd implementation written here from the equations (one row at a time,
each over its own length), outputs, final states and every gradient in float64, with lengths=,
both directions, two layers, batch_first, proj_size, given states; gradchecks of the kernels;
step(); forward_with_cells; the regularisers with it (recurrent dropout and zoneout inside the
loops); state dicts; torch.compile; bad values.

    T: time, B: batch, I: input size, H: hidden size, P: proj_size
"""

import pytest
import torch
from torch.testing import assert_close

import rnnkit
from rnnkit.bptt import native

T, B, I, H = 5, 3, 4, 6
DT = torch.float64
EPS = 1e-5
LENGTHS = torch.tensor([3, 5, 1])  # unsorted, one full row
CLASSES = ["LSTM", "GRU", "RNN", "RNN-relu"]
CONFIGS = {
    "plain": {},
    "2layer-bidir-lengths": {"num_layers": 2, "bidirectional": True, "lengths": True},
    "batch_first-lengths": {"batch_first": True, "lengths": True},
    "nobias-hx-lengths": {"bias": False, "hx": True, "lengths": True},
}
needs_native = pytest.mark.skipif(native.load() is None, reason="no C++ time loops here")


# ---- the reference, from the equations -------------------------------------------------------


def ln(v, g, b=None):
    """LN(v; g, b) = g (v - mean v) / sqrt(var v + eps) + b, biased variance, last axis."""
    mu = v.mean(-1, keepdim=True)
    var = ((v - mu) ** 2).mean(-1, keepdim=True)
    y = (v - mu) / torch.sqrt(var + EPS) * g
    return y if b is None else y + b


def ref_step(mode, nonlinearity, x, h, c, p):
    """One step of one row; p: the layer and direction's parameters by short name."""
    a = ln(x @ p["weight_ih"].t(), p["ln_ih_weight"]) + p.get("bias_ih", 0)
    u = ln(h @ p["weight_hh"].t(), p["ln_hh_weight"]) + p.get("bias_hh", 0)
    if mode == "RNN":
        z = a + u
        return (torch.tanh(z) if nonlinearity == "tanh" else torch.relu(z)), None
    if mode == "GRU":
        a_r, a_z, a_n = a.chunk(3, -1)
        u_r, u_z, u_n = u.chunk(3, -1)
        r, z = torch.sigmoid(a_r + u_r), torch.sigmoid(a_z + u_z)
        n = torch.tanh(a_n + r * u_n)
        return (1 - z) * n + z * h, None
    i, f, g, o = (a + u).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    m = torch.sigmoid(o) * torch.tanh(ln(c, p["ln_c_weight"], p["ln_c_bias"]))
    return (m if "weight_hr" not in p else m @ p["weight_hr"].t()), c


def reference(layer, x, hx, lengths, nonlinearity="tanh"):
    """(output (T, B, D*P), h_n, c_n or None) of x (T, B, I), one row at a time over its own
    length: padded steps output zeros, the reverse direction starts at each row's end."""
    mode, D, L = layer.cell.torch_name, layer.num_directions, layer.num_layers
    Tn, Bn = x.shape[:2]
    lengths = [Tn] * Bn if lengths is None else lengths.tolist()
    h0, c0 = hx
    params = dict(layer.named_parameters())
    layer_in, h_n, c_n = x, [], []
    for k in range(L):
        outs = []
        for d in range(D):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            p = {n[: -len(sfx)]: v for n, v in params.items() if n.endswith(sfx)}
            rows, finals_h, finals_c = [], [], []
            for b in range(Bn):
                h, c = h0[k * D + d, b], (None if c0 is None else c0[k * D + d, b])
                out = [torch.zeros_like(h)] * Tn
                times = range(lengths[b])
                for t in reversed(times) if d else times:
                    h, c = ref_step(mode, nonlinearity, layer_in[t, b], h, c, p)
                    out[t] = h
                rows.append(torch.stack(out))
                finals_h.append(h)
                finals_c.append(c)
            outs.append(torch.stack(rows, 1))
            h_n.append(torch.stack(finals_h))
            c_n.append(None if c0 is None else torch.stack(finals_c))
        layer_in = torch.cat(outs, -1)
    return layer_in, torch.stack(h_n), (None if c0 is None else torch.stack(c_n))


# ---- helpers ------------------------------------------------------------------------------------


def make(cls, dtype=DT, **kw):
    """A layer with its LN gains and biases away from 1 and 0 (so that a wrong one shows)."""
    torch.manual_seed(0)
    nl = {"nonlinearity": "relu"} if cls == "RNN-relu" else {}
    layer = getattr(rnnkit, cls.split("-")[0])(I, H, dtype=dtype, layer_norm=True, **nl, **kw)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    return layer


def rand(shape, seed, dtype=DT):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype).requires_grad_()


def inputs(layer, config):
    """x in the layer's layout, hx (h_0, c_0 or None) and lengths of a config."""
    x = rand((B, T, I) if layer.batch_first else (T, B, I), 3)
    LD, P = layer.num_layers * layer.num_directions, layer.proj_size or H
    hx = (None, None)
    if config.get("hx"):
        hx = (rand((LD, B, P), 5), rand((LD, B, H), 6) if layer.mode == "lstm" else None)
    return x, hx, (LENGTHS if config.get("lengths") else None)


def flat(out, st):
    return [out, *(st if isinstance(st, tuple) else (st,))]


def grads_of(outs, x, hx, layer):
    """[outputs..., d(a fixed random weighting of them) / d(x, hx, every parameter)]."""
    gen = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in outs)
    leaves = [x, *(h for h in hx if h is not None), *layer.parameters()]
    return [t.detach() for t in outs] + list(torch.autograd.grad(loss, leaves))


def run_layer(layer, x, hx, lengths, impl):
    state = None if hx[0] is None else (hx if layer.mode == "lstm" else hx[0])
    return grads_of(flat(*layer(x, state, lengths=lengths, impl=impl)), x, hx, layer)


def run_reference(layer, x, hx, lengths, nonlinearity):
    LD, P = layer.num_layers * layer.num_directions, layer.proj_size or H
    h0 = hx[0] if hx[0] is not None else x.new_zeros(LD, B, P)
    c0 = hx[1] if hx[1] is not None else x.new_zeros(LD, B, H)
    xt = x.transpose(0, 1) if layer.batch_first else x
    out, h_n, c_n = reference(layer, xt, (h0, c0 if layer.mode == "lstm" else None), lengths,
                              nonlinearity)  # fmt: skip
    out = out.transpose(0, 1) if layer.batch_first else out
    return grads_of([out, h_n] + ([c_n] if c_n is not None else []), x, hx, layer)


# ---- the paths agree ----------------------------------------------------------------------------


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("cls", CLASSES)
def test_python_loop_and_step_loop_equal_the_reference(cls, config, monkeypatch):
    kw = {k: v for k, v in CONFIGS[config].items() if k not in ("lengths", "hx")}
    layer = make(cls, **kw)
    x, hx, lengths = inputs(layer, CONFIGS[config])
    want = run_reference(layer, x, hx, lengths, "relu" if cls == "RNN-relu" else "tanh")
    with monkeypatch.context() as m:  # the kernels' Python loops
        m.setitem(native._state, "module", None)
        got = run_layer(layer, x, hx, lengths, "bptt")
    assert_close(got, want, atol=1e-10, rtol=1e-10)
    assert_close(run_layer(layer, x, hx, lengths, "loop"), want, atol=1e-10, rtol=1e-10)


@needs_native
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("cls", CLASSES)
def test_cpp_loop_equals_the_reference(cls, config):
    kw = {k: v for k, v in CONFIGS[config].items() if k not in ("lengths", "hx")}
    layer = make(cls, **kw)
    x, hx, lengths = inputs(layer, CONFIGS[config])
    want = run_reference(layer, x, hx, lengths, "relu" if cls == "RNN-relu" else "tanh")
    assert_close(run_layer(layer, x, hx, lengths, "bptt"), want, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("loops", ["native", "python"])
@pytest.mark.parametrize("config", ["plain", "2layer-bidir-lengths", "nobias-hx-lengths"])
def test_lstm_with_proj_size(config, loops, monkeypatch):
    if loops == "native" and native.load() is None:
        pytest.skip("no C++ time loops here")
    kw = {k: v for k, v in CONFIGS[config].items() if k not in ("lengths", "hx")}
    layer = make("LSTM", proj_size=3, **kw)
    x, hx, lengths = inputs(layer, CONFIGS[config])
    want = run_reference(layer, x, hx, lengths, "tanh")
    if loops == "python":
        monkeypatch.setitem(native._state, "module", None)
    assert_close(run_layer(layer, x, hx, lengths, "bptt"), want, atol=1e-10, rtol=1e-10)
    assert_close(run_layer(layer, x, hx, lengths, "loop"), want, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("masks", [False, True], ids=["plain", "regularisers"])
@pytest.mark.parametrize("loops", ["native", "python"])
@pytest.mark.parametrize("cls", CLASSES + ["LSTM-proj"])
def test_gradcheck(cls, loops, masks, monkeypatch):
    if loops == "native" and native.load() is None:
        pytest.skip("no C++ time loops here")
    if loops == "python":
        monkeypatch.setitem(native._state, "module", None)
    torch.manual_seed(0)
    kw = {"nonlinearity": "relu"} if cls == "RNN-relu" else {}
    kw.update({"proj_size": 2} if cls == "LSTM-proj" else {})
    kw.update({"recurrent_dropout": 0.3, "weight_drop": 0.2, "zoneout": 0.3} if masks else {})
    layer = getattr(rnnkit, cls.split("-")[0])(2, 3, dtype=DT, layer_norm=True, **kw)
    names = [n for n, _ in layer.named_parameters()]
    x = rand((4, 2, 2), 3)

    def fn(x, *ps):
        torch.manual_seed(11)  # the same masks at every evaluation
        out, st = torch.func.functional_call(
            layer, dict(zip(names, ps)), (x,), {"lengths": torch.tensor([4, 2])}
        )
        return tuple(flat(out, st))

    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(fn, (x, *params))


@needs_native
@pytest.mark.parametrize("cls", CLASSES + ["LSTM-proj"])
def test_cpp_equals_python_float32(cls, monkeypatch):
    kw = {"proj_size": 3} if cls == "LSTM-proj" else {}
    layer = make(cls.replace("-proj", ""), dtype=torch.float32, num_layers=2, **kw)
    x, hx, lengths = inputs(layer, {"lengths": True})
    x = x.float().detach().requires_grad_()
    want = run_layer(layer, x, hx, lengths, "bptt")
    monkeypatch.setitem(native._state, "module", None)
    assert_close(run_layer(layer, x, hx, lengths, "bptt"), want, atol=2e-5, rtol=1e-4)


@needs_native
@pytest.mark.parametrize("masks", [False, True], ids=["plain", "regularisers"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("cls", CLASSES + ["LSTM-proj"])
def test_cpp_equals_python_on_wide_rows_split_across_threads(cls, dtype, masks, monkeypatch):
    """Rows wider than the C++ reductions' lanes (H = 37: 16-lane blocks and a tail), and a
    batch the C++ loops split across two threads (per-thread sums of the gains' and biases'
    gradients), with lengths, both directions, two layers, the masks in the loops."""
    Bw, Hw = 160, 37
    torch.manual_seed(0)
    kw = {"nonlinearity": "relu"} if cls == "RNN-relu" else {}
    kw.update({"proj_size": 5} if cls == "LSTM-proj" else {})
    kw.update({"recurrent_dropout": 0.3, "zoneout": 0.2} if masks else {})
    layer = getattr(rnnkit, cls.split("-")[0])(
        I, Hw, 2, bidirectional=True, dtype=dtype, layer_norm=True, **kw
    )
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    x = rand((T, Bw, I), 3, dtype)
    lengths = torch.randint(1, T + 1, (Bw,), generator=torch.Generator().manual_seed(2))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = []
        for loops in (True, False):
            with monkeypatch.context() as m:
                if not loops:
                    m.setitem(native._state, "module", None)
                torch.manual_seed(7)
                results.append(run_layer(layer, x, (None, None), lengths, "bptt"))
    finally:
        torch.set_num_threads(threads)
    # float32: the C++ sigmoid and tanh differ by ~1e-7, and the gradients' sums over the 800
    # rows run in another order (per thread, in lanes); float64 checks the math
    f64 = dtype == torch.float64
    tol = {"atol": 1e-10, "rtol": 1e-10} if f64 else {"atol": 1e-2, "rtol": 1e-2}
    assert_close(results[0], results[1], **tol)


@pytest.mark.parametrize("impl", ["bptt", "loop"])
def test_forward_with_cells_is_the_reference_c(impl):
    """LSTM.forward_with_cells: the last layer's c_t, differentiable (its gradient flows)."""
    layer = make("LSTM", num_layers=2, bidirectional=True)
    x, _, lengths = inputs(layer, {"lengths": True})
    out, (h_n, c_n), C = layer.forward_with_cells(x, lengths=lengths, impl=impl)
    zeros = x.new_zeros(4, B, H)
    want = reference(layer, x, (zeros, zeros), lengths)[0]
    assert_close(out, want, atol=1e-10, rtol=1e-10)
    got = grads_of([out, h_n, c_n, C], x, (None,), layer)
    ref = grads_of(flat(*layer.forward_with_cells(x, lengths=lengths, impl="loop")[:2])
                   + [layer.forward_with_cells(x, lengths=lengths, impl="loop")[2]], x, (None,),
                   layer)  # fmt: skip
    assert_close(got, ref, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("cls", CLASSES + ["LSTM-proj"])
def test_regularisers_combine_on_every_path(cls, monkeypatch):
    """weight_drop, locked dropout, recurrent dropout and zoneout (inside the loops): the same
    seed, the same masks on the C++ loop, the Python loop and impl="loop"; two layers, both
    directions; in training and in eval mode (zoneout's expectation)."""
    kw = {"proj_size": 3} if cls == "LSTM-proj" else {}
    kw["zoneout"] = (0.3, 0.2) if cls.startswith("LSTM") else 0.3
    layer = make(cls.replace("-proj", ""), num_layers=2, bidirectional=True, weight_drop=0.3,
                 dropout_input=0.2, dropout_output=0.1, recurrent_dropout=0.4, **kw)  # fmt: skip
    x, hx, lengths = inputs(layer, {"lengths": True, "hx": True})
    for train in (True, False):
        layer.train(train)
        results = []
        for impl, loops in [("bptt", True), ("bptt", False), ("loop", True)]:
            with monkeypatch.context() as m:
                if not loops:
                    m.setitem(native._state, "module", None)
                torch.manual_seed(7)
                results.append(run_layer(layer, x, hx, lengths, impl))
        assert_close(results[0], results[1], atol=1e-10, rtol=1e-10)
        assert_close(results[0], results[2], atol=1e-10, rtol=1e-10)


# ---- step(), state dicts ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES + ["LSTM-proj"])
def test_step_by_step_is_the_forward(cls):
    kw = {"proj_size": 3} if cls == "LSTM-proj" else {}
    layer = make(cls.replace("-proj", ""), num_layers=2, **kw)
    x = rand((T, B, I), 3).detach()
    out, st = layer(x)
    state, ys = None, []
    for t in range(T):
        y, state = layer.step(x[t], state)
        ys.append(y)
    assert_close(torch.stack(ys), out, atol=1e-10, rtol=1e-10)
    assert_close(state, st, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_parameters_and_initial_values(cls):
    layer = getattr(rnnkit, cls)(I, H, 2, bidirectional=True, layer_norm=True)
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[cls]
    names = dict(layer.named_parameters())
    for sfx in ["_l0", "_l0_reverse", "_l1", "_l1_reverse"]:
        for n in ("ln_ih_weight", "ln_hh_weight"):
            assert names[n + sfx].shape == (G * H,) and bool((names[n + sfx] == 1).all())
        if cls == "LSTM":
            assert bool((names["ln_c_weight" + sfx] == 1).all())
            assert bool((names["ln_c_bias" + sfx] == 0).all())
            assert names["ln_c_bias" + sfx].shape == (H,)
        else:
            assert "ln_c_weight" + sfx not in names
    assert "layer_norm=True" in repr(layer)
    assert not layer.fusable()
    with pytest.raises(ValueError, match="impl='fused'"):
        layer(torch.randn(T, B, I), impl="fused")


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_state_dict_round_trip(cls):
    ours = make(cls, num_layers=2, bidirectional=True)
    torch.manual_seed(5)
    other = getattr(rnnkit, cls)(I, H, 2, bidirectional=True, dtype=DT, layer_norm=True)
    other.load_state_dict(ours.state_dict())
    x = rand((T, B, I), 3).detach()
    assert_close(other(x)[0], ours(x)[0], atol=0, rtol=0)
    model = torch.nn.Sequential(ours)  # under a prefix too
    torch.nn.Sequential(other).load_state_dict(model.state_dict())


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_a_state_dict_without_the_layer_norm_parameters_is_a_value_error(cls):
    plain = getattr(torch.nn, cls)(I, H, 2)
    layer = getattr(rnnkit, cls)(I, H, 2, layer_norm=True)
    with pytest.raises(
        ValueError, match=r"lacks the parameters of layer_norm=True.*ln_ih_weight_l0"
    ):
        layer.load_state_dict(plain.state_dict())
    with pytest.raises(RuntimeError, match=r"0\.ln_hh_weight_l1"):  # in a model: torch's error
        torch.nn.Sequential(layer).load_state_dict(torch.nn.Sequential(plain).state_dict())
    layer.load_state_dict(plain.state_dict(), strict=False)  # the gains stay 1
    assert bool((layer.ln_ih_weight_l0 == 1).all())
    with pytest.raises(ValueError, match=r"holds the parameters of layer_norm=True"):
        getattr(rnnkit, cls)(I, H, 2).load_state_dict(layer.state_dict())


# ---- torch.compile / torch.export, bad values ---------------------------------------------------


def test_torch_export_is_refused_naming_layer_norm():
    layer = rnnkit.LSTM(I, H, layer_norm=True)
    with pytest.raises(Exception, match="layer_norm") as info:
        torch.export.export(layer, (torch.randn(T, B, I),))
    assert isinstance(info.value, NotImplementedError) or "NotImplementedError" in str(info.value)


def test_torch_compile_is_refused_naming_layer_norm():
    layer = rnnkit.GRU(I, H, layer_norm=True)
    with pytest.raises(Exception, match="layer_norm"):
        torch.compile(layer, backend="eager", fullgraph=True)(torch.randn(T, B, I))


@pytest.mark.parametrize("value", [1, 0, "yes", None, 1.0])
def test_a_layer_norm_that_is_not_a_bool_is_a_type_error(value):
    with pytest.raises(TypeError, match="layer_norm must be a bool"):
        rnnkit.LSTM(I, H, layer_norm=value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_cuda_runs_the_python_loops_as_the_cpu(cls):
    """On CUDA the kernels run their Python loops (impl="auto" too: torch's fused operator
    has no layer norm), the same masks drawn on the CPU."""
    layer = make(cls, num_layers=2, bidirectional=True, recurrent_dropout=0.2, zoneout=0.1)
    x, hx, lengths = inputs(layer, {"lengths": True})
    torch.manual_seed(7)
    want = run_layer(layer, x, hx, lengths, "bptt")
    layer = layer.cuda()
    xc = x.detach().cuda().requires_grad_()
    torch.manual_seed(7)
    got = run_layer(layer, xc, hx, lengths, "auto")
    assert_close([g.cpu() for g in got], want, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_the_gradient_probe_records_dh_t(cls):
    """probe.GradientRecord: || dL/dh_t || per step of each kernel call, as autograd gives it
    for the same layer stepped (step(), the step equations)."""
    from rnnkit.bptt.probe import GradientRecord

    layer = make(cls)
    x = rand((T, B, I), 3)
    with GradientRecord() as record:
        layer(x, impl="bptt")[0].pow(2).sum().backward()
    hs, state = [], None
    for t in range(T):  # the same layer stepped, each h_t kept
        h, state = layer.step(x[t].detach(), state)
        hs.append(h)
    loss = sum(h.pow(2).sum() for h in hs)
    # dL/dh_t: autograd's total gradient of each h_t (through every later step too)
    want = [torch.autograd.grad(loss, h, retain_graph=True)[0].norm() for h in hs]
    assert_close(record.stacked()[0], torch.stack(want), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_a_layer_norm_layer_deep_copies_and_pickles(name):
    """copy.deepcopy (what AveragedModel and many trainers do) and pickle (torch.save of a
    whole model): the copy computes what the layer does and shares its cell description."""
    import copy
    import io

    layer = getattr(rnnkit, name)(3, 5, num_layers=2, layer_norm=True).eval()
    x = torch.randn(4, 2, 3)
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    for other in (copy.deepcopy(layer), torch.load(buffer, weights_only=False)):
        assert other._kernels is layer._kernels and other is not layer
        assert torch.equal(other(x)[0], layer(x)[0])
