"""minGRU and minLSTM: the log-space scan against its loop, the layers' two modes against each
other, lengths=, carried state, step(), gradcheck, errors, and the task models' calls."""

import math

import pytest
import torch
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence
from torch.testing import assert_close

from rnnkit import layers as core_layers
from rnnkit.minrnn import MinGRU, MinLSTM, log_scan, scan_loop
from rnnkit.minrnn import functional as MF
from rnnkit.minrnn import scan as scan_module
from rnnkit.minrnn.layers import choose_impl
from rnnkit.minrnn.scan import CHUNK_MAX, CHUNK_MIN, default_chunk_size

T, B, I, H = 17, 4, 3, 5
LENGTHS = [9, 17, 1, 9]  # unsorted, with a tie, longest == T
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
CELLS = [MinGRU, MinLSTM]
CELL_IDS = ["mingru", "minlstm"]
DTYPES = [torch.float32, torch.float64]
DTYPE_IDS = ["f32", "f64"]


def close(got, want, dtype, msg=""):
    """Equal to a relative tolerance: rtol elementwise, atol the same fraction of max |want|."""
    tol = TOL[dtype]
    scale = float(want.detach().abs().max()) if want.numel() else 1.0
    assert_close(got, want, rtol=tol, atol=tol * max(scale, 1.0), msg=msg)


def run(layer, x, h0=None, lengths=None, **call_kw):
    """Forward + backward with fresh leaves: (out, h_n, {name: grad}) for x, h0 and params."""
    x = x.detach().clone().requires_grad_()
    leaves, names = [x], ["input"]
    if h0 is not None:
        h0 = h0.detach().clone().requires_grad_()
        leaves, names = [x, h0], ["input", "h0"]
    if lengths is not None:
        call_kw["lengths"] = torch.tensor(lengths)
    out, h_n = layer(x, h0, **call_kw)
    gen = torch.Generator().manual_seed(1234)  # the same loss weights for every run
    w_out = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype)
    w_h = torch.randn(h_n.shape, generator=gen, dtype=torch.float64).to(out.dtype)
    loss = (out * w_out).sum() + (h_n * w_h).sum()
    params = dict(layer.named_parameters())
    grads = torch.autograd.grad(loss, leaves + list(params.values()))
    return out.detach(), h_n.detach(), dict(zip(names + list(params), grads))


def assert_same_run(got, want, dtype):
    (out_g, hn_g, gr_g), (out_w, hn_w, gr_w) = got, want
    assert out_g.shape == out_w.shape and hn_g.shape == hn_w.shape
    close(out_g, out_w, dtype, "output")
    close(hn_g, hn_w, dtype, "h_n")
    assert list(gr_g) == list(gr_w)
    for name in gr_w:
        close(gr_g[name], gr_w[name], dtype, f"grad {name}")


def coefficients(steps, dtype, batch=3, hidden=4):
    """log a <= 0 and log b of a minGRU-like recurrence (T, batch, hidden)."""
    k, v = torch.randn(2, steps, batch, hidden, dtype=dtype) * 2
    return MF.log_coefficients(torch.cat([k, v], -1), "mingru")


# ---- the scan alone ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("h0_kind", ["none", "positive", "negative"])
@pytest.mark.parametrize("steps", [1, 2, 17, 300])
def test_scan_equals_loop(steps, h0_kind, dtype):
    """Values and gradients of log a, log b and h0, every chunk length, with and without grad."""
    log_a, log_b = coefficients(steps, dtype)
    h0 = {"none": None, "positive": torch.rand(3, 4, dtype=dtype)}.get(h0_kind)
    if h0_kind == "negative":
        h0 = -torch.rand(3, 4, dtype=dtype) - 0.5
    leaves = [log_a, log_b] + ([] if h0 is None else [h0])
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(log_a.shape, generator=gen, dtype=dtype)

    def grads_of(fn):
        ins = [t.detach().clone().requires_grad_() for t in leaves]
        h = fn(*ins)
        return h.detach(), torch.autograd.grad((h * w).sum(), ins)

    want, want_grads = grads_of(
        lambda la, lb, *h: scan_loop(la.exp(), lb.exp(), h[0] if h else None)
    )
    for chunk in (None, 1, 7, 64, 1000):  # 1000: one chunk of 300 steps, which steps through
        got, got_grads = grads_of(
            lambda la, lb, *h, c=chunk: log_scan(la, lb, h[0] if h else None, c)
        )
        close(got, want, dtype, f"h, chunk {chunk}")
        for g, gw in zip(got_grads, want_grads):
            close(g, gw, dtype, f"grad, chunk {chunk}")
        with torch.no_grad():
            h = log_scan(log_a, log_b, h0, chunk)
        close(h, want, dtype, f"no_grad, chunk {chunk}")


