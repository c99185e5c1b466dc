"""The layers' regularisers (regularisers.py): weight_drop, dropout_input, dropout_output,
recurrent_dropout and zoneout. With the same seed (the same masks), the C++ loop, the Python
loop and the autograd reference (impl="loop") give equal outputs and every gradient in float64,
with lengths=, both directions, several layers and proj_size; the kernels gradchecked with their
masks fixed; eval mode deterministic and the expectation where it is one; masks the same whatever
the thread count; step(); state dicts; bad values.

    T: time, B: batch, I: input size, H: hidden size
"""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import rnnkit
from rnnkit import regularisers
from rnnkit.bptt import gemm, native

T, B, I, H = 5, 3, 4, 6
DT = torch.float64
LENGTHS = torch.tensor([3, 5, 1])  # unsorted, one full row
# id -> (layer classes, constructor kwargs)
OPTIONS = {
    "weight_drop": (("RNN", "LSTM", "GRU"), {"weight_drop": 0.4}),
    "dropout_io": (("RNN", "LSTM", "GRU"), {"dropout_input": 0.2, "dropout_output": 0.3}),
    "recurrent_dropout": (("RNN", "LSTM", "GRU"), {"recurrent_dropout": 0.3}),
    "zoneout": (("RNN", "LSTM", "GRU"), {"zoneout": 0.3}),
    "zoneout_pair": (("LSTM",), {"zoneout": (0.2, 0.5)}),
    "all": (
        ("RNN", "LSTM", "GRU"),
        {"weight_drop": 0.2, "recurrent_dropout": 0.3, "zoneout": 0.25},
    ),
}
CASES = [(cls, opt) for opt, (classes, _) in OPTIONS.items() for cls in classes]
CONFIGS = {
    "plain": ({}, None),
    "2layer-bidir-lengths": ({"num_layers": 2, "bidirectional": True}, LENGTHS),
    "batch_first-nobias-lengths": ({"batch_first": True, "bias": False}, LENGTHS),
}
needs_native = pytest.mark.skipif(native.load() is None, reason="no C++ time loops here")


def layer_of(cls, opt, dtype=DT, **kw):
    torch.manual_seed(0)
    return getattr(rnnkit, cls)(I, H, dtype=dtype, **OPTIONS[opt][1], **kw)


def run(layer, x, seed=7, impl=None, lengths=None, hx=None):
    """[output, final states..., gradients of x, hx and every parameter] of one seeded call
    (the seed fixes the masks) and one fixed random weighting of the outputs."""
    torch.manual_seed(seed)
    state = hx if hx is None or len(hx) == 2 else hx[0]
    out, st = layer(x, state, lengths=lengths, impl=impl)
    flat = [out, *(st if isinstance(st, tuple) else (st,))]
    gen = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in flat)
    leaves = [x, *([] if hx is None else list(hx)), *layer.parameters()]
    return [t.detach() for t in flat], list(torch.autograd.grad(loss, leaves))


def three_paths(layer, x, monkeypatch, **kw):
    """run() on the C++ loop, the Python loop and the autograd reference."""
    results = [run(layer, x, impl="bptt", **kw)]
    with monkeypatch.context() as m:
        m.setitem(native._state, "module", None)
        results.append(run(layer, x, impl="bptt", **kw))
    results.append(run(layer, x, impl="loop", **kw))
    return results


def x_of(shape=(T, B, I), dtype=DT, seed=3):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype).requires_grad_()


# ---- the three paths agree -------------------------------------------------------------------


@needs_native
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("cls,opt", CASES)
def test_cpp_python_and_autograd_agree_float64(cls, opt, config):
    kw, lengths = CONFIGS[config]
    layer = layer_of(cls, opt, **kw)
    x = x_of((B, T, I) if kw.get("batch_first") else (T, B, I))
    mp = pytest.MonkeyPatch()
    try:
        (a, ga), (b, gb), (c, gc) = three_paths(layer, x, mp, lengths=lengths)
    finally:
        mp.undo()
    assert_close(a + ga, b + gb, atol=1e-12, rtol=1e-12)
    assert_close(a + ga, c + gc, atol=1e-12, rtol=1e-12)