def test_scan_gradcheck():
    log_a, log_b = coefficients(9, torch.float64, batch=2, hidden=2)
    h0 = torch.randn(2, 2, dtype=torch.float64)
    ins = [t.detach().clone().requires_grad_() for t in (log_a, log_b, h0)]
    for chunk in (None, 4):  # one chunk; three, the last one short

        def f(la, lb, h, c=chunk):
            return log_scan(la, lb, h, c)

        assert torch.autograd.gradcheck(f, ins)


def test_scan_where_the_products_of_a_underflow():
    """Gates near 1 (a = e^-30 a step) for 100 of 300 steps: those chunks' products of a fall
    far below the smallest float, so they step through in linear space; still exact."""
    log_a, log_b = coefficients(300, torch.float64)
    log_a[100:200] = -30.0
    h0 = torch.randn(3, 4, dtype=torch.float64)
    ins = [t.detach().clone().requires_grad_() for t in (log_a, log_b, h0)]
    h = log_scan(*ins)
    assert torch.isfinite(h).all()
    grads = torch.autograd.grad(h.sin().sum(), ins)
    ref = [t.detach().clone().requires_grad_() for t in (log_a, log_b, h0)]
    h_ref = scan_loop(ref[0].exp(), ref[1].exp(), ref[2])
    close(h, h_ref, torch.float64)
    for g, g_ref in zip(grads, torch.autograd.grad(h_ref.sin().sum(), ref)):
        close(g, g_ref, torch.float64)


def test_stepping_fallback_equals_the_scan(monkeypatch):
    """Every chunk forced onto the exact stepping path gives what the GEMM path gives."""
    log_a, log_b = coefficients(150, torch.float32)
    h0 = torch.randn(3, 4)

    def run_scan():
        ins = [t.detach().clone().requires_grad_() for t in (log_a, log_b, h0)]
        h = log_scan(*ins)
        return [h.detach(), *torch.autograd.grad((h * h).sum(), ins)]

    want = run_scan()
    monkeypatch.setattr(scan_module, "_tiny_exponent", lambda t: math.inf)
    for got, w in zip(run_scan(), want):
        close(got, w, torch.float32)


def test_default_chunk_size():
    assert default_chunk_size(1, 8 * 64) == 1
    assert default_chunk_size(1000, 8 * 64) == CHUNK_MAX
    assert default_chunk_size(1000, 8 * 128) == 32
    assert default_chunk_size(1000, 8 * 256) == CHUNK_MIN


def test_scan_errors():
    log_a, log_b = coefficients(5, torch.float32)
    with pytest.raises(ValueError, match=r"same shape.*got \(5, 3, 4\) and \(4, 3, 4\)"):
        log_scan(log_a, log_b[:4])
    with pytest.raises(ValueError, match=r"h0 must have shape \(3, 4\), got \(4, 3\)"):
        log_scan(log_a, log_b, torch.zeros(4, 3))
    with pytest.raises(TypeError, match="log_a must be a floating-point tensor, got torch.int64"):
        log_scan(log_a.long(), log_b)
    for bad, err in ((0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)):
        with pytest.raises(err, match=rf"chunk_size must be a positive int or None, got .*{bad}"):
            log_scan(log_a, log_b, chunk_size=bad)