@needs_native
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_three_paths_with_hx(nonlinearity, monkeypatch):
    layer = layer_of("RNN", "all", num_layers=2, bidirectional=True, nonlinearity=nonlinearity)
    x, hx = x_of(), (x_of((4, B, H), seed=5),)
    (a, ga), (b, gb), (c, gc) = three_paths(layer, x, monkeypatch, hx=hx, lengths=LENGTHS)
    assert_close(a + ga, b + gb, atol=1e-12, rtol=1e-12)
    assert_close(a + ga, c + gc, atol=1e-12, rtol=1e-12)


@needs_native
@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_with_hx_and_proj_size(cls, monkeypatch):
    kw = {"proj_size": 3} if cls == "LSTM" else {}
    layer = layer_of(cls, "all", num_layers=2, **kw)
    P = 3 if cls == "LSTM" else H
    hx = x_of((2, B, P), seed=5)
    hx = (hx, x_of((2, B, H), seed=6)) if cls == "LSTM" else (hx,)
    x = x_of()
    (a, ga), (b, gb), (c, gc) = three_paths(layer, x, monkeypatch, hx=hx, lengths=LENGTHS)
    assert_close(a + ga, b + gb, atol=1e-12, rtol=1e-12)
    assert_close(a + ga, c + gc, atol=1e-12, rtol=1e-12)


@needs_native
@pytest.mark.parametrize("lib", ["onednn", "aten", "mkl_packed"])
@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN", "RNN-relu"])
def test_cpp_equals_python_float32_on_each_gemm_library(cls, lib, monkeypatch):
    """Every product on one library (the packed ones return new tensors: the GRU's per-row
    bias under recurrent dropout is added apart); a ragged batch."""
    if lib == "onednn" and not gemm.ONEDNN:
        pytest.skip("this torch has no oneDNN")
    if lib == "mkl_packed" and gemm._MKL_REORDER is None:
        pytest.skip("this torch has no MKL packed GEMM")
    min_flops = 0 if lib == "onednn" else gemm.NEVER
    monkeypatch.setattr(gemm, "MIN_FLOPS", min_flops)
    monkeypatch.setattr(gemm, "MIN_FLOPS_PACKED", min_flops)
    monkeypatch.setattr(gemm, "MIN_WEIGHT", gemm.NEVER)
    monkeypatch.setattr(gemm, "MKL_PACKED_MIN_ROWS", 1 if lib == "mkl_packed" else gemm.NEVER)
    kw = {"LSTM": {"proj_size": 12}, "RNN-relu": {"nonlinearity": "relu"}}.get(cls, {})
    torch.manual_seed(4)
    layer = getattr(rnnkit, cls[:4].strip("-"))(6, 32, recurrent_dropout=0.3, zoneout=0.2, **kw)
    x = x_of((30, 5, 6), dtype=torch.float32)
    results = []
    for loops in ("native", "python"):
        with monkeypatch.context() as m:
            if loops == "python":
                m.setitem(native._state, "module", None)
            results.append(run(layer, x, lengths=torch.tensor([30, 17, 30, 1, 23])))
    (a, ga), (b, gb) = results
    assert_close(a + ga, b + gb, atol=2e-5, rtol=1e-4)


# ---- gradcheck ---------------------------------------------------------------------------------


@needs_native
@pytest.mark.parametrize("loops", ["native", "python"])
@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN", "RNN-relu"])
def test_gradcheck_with_fixed_masks(cls, loops, monkeypatch):
    """The layer seeded inside the function: the same masks at every evaluation."""
    if loops == "python":
        monkeypatch.setitem(native._state, "module", None)
    kw = {"LSTM": {"zoneout": (0.3, 0.4)}, "RNN-relu": {"nonlinearity": "relu"}}.get(cls, {})
    kw = {"zoneout": 0.3, **kw}
    torch.manual_seed(0)
    layer = getattr(rnnkit, cls[:4].strip("-"))(
        2, 3, dtype=DT, recurrent_dropout=0.3, weight_drop=0.2, **kw
    )
    x = x_of((4, 2, 2))
    params = list(layer.parameters())

    def fn(x, *ps):
        torch.manual_seed(11)
        out, st = torch.func.functional_call(
            layer, dict(zip([n for n, _ in layer.named_parameters()], ps)), (x,),
            {"lengths": torch.tensor([4, 2])},
        )  # fmt: skip
        return (out, *(st if isinstance(st, tuple) else (st,)))

    assert torch.autograd.gradcheck(fn, (x, *[p.detach().requires_grad_() for p in params]))


# ---- eval mode, expectations, seeds, thread counts ---------------------------------------------


@pytest.mark.parametrize("cls,opt", CASES)
def test_eval_is_deterministic_and_zoneout_is_its_expectation(cls, opt):
    layer = layer_of(cls, opt).eval()
    x = x_of()
    torch.manual_seed(1)
    a = layer(x)[0]
    torch.manual_seed(2)
    assert torch.equal(a, layer(x)[0])
    assert_close(a, layer(x, impl="loop")[0], atol=1e-12, rtol=1e-12)
    plain = getattr(rnnkit, cls)(I, H, dtype=DT).eval()
    plain.load_state_dict(layer.state_dict())
    if "zoneout" not in OPTIONS[opt][1]:  # every other option is off in eval mode
        assert_close(a, plain(x)[0], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize(
    "cls,kw",
    [("LSTM", {"zoneout": (0.2, 0.5)}), ("GRU", {"zoneout": 0.3}),
     ("LSTM", {"dropout_output": 0.3}), ("GRU", {"dropout_output": 0.3})],
)  # fmt: skip
def test_mean_over_masks_is_the_eval_output(cls, kw):
    """Where the expectation is exact: zoneout over one step from a given state (h_1 = k h_0 +
    (1 - k) h~_1, h~_1 independent of k), and output dropout at any step. 4000 draws: the
    mean's error is about sd / sqrt(4000) of one draw; margin 5 sd / sqrt(4000)."""
    torch.manual_seed(0)
    layer = getattr(rnnkit, cls)(I, H, dtype=DT, **kw)
    x = x_of((1 if "zoneout" in kw else T, 2000, I)).detach()
    hx = x_of((1, 2000, H), seed=4).detach()
    hx = (hx, x_of((1, 2000, H), seed=5).detach()) if cls == "LSTM" else hx
    with torch.no_grad():
        want = layer.eval()(x, hx)
        layer.train()
        draws = [layer(x, hx) for _ in range(2)]
    for n, (w, *d) in enumerate(zip(_flat(want), *(_flat(s) for s in draws))):
        stack = torch.stack(d)  # (2, ...): two draws of 2000 rows each
        err = (stack.mean(0) - w).mean(-2)  # averaged over the batch too: 4000 draws
        sd = (stack - w).std(dim=(0, -2))
        assert (err.abs() <= 5 * sd / 4000**0.5 + 1e-12).all(), (n, err.abs().max())


def _flat(result):
    out, st = result
    return [out, *(st if isinstance(st, tuple) else (st,))]


@pytest.mark.parametrize("cls,opt", [("LSTM", "all"), ("GRU", "all"), ("RNN", "weight_drop")])
def test_masks_are_the_seeds_whatever_the_thread_count(cls, opt):
    layer = layer_of(cls, opt, num_layers=2, bidirectional=True)
    x = x_of((T, 40, I))
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            torch.manual_seed(9)
            masks = regularisers.draw(layer, T, 40, x)
            torch.manual_seed(9)
            results.append((masks, layer(x)[0]))
    finally:
        torch.set_num_threads(threads)
    (m1, y1), (m2, y2) = results
    for a, b in zip(m1.weight + [m1.input, m1.output], m2.weight + [m2.input, m2.output]):
        assert (a is None and b is None) or torch.equal(a, b)
    for a, b in zip(m1.noise, m2.noise):
        for name in ("recurrent", "zone_h", "zone_c"):
            u, v = getattr(a, name), getattr(b, name)
            assert (u is None and v is None) or torch.equal(u, v)
    assert_close(y1, y2, atol=1e-12, rtol=1e-12)
    torch.manual_seed(10)
    assert not torch.equal(layer(x)[0], y1)  # another seed, other masks


def test_masks_scale_and_rates():
    """Dropout masks are 0 or 1 / (1 - p) at rate p; zoneout's k is 0 or 1 at rate p."""
    torch.manual_seed(0)
    keep = regularisers.bernoulli_keep((200, 500), 0.3)
    assert set(keep.unique().tolist()) == {0.0, 1 / 0.7}
    assert abs((keep == 0).double().mean().item() - 0.3) < 0.01
    k = regularisers.bernoulli((200, 500), 0.3)
    assert abs(k.mean().item() - 0.3) < 0.01


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_masks_from_the_loops_equal_torchs(dtype, monkeypatch):
    """The C++ loops' one-pass mask (mask16) and the torch.where fallback: the same values
    from the same seed, for a size that is no multiple of the four draws per 64 bits."""
    masks = []
    for module in (native.load(), None):
        with monkeypatch.context() as m:
            m.setitem(native._state, "module", module)
            torch.manual_seed(4)
            masks.append(
                (
                    regularisers.bernoulli_keep((301, 77), 0.3, dtype),
                    regularisers.bernoulli((301, 77), 0.2, dtype),
                )
            )
    for a, b in zip(*masks):
        assert a.dtype == dtype and torch.equal(a, b)
    keep, k = masks[0]
    assert abs((keep == 0).double().mean().item() - 0.3) < 0.01
    assert abs(k.double().mean().item() - 0.2) < 0.01


# ---- step(), torch.nn's state dicts, fused ------------------------------------------------------


@pytest.mark.parametrize("cls,opt", CASES)
def test_step_is_a_one_step_forward_with_the_same_seed(cls, opt):
    layer = layer_of(cls, opt, num_layers=2)
    x = x_of((1, B, I))
    for train in (True, False):
        layer.train(train)
        torch.manual_seed(3)
        out, st = layer(x)
        torch.manual_seed(3)
        y, st2 = layer.step(x[0])
        assert_close(y, out[0], atol=1e-12, rtol=1e-12)
        assert_close(st2, st, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("cls,opt", CASES)
def test_state_dicts_move_both_ways_with_torch_nn(cls, opt):
    theirs = getattr(nn, cls)(I, H, num_layers=2, dtype=DT)
    ours = layer_of(cls, opt, num_layers=2)
    ours.load_state_dict(theirs.state_dict())  # strict: the options add no parameters
    theirs.load_state_dict(ours.state_dict())
    x = x_of().detach()
    if "zoneout" not in OPTIONS[opt][1]:  # in eval mode the others are off
        assert_close(ours.eval()(x)[0], theirs(x)[0])


@pytest.mark.parametrize("cls,opt", CASES)
def test_not_fusable_and_fused_refused(cls, opt):
    layer = layer_of(cls, opt)
    assert not layer.fusable()
    assert getattr(rnnkit, cls)(I, H).fusable()
    with pytest.raises(ValueError, match="impl='fused'"):
        layer(x_of(), impl="fused")
    assert "=" in repr(layer).split(f"{I}, {H}")[1]  # the options in the repr


# ---- bad input ---------------------------------------------------------------------------------

NAMES = ["weight_drop", "dropout_input", "dropout_output", "recurrent_dropout", "zoneout"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "value,error",
    [(-0.1, ValueError), (1.0, ValueError), (1.5, ValueError), (float("nan"), ValueError),
     ("0.1", TypeError), (True, TypeError), (None, TypeError)],
)  # fmt: skip
def test_bad_probability_is_one_clear_error(name, value, error):
    with pytest.raises(error, match=name) as caught:
        rnnkit.LSTM(I, H, **{name: value})
    assert "[0, 1)" in str(caught.value) and repr(value).strip("'") in str(caught.value)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: rnnkit.GRU(I, H, zoneout=(0.1, 0.2)), "no cell state c"),
        (lambda: rnnkit.LSTM(I, H, zoneout=(0.1, 0.2, 0.3)), r"pair \(p_h, p_c\)"),
        (lambda: rnnkit.LSTM(I, H, zoneout=(0.1, 1.0)), r"zoneout p_c .*\[0, 1\), got 1.0"),
        (lambda: rnnkit.RNN(I, H, zoneout=(0.1, 0.2)), "no cell state c"),
    ],
)
def test_options_that_do_not_apply_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_an_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="zonout"):
        rnnkit.GRU(I, H, zonout=0.1)