# ---- the equations -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["mingru", "minlstm"])
def test_log_coefficients_are_the_logs_of_the_gates(mode):
    p = torch.randn(50, MF.GATES[mode] * 4, dtype=torch.float64) * 4
    w, h_tilde = MF.gates(p, mode)
    log_a, log_b = MF.log_coefficients(p, mode)
    assert_close(log_a.exp(), 1 - w)
    assert_close(log_b.exp(), w * h_tilde)
    assert (h_tilde > 0).all()
    v = torch.tensor([-3.0, -0.5, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    want = torch.cat([torch.sigmoid(v[:2]), v[2:] + 0.5]).detach()  # 0.5 at 0: continuous
    assert_close(MF.g(v), want)
    assert_close(MF.log_g(v), MF.g(v).log())
    (grad,) = torch.autograd.grad(MF.log_g(v).sum(), v)
    (want_grad,) = torch.autograd.grad(MF.g(v).log().sum(), v)
    assert_close(grad, want_grad)
    big = torch.tensor([-200.0, 200.0])  # float32: g(-200) underflows, log g does not
    assert_close(MF.log_g(big), torch.tensor([-200.0, torch.tensor(200.5).log().item()]))


# ---- the layers: scan against loop ---------------------------------------------------------


def random_state(layer, batch=B, dtype=torch.float64, sign=1.0):
    D = 2 if layer.bidirectional else 1
    return sign * torch.rand(layer.num_layers * D, batch, layer.hidden_size, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("steps", [1, 2, 17, 300])
@pytest.mark.parametrize("cls", CELLS, ids=CELL_IDS)
def test_scan_equals_loop_layer(cls, steps, dtype):
    """2 layers, h0, batch_first, lengths (one sequence of length 1, one full)."""
    layer = cls(I, H, num_layers=2, batch_first=True, dtype=dtype)
    x = torch.randn(B, steps, I, dtype=dtype)
    h0 = random_state(layer, dtype=dtype)
    lengths = [max(1, steps // 2), steps, 1, max(1, steps - 1)]
    for lens in (None, lengths):
        got = run(layer, x, h0, lens, impl="scan")
        want = run(layer, x, h0, lens, impl="loop")
        assert_same_run(got, want, dtype)


@pytest.mark.parametrize("cls", CELLS, ids=CELL_IDS)
def test_scan_equals_loop_bidirectional_no_bias_no_h0(cls):
    layer = cls(I, H, num_layers=2, bias=False, bidirectional=True, dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64)
    for lens in (None, LENGTHS):
        assert_same_run(
            run(layer, x, None, lens, impl="scan"),
            run(layer, x, None, lens, impl="loop"),
            torch.float64,
        )


@pytest.mark.parametrize("cls", CELLS, ids=CELL_IDS)
def test_non_positive_h0_is_exact(cls):
    """h0 enters the scan linearly, so zero and negative initial states need no fallback."""
    layer = cls(I, H, num_layers=2, dtype=torch.float64, chunk_size=4)
    x = torch.randn(T, B, I, dtype=torch.float64)
    for h0 in (random_state(layer, sign=-1.0), torch.zeros(2, B, H, dtype=torch.float64)):
        want = run(layer, x, h0, LENGTHS, impl="loop")
        assert_same_run(run(layer, x, h0, LENGTHS, impl="scan"), want, torch.float64)
        assert all(torch.isfinite(g).all() for g in want[2].values())


@pytest.mark.parametrize("impl", ["scan", "loop"])
@pytest.mark.parametrize("cls", CELLS, ids=CELL_IDS)
def test_gradcheck_layer(cls, impl):
    layer = cls(3, 2, num_layers=2, dtype=torch.float64, chunk_size=2)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = random_state(layer, batch=2).requires_grad_()
    names, params = zip(
        *[(n, p.detach().clone().requires_grad_()) for n, p in layer.named_parameters()]
    )
    lengths = torch.tensor([3, 5])

    def f(x, h0, *ps):
        out, h_n = functional_call(
            layer, dict(zip(names, ps)), (x, h0), {"lengths": lengths, "impl": impl}
        )
        return out, h_n

    assert torch.autograd.gradcheck(f, (x, h0, *params))


@pytest.mark.parametrize("impl", ["scan", "loop"])
@pytest.mark.parametrize("cls", CELLS, ids=CELL_IDS)
def test_pieces_with_carried_state_equal_the_whole(cls, impl):
    """One call on 300 steps == calls on 100, 17, 183 steps, each starting from the last h_n."""
    for dtype in DTYPES:
        layer = cls(I, H, num_layers=2, batch_first=True, dtype=dtype, impl=impl)
        x = torch.randn(B, 300, I, dtype=dtype)
        h0 = random_state(layer, dtype=dtype)
        with torch.no_grad():
            whole, h_whole = layer(x, h0)
            outs, h = [], h0
            for piece in x.split([100, 17, 183], dim=1):
                out, h = layer(piece, h)
                outs.append(out)
        close(torch.cat(outs, 1), whole, dtype, "output")
        close(h, h_whole, dtype, "h_n")


@pytest.mark.parametrize("with_h0", [False, True], ids=["zeros", "h0"])
@pytest.mark.parametrize("cls", CELLS, ids=CELL_IDS)
def test_step_equals_forward(cls, with_h0):
    layer = cls(I, H, num_layers=3, batch_first=True, dtype=torch.float64)
    x = torch.randn(B, T, I, dtype=torch.float64)
    h0 = random_state(layer) if with_h0 else None
    want, h_want = layer(x, h0, impl="scan")
    h, outs = h0, []
    for t in range(T):
        out, h = layer.step(x[:, t], h)
        outs.append(out)
    assert isinstance(h, torch.Tensor) and h.shape == (3, B, H)
    close(torch.stack(outs, 1), want, torch.float64)
    close(h, h_want, torch.float64)


# ---- lengths= --------------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("impl", ["scan", "loop"])
@pytest.mark.parametrize("cls", CELLS, ids=CELL_IDS)
def test_sequence_in_padded_batch_equals_sequence_alone(cls, impl, bidirectional):
    """Each row cut to its length and run alone; padding (NaN here) reaches nothing."""
    layer = cls(I, H, num_layers=2, bidirectional=bidirectional, dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = random_state(layer)
    for b, n in enumerate(LENGTHS):
        x[n:, b] = float("nan")
    out, h_n, grads = run(layer, x, h0, LENGTHS, impl=impl)
    assert all(torch.isfinite(g).all() for g in grads.values())
    for b, n in enumerate(LENGTHS):
        alone, h_alone = layer(x[:n, b : b + 1], h0[:, b : b + 1], impl=impl)
        close(out[:n, b : b + 1], alone.detach(), torch.float64)
        close(h_n[:, b : b + 1], h_alone.detach(), torch.float64)
        assert torch.equal(out[n:, b], torch.zeros_like(out[n:, b]))  # padding outputs zeros


def test_lengths_all_full_equals_no_lengths():
    layer = MinGRU(I, H, dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64)
    assert_same_run(run(layer, x, lengths=[T] * B), run(layer, x), torch.float64)


# ---- impl="auto" -------------------------------------------------------------------------------


def test_choose_impl():
    assert choose_impl(4096, 8, 64, grad=True) == "scan"  # B * H = 512, long
    assert choose_impl(128, 8, 64, grad=True) == "loop"  # B * H = 512, too short
    assert choose_impl(64, 2, 64, grad=True) == "scan"  # B * H = 128
    assert choose_impl(4096, 8, 256, grad=True) == "loop"  # B * H = 2048
    assert choose_impl(4096, 8, 64, grad=False) == "loop"
    assert choose_impl(64, 1, 64, grad=False) == "scan"
    assert choose_impl(63, 1, 16, grad=True) == choose_impl(63, 1, 16, grad=False) == "loop"


def test_auto_runs_what_it_chose(monkeypatch):
    calls = []
    real = log_scan

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr("rnnkit.minrnn.layers.log_scan", spy)
    layer = MinGRU(I, 16)  # B * H = 16: the scan, with or without autograd
    x = torch.randn(64, 1, I)
    out, _ = layer(x)
    assert len(calls) == 1
    assert_close(out, layer(x, impl="loop")[0], rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        layer(torch.randn(64, 8, I))  # B * H = 128 without autograd: the loop
    assert len(calls) == 1
    layer(torch.randn(64, 8, I))  # with autograd: the scan
    assert len(calls) == 2


# ---- the module: parameters, shapes, dropout ---------------------------------------------------


@pytest.mark.parametrize("cls,gates", [(MinGRU, 2), (MinLSTM, 3)], ids=CELL_IDS)
def test_parameters(cls, gates):
    layer = cls(I, H, num_layers=2, bidirectional=True)
    shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    assert shapes == {
        "weight_ih_l0": (gates * H, I),
        "bias_ih_l0": (gates * H,),
        "weight_ih_l0_reverse": (gates * H, I),
        "bias_ih_l0_reverse": (gates * H,),
        "weight_ih_l1": (gates * H, 2 * H),
        "bias_ih_l1": (gates * H,),
        "weight_ih_l1_reverse": (gates * H, 2 * H),
        "bias_ih_l1_reverse": (gates * H,),
    }
    assert [n for n, _ in cls(I, H, bias=False).named_parameters()] == ["weight_ih_l0"]
    out, h_n = layer(torch.randn(T, B, I))
    assert out.shape == (T, B, 2 * H) and h_n.shape == (4, B, H)


@pytest.mark.parametrize("cls", CELLS, ids=CELL_IDS)
def test_unbatched_equals_batch_of_one(cls):
    layer = cls(I, H, num_layers=2, dtype=torch.float64)
    x, h0 = torch.randn(T, I, dtype=torch.float64), torch.randn(2, H, dtype=torch.float64)
    out, h_n = layer(x, h0)
    out1, h1 = layer(x.unsqueeze(1), h0.unsqueeze(1))
    assert out.shape == (T, H) and h_n.shape == (2, H)
    close(out, out1.squeeze(1), torch.float64)
    close(h_n, h1.squeeze(1), torch.float64)


def test_dropout_between_layers():
    layer = MinGRU(I, H, num_layers=2, dropout=0.5)
    x = torch.randn(T, B, I)
    torch.manual_seed(3)
    a = layer(x)[0]
    torch.manual_seed(3)
    assert torch.equal(layer(x)[0], a)  # the same mask under the same seed
    assert not torch.equal(layer(x)[0], a)
    layer.eval()
    assert torch.equal(layer(x)[0], layer(x)[0])
    with pytest.warns(UserWarning, match="no effect with num_layers=1"):
        MinGRU(I, H, dropout=0.5)


def test_float64_module_and_to():
    layer = MinLSTM(I, H).to(torch.float64)
    out, _ = layer(torch.randn(T, B, I, dtype=torch.float64))
    assert out.dtype == torch.float64


# ---- errors --------------------------------------------------------------------------------------


def test_error_input():
    layer = MinGRU(I, H)
    with pytest.raises(ValueError, match=rf"3-D \(T, B, {I}\).*got shape \(2, {T}, {B}, {I}\)"):
        layer(torch.randn(2, T, B, I))
    with pytest.raises(ValueError, match=rf"got shape \({I},\)"):
        layer(torch.randn(I))
    with pytest.raises(ValueError, match=rf"input_size={I}, got {I + 2}"):
        layer(torch.randn(T, B, I + 2))
    with pytest.raises(TypeError, match="floating-point.*got dtype torch.int64"):
        layer(torch.ones(T, B, I, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.float64 does not match.*torch.float32"):
        layer(torch.randn(T, B, I, dtype=torch.float64))
    with pytest.raises(TypeError, match="not a PackedSequence"):
        layer(
            pack_padded_sequence(torch.randn(T, B, I), torch.tensor(LENGTHS), enforce_sorted=False)
        )
    with pytest.raises(ValueError, match="lengths= needs a batched"):
        layer(torch.randn(T, I), lengths=torch.tensor([T]))


def test_error_impl_and_chunk_size():
    with pytest.raises(ValueError, match=r"\('auto', 'scan', 'loop'\), got 'fast'"):
        MinGRU(I, H, impl="fast")
    with pytest.raises(ValueError, match=r"\('auto', 'scan', 'loop'\), got 'bptt'"):
        MinLSTM(I, H)(torch.randn(T, B, I), impl="bptt")
    with pytest.raises(ValueError, match="chunk_size must be a positive int or None, got 0"):
        MinGRU(I, H, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be a positive int or None, got float 8.0"):
        MinLSTM(I, H, chunk_size=8.0)


@pytest.mark.parametrize("bad", [0, T + 1])
def test_error_lengths_out_of_range(bad):
    with pytest.raises(ValueError, match=rf"\[1, {T}\].*got {bad}"):
        MinGRU(I, H)(torch.randn(T, B, I), lengths=torch.tensor([3, bad, 1, 2]))


def test_error_lengths_wrong_count_and_type():
    layer = MinGRU(I, H)
    with pytest.raises(ValueError, match=rf"\({B}\), got shape \({B - 1},\)"):
        layer(torch.randn(T, B, I), lengths=torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="integer.*got dtype torch.float32"):
        layer(torch.randn(T, B, I), lengths=torch.ones(B))


@pytest.mark.parametrize("cls", CELLS, ids=CELL_IDS)
def test_error_h0(cls):
    layer = cls(I, H, num_layers=2)
    x = torch.randn(T, B, I)
    with pytest.raises(
        ValueError, match=rf"hx must have shape \(2, {B}, {H}\), got \(1, {B}, {H}\)"
    ):
        layer(x, torch.zeros(1, B, H))
    with pytest.raises(ValueError, match=rf"\(2, {H}\), got \(2, {B}, {H}\)"):
        layer(x[:, 0], torch.zeros(2, B, H))
    with pytest.raises(TypeError, match="a minRNN state is h alone, no c.*got tuple"):
        layer(x, (torch.zeros(2, B, H), torch.zeros(2, B, H)))
    with pytest.raises(TypeError, match="hx must be torch.float32.*got torch.float64"):
        layer(x, torch.zeros(2, B, H, dtype=torch.float64))


def test_error_step():
    layer = MinGRU(I, H)
    with pytest.raises(ValueError, match=rf"\(B, {I}\), got \({T}, {B}, {I}\)"):
        layer.step(torch.randn(T, B, I))
    with pytest.raises(ValueError, match="bidirectional"):
        MinGRU(I, H, bidirectional=True).step(torch.randn(B, I))


def test_error_constructor():
    with pytest.raises(ValueError, match="hidden_size must be > 0, got 0"):
        MinGRU(I, 0)
    with pytest.raises(TypeError, match="num_layers must be an int, got str '2'"):
        MinLSTM(I, H, "2")
    with pytest.raises(ValueError, match=r"dropout must be a float in \[0, 1\], got 1.5"):
        MinGRU(I, H, dropout=1.5)
    with pytest.raises(TypeError, match="bidirectional must be a bool, got 1"):
        MinGRU(I, H, bidirectional=1)


# ---- the task models' calls (registered here by monkeypatch) -------------------------------------


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(core_layers.LAYERS, "mingru", MinGRU)
    monkeypatch.setitem(core_layers.LAYERS, "minlstm", MinLSTM)


@pytest.mark.parametrize("cell", CELL_IDS)
def test_char_lm_trains_and_steps(registered, cell):
    from rnnkit.textgen.model import CharLM

    model = CharLM(11, cell=cell, hidden=8, layers=2, dropout=0.1)
    ids = torch.randint(0, 11, (2, 12))
    _, loss = model(ids, ids)
    loss.backward()
    _, loss2 = model(ids, ids)  # from the carried state
    assert torch.isfinite(loss2)
    model.eval()
    with torch.no_grad():
        logits, state = model.run(ids)
        s, outs = None, []
        for t in range(12):
            out, s = model.step(ids[:, t], s)
            outs.append(out)
    assert_close(torch.stack(outs, 1), logits, rtol=1e-4, atol=1e-4)
    assert_close(s[0], state[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_classifier_bidirectional_with_lengths(registered, pooling):
    from rnnkit.classify.model import SequenceClassifier

    model = SequenceClassifier(
        9, 3, cell="minlstm", hidden=6, layers=2, bidirectional=True, pooling=pooling
    )
    ids = torch.randint(1, 9, (4, 10))
    lengths = torch.tensor([10, 3, 7, 1])
    _, loss = model((ids, lengths), torch.tensor([0, 1, 2, 1]))
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("arch", ["direct", "seq2seq"])
def test_forecaster(registered, arch):
    from rnnkit.forecast.model import Forecaster

    model = Forecaster(2, 4, cell="mingru", hidden=6, layers=2, arch=arch)
    y = torch.randn(3, 12, 2)
    empty = torch.zeros(3, 12, 0)
    out, loss = model((y, empty, torch.zeros(3, 16, 0)), torch.randn(3, 4, 2))
    loss.backward()
    assert out.shape == (3, 4, 2)