# ---- every cell state: LSTM.forward_with_cells -------------------------------------------------


def run_cells(layer, x, seed=7, impl=None, lengths=None):
    """[output, h_n, c_n, cells] and the gradients of x and every parameter (cells weighted too)."""
    torch.manual_seed(seed)
    out, (h, c), cells = layer.forward_with_cells(x, lengths=lengths, impl=impl)
    flat = [out, h, c, cells]
    gen = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in flat)
    return [t.detach() for t in flat], list(torch.autograd.grad(loss, [x, *layer.parameters()]))


@needs_native
@pytest.mark.parametrize(
    "kw",
    [{}, {"num_layers": 2, "bidirectional": True, "zoneout": (0.2, 0.3)},
     {"proj_size": 3, "recurrent_dropout": 0.3, "batch_first": True}],
)  # fmt: skip
def test_cells_on_the_three_paths(kw, monkeypatch):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H, dtype=DT, **kw)
    x = x_of((B, T, I) if kw.get("batch_first") else (T, B, I))
    results = [run_cells(layer, x, impl="bptt", lengths=LENGTHS)]
    with monkeypatch.context() as m:
        m.setitem(native._state, "module", None)
        results.append(run_cells(layer, x, impl="bptt", lengths=LENGTHS))
    results.append(run_cells(layer, x, impl="loop", lengths=LENGTHS))
    (a, ga), (b, gb), (c, gc) = results
    assert_close(a + ga, b + gb, atol=1e-12, rtol=1e-12)
    assert_close(a + ga, c + gc, atol=1e-12, rtol=1e-12)
    D = 2 if kw.get("bidirectional") else 1
    assert a[3].shape == a[0].shape[:2] + (D * H,)
    torch.manual_seed(7)  # forward's output and states with the same masks
    out, (h, c) = layer(x, lengths=LENGTHS)
    assert_close([out, h, c], [a[0], a[1], a[2]], atol=1e-12, rtol=1e-12)


def test_cells_are_torch_nns_c_at_every_step():
    """c_t of a one-layer LSTM is torch.nn.LSTM's c_n over x[:t + 1]; no grad: inference."""
    theirs = nn.LSTM(I, H, dtype=DT)
    ours = rnnkit.LSTM(I, H, dtype=DT)
    ours.load_state_dict(theirs.state_dict())
    x = x_of().detach()
    with torch.no_grad():
        out, (h, c), cells = ours.forward_with_cells(x)
        want = torch.stack([theirs(x[: t + 1])[1][1][0] for t in range(T)])
    assert_close(cells, want)
    assert_close(cells[-1], c[0])
    assert_close(out, ours(x)[0])


@needs_native
def test_gradcheck_cells():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(2, 3, dtype=DT, zoneout=0.3)
    names = [n for n, _ in layer.named_parameters()]

    def fn(x, *ps):
        torch.manual_seed(11)
        args, kw = (x,), {"lengths": torch.tensor([4, 2])}
        params = dict(zip(names, ps))
        return torch.func.functional_call(layer, params, args, kw, strict=True)[2]

    layer.forward = layer.forward_with_cells  # functional_call calls forward
    ps = [p.detach().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(fn, (x_of((4, 2, 2)), *ps))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_cuda_runs_the_python_loops_with_the_cpus_masks(cls):
    """impl='auto' on CUDA keeps rnnkit's kernels (their Python loops) for these options; the
    masks come from the CPU generator, so the results are the CPU's."""
    layer = layer_of(cls, "all", num_layers=2, bidirectional=True)
    x = x_of()
    (a, ga) = run(layer, x, lengths=LENGTHS)
    layer.cuda()
    xc = x.detach().cuda().requires_grad_()
    (b, gb) = run(layer, xc, lengths=LENGTHS)
    assert_close([t.cpu() for t in b + gb], a + ga, atol=1e-10, rtol=1e-10)
