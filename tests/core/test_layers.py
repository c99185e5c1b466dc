"""RNN, LSTM and GRU layers: agreement with torch.nn, impl="loop", lengths=, stepping, errors."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from torch.testing import assert_close

import rnnkit

T, B, I, H = 5, 4, 3, 4
LENGTHS = [3, 5, 1, 3]  # unsorted, with a tie, longest == T
SHORT_LENGTHS = [2, 4, 1, 4]  # longest < T
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}

# (id, rnnkit class, torch.nn class, extra constructor kwargs)
MODES = [
    ("rnn_tanh", rnnkit.RNN, nn.RNN, {"nonlinearity": "tanh"}),
    ("rnn_relu", rnnkit.RNN, nn.RNN, {"nonlinearity": "relu"}),
    ("lstm", rnnkit.LSTM, nn.LSTM, {}),
    ("gru", rnnkit.GRU, nn.GRU, {}),
]
MODE_IDS = [m[0] for m in MODES]
MODE_BY_ID = {m[0]: m for m in MODES}


def make(mode_id, which, **kw):
    _, ours, theirs, extra = MODE_BY_ID[mode_id]
    cls = ours if which == "ours" else theirs
    return cls(I, H, **extra, **kw)


def close(got, want, dtype, msg=""):
    tol = TOL[dtype]
    assert_close(got, want, atol=tol, rtol=tol, msg=msg)


def random_inputs(mode_id, layer, dtype, batched=True, batch=B, steps=T):
    """(x, hx) for a layer; x follows its batch_first, hx is h0 or (h0, c0)."""
    LD = layer.num_layers * (2 if layer.bidirectional else 1)
    if batched:
        shape = (batch, steps, I) if layer.batch_first else (steps, batch, I)
        sshape = (LD, batch, H)
    else:
        shape, sshape = (steps, I), (LD, H)
    x = torch.randn(*shape, dtype=dtype)
    h0 = torch.randn(*sshape, dtype=dtype) * 0.5
    if mode_id == "lstm":
        return x, (h0, torch.randn(*sshape, dtype=dtype) * 0.5)
    return x, h0


def _states(hx):
    return list(hx) if isinstance(hx, tuple) else [hx]


def _rows(hx, index):
    """hx (h0 or (h0, c0)) restricted to the batch rows `index` (a slice or index tensor)."""
    if isinstance(hx, tuple):
        return tuple(s[:, index] for s in hx)
    return hx[:, index]


def run_layer(layer, x, hx, lengths=None, torch_packed=False, **call_kw):
    """Forward + backward with fresh leaves.

    lengths: None, or a list given as `lengths=` (rnnkit) or, with torch_packed, packed with
    pack_padded_sequence(enforce_sorted=False) and unpacked to the input's T (torch.nn).
    Returns (out, [states], {name: grad}) where out is padded (zeros on padding) and the
    grads cover the input, h0 (, c0) and every parameter by name.
    """
    x = x.detach().clone().requires_grad_()
    states = [s.detach().clone().requires_grad_() for s in _states(hx)]
    hx_in = tuple(states) if len(states) == 2 else states[0]
    if lengths is None:
        out, hn = layer(x, hx_in, **call_kw)
    elif torch_packed:
        packed = pack_padded_sequence(
            x, torch.tensor(lengths), batch_first=layer.batch_first, enforce_sorted=False
        )
        out, hn = layer(packed, hx_in, **call_kw)
        total = x.shape[1] if layer.batch_first else x.shape[0]
        out, _ = pad_packed_sequence(out, batch_first=layer.batch_first, total_length=total)
    else:
        out, hn = layer(x, hx_in, lengths=torch.tensor(lengths), **call_kw)
    hn = _states(hn)
    gen = torch.Generator().manual_seed(1234)  # the same loss weights for every layer
    loss_weights = [torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in [out, *hn]]
    loss = sum((t * w).sum() for t, w in zip([out, *hn], loss_weights, strict=True))
    params = dict(layer.named_parameters())
    leaves = [x, *states, *params.values()]
    grads = torch.autograd.grad(loss, leaves)
    names = ["input", "h0", "c0"][: 1 + len(states)] + list(params)
    return out.detach(), [s.detach() for s in hn], dict(zip(names, grads, strict=True))


def assert_same_run(got, want, dtype):
    (out_g, st_g, gr_g), (out_w, st_w, gr_w) = got, want
    assert out_g.shape == out_w.shape
    close(out_g, out_w, dtype, "output")
    assert len(st_g) == len(st_w)
    for k, (a, b) in enumerate(zip(st_g, st_w, strict=True)):
        assert a.shape == b.shape
        close(a, b, dtype, f"state {k}")
    assert list(gr_g) == list(gr_w)
    for name in gr_w:
        close(gr_g[name], gr_w[name], dtype, f"grad {name}")


# ---- the grid against torch.nn ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("lengths", ["equal", "lengths"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tb", "bf"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_layer_matches_torch(mode_id, num_layers, bidirectional, batch_first, lengths, dtype):
    kw = {
        "num_layers": num_layers,
        "bidirectional": bidirectional,
        "batch_first": batch_first,
        "dtype": dtype,
    }
    lens = LENGTHS if lengths == "lengths" else None
    # torch.nn -> rnnkit, then rnnkit -> torch.nn (fresh random weights each way)
    for direction in ("theirs_to_ours", "ours_to_theirs"):
        ours, theirs = make(mode_id, "ours", **kw), make(mode_id, "theirs", **kw)
        if direction == "theirs_to_ours":
            ours.load_state_dict(theirs.state_dict())
        else:
            theirs.load_state_dict(ours.state_dict())
        x, hx = random_inputs(mode_id, ours, dtype)
        got = run_layer(ours, x, hx, lens)
        want = run_layer(theirs, x, hx, lens, torch_packed=True)
        assert_same_run(got, want, dtype)
        if lens is not None:  # padding is zero
            mask = torch.arange(T).unsqueeze(1) < torch.tensor(lens)  # (T, B)
            if batch_first:
                mask = mask.t()
            assert torch.equal(got[0][~mask], torch.zeros_like(got[0][~mask]))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_layer_matches_torch_short_lengths_and_no_bias(mode_id, bias):
    """Longest length < T, bidirectional, 2 layers, bias on/off."""
    kw = {"num_layers": 2, "bidirectional": True, "bias": bias, "dtype": torch.float64}
    ours, theirs = make(mode_id, "ours", **kw), make(mode_id, "theirs", **kw)
    ours.load_state_dict(theirs.state_dict())
    x, hx = random_inputs(mode_id, ours, torch.float64)
    got = run_layer(ours, x, hx, SHORT_LENGTHS)
    want = run_layer(theirs, x, hx, SHORT_LENGTHS, torch_packed=True)
    assert_same_run(got, want, torch.float64)


@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_layer_matches_torch_at_sizes_using_onednn(mode_id):
    """float32 sizes large enough for bptt/gemm.py's oneDNN path (>= gemm.MIN_FLOPS per product)."""
    Tl, Bl, Il, Hl = 3, 64, 64, 256
    _, ours_cls, theirs_cls, extra = MODE_BY_ID[mode_id]
    theirs = theirs_cls(Il, Hl, **extra)
    ours = ours_cls(Il, Hl, **extra)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(Tl, Bl, Il)
    lens = torch.randint(1, Tl + 1, (Bl,)).tolist()
    hx = torch.randn(1, Bl, Hl) * 0.5
    hx = (hx, torch.randn(1, Bl, Hl) * 0.5) if mode_id == "lstm" else hx
    for lengths in (None, lens):
        got = run_layer(ours, x, hx, lengths)
        want = run_layer(theirs, x, hx, lengths, torch_packed=True)
        (out_g, st_g, gr_g), (out_w, st_w, gr_w) = got, want
        assert_close(out_g, out_w, atol=1e-4, rtol=1e-4)
        for a, b in zip(st_g, st_w, strict=True):
            assert_close(a, b, atol=1e-4, rtol=1e-4)
        for name in gr_w:
            assert_close(gr_g[name], gr_w[name], atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("enforce_sorted", [False, True], ids=["unsorted", "sorted"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tb", "bf"])
@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_packed_sequence_in_packed_sequence_out(mode_id, batch_first, enforce_sorted):
    kw = {"num_layers": 2, "bidirectional": True, "batch_first": batch_first}
    kw["dtype"] = torch.float64
    ours, theirs = make(mode_id, "ours", **kw), make(mode_id, "theirs", **kw)
    ours.load_state_dict(theirs.state_dict())
    x, hx = random_inputs(mode_id, ours, torch.float64)
    lens = sorted(LENGTHS, reverse=True) if enforce_sorted else LENGTHS
    results = []
    for layer in (ours, theirs):
        xl = x.detach().clone().requires_grad_()
        pack = pack_padded_sequence(
            xl, torch.tensor(lens), batch_first=batch_first, enforce_sorted=enforce_sorted
        )
        out, hn = layer(pack, hx)
        assert isinstance(out, PackedSequence)
        (gx,) = torch.autograd.grad(
            (out.data * torch.arange(out.data.numel()).view_as(out.data)).sum(), xl
        )
        results.append((out, _states(hn), gx))
    (po, ps, pg), (to, ts, tg) = results
    assert_close(po.data, to.data, atol=1e-10, rtol=1e-10)
    assert torch.equal(po.batch_sizes, to.batch_sizes)
    for a, b in (
        (po.sorted_indices, to.sorted_indices),
        (po.unsorted_indices, to.unsorted_indices),
    ):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.equal(a, b)
    for a, b in zip(ps, ts, strict=True):
        assert_close(a, b, atol=1e-10, rtol=1e-10)
    assert_close(pg, tg, atol=1e-10, rtol=1e-10)


def test_packed_sequence_and_lengths_together_is_an_error():
    layer = rnnkit.GRU(I, H)
    pack = pack_padded_sequence(torch.randn(T, B, I), torch.tensor(LENGTHS), enforce_sorted=False)
    with pytest.raises(ValueError, match="not both"):
        layer(pack, lengths=torch.tensor(LENGTHS))


# ---- impl="loop" vs impl="bptt" -----------------------------------------------------------


@pytest.mark.parametrize("lengths", [None, LENGTHS, SHORT_LENGTHS], ids=["equal", "len", "short"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_loop_equals_bptt(mode_id, bidirectional, lengths):
    kw = {"num_layers": 2, "bidirectional": bidirectional, "dtype": torch.float64}
    fast = make(mode_id, "ours", **kw)
    slow = make(mode_id, "ours", impl="loop", **kw)
    slow.load_state_dict(fast.state_dict())
    assert fast.impl == "auto" and slow.impl == "loop"  # "auto" is "bptt" on the CPU
    x, hx = random_inputs(mode_id, fast, torch.float64)
    want = run_layer(fast, x, hx, lengths)
    assert_same_run(run_layer(slow, x, hx, lengths), want, torch.float64)  # constructor
    assert_same_run(run_layer(fast, x, hx, lengths, impl="loop"), want, torch.float64)  # per call
    assert_same_run(run_layer(slow, x, hx, lengths, impl="bptt"), want, torch.float64)


# ---- lengths= semantics -------------------------------------------------------------------


def _valid_mask(lengths, batch_first=False):
    mask = torch.arange(T).unsqueeze(1) < torch.tensor(lengths)  # (T, B)
    return mask.t() if batch_first else mask


@pytest.mark.parametrize("impl", ["bptt", "loop"])
@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_padding_is_ignored(mode_id, impl):
    layer = make(mode_id, "ours", num_layers=2, bidirectional=True, batch_first=True, impl=impl)
    layer = layer.double()
    x, hx = random_inputs(mode_id, layer, torch.float64)
    mask = _valid_mask(SHORT_LENGTHS, batch_first=True)  # (B, T)
    noisy = x.clone()
    noisy[~mask] = 1e3 * torch.randn(int((~mask).sum()), I, dtype=torch.float64)
    clean = x.clone()
    clean[~mask] = 0
    a = run_layer(layer, noisy, hx, SHORT_LENGTHS)
    b = run_layer(layer, clean, hx, SHORT_LENGTHS)
    assert torch.equal(a[0][~mask], torch.zeros_like(a[0][~mask]))  # exactly zero
    assert torch.isfinite(a[0]).all()
    assert_same_run(a, b, torch.float64)
    # no gradient flows into the padding
    assert torch.equal(a[2]["input"][~mask], torch.zeros_like(a[2]["input"][~mask]))


@pytest.mark.parametrize("impl", ["bptt", "loop"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_sequence_in_batch_equals_sequence_alone(mode_id, bidirectional, impl):
    layer = make(mode_id, "ours", num_layers=2, bidirectional=bidirectional, impl=impl).double()
    x, hx = random_inputs(mode_id, layer, torch.float64)
    out, hn = layer(x, hx, lengths=torch.tensor(SHORT_LENGTHS))
    hn = _states(hn)
    for i, n in enumerate(SHORT_LENGTHS):
        alone_out, alone_hn = layer(x[:n, i : i + 1], _rows(hx, slice(i, i + 1)))
        assert_close(out[:n, i : i + 1], alone_out, atol=1e-10, rtol=1e-10)
        for a, b in zip(hn, _states(alone_hn), strict=True):
            assert_close(a[:, i : i + 1], b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_lengths_order_is_free(mode_id):
    """Permuting the rows (and their lengths) permutes the results."""
    layer = make(mode_id, "ours", bidirectional=True, dtype=torch.float64)
    x, hx = random_inputs(mode_id, layer, torch.float64)
    perm = torch.tensor([2, 0, 3, 1])
    out, hn = layer(x, hx, lengths=torch.tensor(LENGTHS))
    out_p, hn_p = layer(x[:, perm], _rows(hx, perm), lengths=torch.tensor(LENGTHS)[perm])
    assert_close(out_p, out[:, perm], atol=1e-12, rtol=1e-12)
    for a, b in zip(_states(hn_p), _states(hn), strict=True):
        assert_close(a, b[:, perm], atol=1e-12, rtol=1e-12)
    # descending, ascending and unsorted lengths all agree with running without lengths
    for lens in ([5, 5, 5, 5], [5, 4, 2, 1], [1, 2, 4, 5]):
        got, _ = layer(x, hx, lengths=torch.tensor(lens))
        for i, n in enumerate(lens):
            alone, _ = layer(x[:n, i : i + 1], _rows(hx, slice(i, i + 1)))
            assert_close(got[:n, i : i + 1], alone, atol=1e-10, rtol=1e-10)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_lengths_forms(mode_id, device):
    """Tensor on the input's device, int32, list and tuple all give the same result."""
    layer = make(mode_id, "ours", bidirectional=True, dtype=torch.float64).to(device)
    x, hx = random_inputs(mode_id, layer, torch.float64)
    x = x.to(device)
    hx = tuple(s.to(device) for s in hx) if isinstance(hx, tuple) else hx.to(device)
    want_out, want_hn = layer(x, hx, lengths=torch.tensor(LENGTHS))
    forms = [
        torch.tensor(LENGTHS, device=device),
        torch.tensor(LENGTHS, dtype=torch.int32, device=device),
        list(LENGTHS),
        tuple(LENGTHS),
    ]
    for lens in forms:
        out, hn = layer(x, hx, lengths=lens)
        assert out.device == x.device
        assert_close(out, want_out, atol=0, rtol=0)
        for a, b in zip(_states(hn), _states(want_hn), strict=True):
            assert_close(a, b, atol=0, rtol=0)
    mask = _valid_mask(LENGTHS).to(device)
    assert torch.equal(want_out[~mask], torch.zeros_like(want_out[~mask]))


# ---- the founding notes' PyTorch example ---------------------------------------------------


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = rnnkit.RNN(input_size=10, hidden_size=20, batch_first=True)
        self.fc = nn.Linear(20, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1, :])


def test_founding_example_trains():
    model = Model()
    x = torch.randn(32, 5, 10)
    y = torch.randint(0, 2, (32,))
    assert model(x).shape == (32, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(loss_fn(model(x), y).item())
    assert losses[-1] < losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))


# ---- stepping API -------------------------------------------------------------------------


@pytest.mark.parametrize("with_hx", [False, True], ids=["zeros", "hx"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_step_equals_forward(mode_id, num_layers, with_hx):
    layer = make(mode_id, "ours", num_layers=num_layers, dtype=torch.float64)
    x, hx = random_inputs(mode_id, layer, torch.float64)
    hx = hx if with_hx else None
    want_out, want_state = layer(x, hx)
    state, outs = hx, []
    for t in range(T):
        y, state = layer.step(x[t], state)
        assert y.shape == (B, H)
        outs.append(y)
    assert_close(torch.stack(outs), want_out, atol=1e-12, rtol=1e-12)
    for a, b in zip(_states(state), _states(want_state), strict=True):
        assert a.shape == b.shape
        assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_lstm_no_grad_step_equals_forward(dtype, tol):
    """Without autograd the LSTM's step runs in one C++ call (bptt.lstm_step) where the C++
    loops are built; it agrees with the sequence kernel."""
    layer = make("lstm", "ours", num_layers=2, dtype=dtype)
    x, hx = random_inputs("lstm", layer, dtype)
    with torch.no_grad():
        want_out, want_state = layer(x, hx)
        state, outs = hx, []
        for t in range(T):
            y, state = layer.step(x[t], state)
            outs.append(y)
    assert_close(torch.stack(outs), want_out, atol=tol, rtol=tol)
    for a, b in zip(_states(state), _states(want_state), strict=True):
        assert_close(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_bidirectional_step_raises(mode_id):
    layer = make(mode_id, "ours", bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        layer.step(torch.randn(B, I))


def test_step_rejects_a_sequence():
    layer = rnnkit.GRU(I, H)
    with pytest.raises(ValueError, match=rf"\(B, {I}\), got \({T}, {B}, {I}\)"):
        layer.step(torch.randn(T, B, I))


# ---- unbatched input ----------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_unbatched_matches_torch(mode_id, bidirectional):
    kw = {"num_layers": 2, "bidirectional": bidirectional, "dtype": torch.float64}
    ours, theirs = make(mode_id, "ours", **kw), make(mode_id, "theirs", **kw)
    ours.load_state_dict(theirs.state_dict())
    x, hx = random_inputs(mode_id, ours, torch.float64, batched=False)
    got, want = run_layer(ours, x, hx), run_layer(theirs, x, hx)
    D = 2 if bidirectional else 1
    assert got[0].shape == (T, D * H)
    assert all(s.shape == (2 * D, H) for s in got[1])
    assert_same_run(got, want, torch.float64)
    # and without hx
    out, _ = ours(x)
    ref, _ = theirs(x)
    assert_close(out, ref, atol=1e-10, rtol=1e-10)


# ---- errors -------------------------------------------------------------------------------


def test_error_wrong_input_rank():
    layer = rnnkit.RNN(I, H)
    with pytest.raises(ValueError, match=rf"3-D \(T, B, {I}\).*got shape \(2, {T}, {B}, {I}\)"):
        layer(torch.randn(2, T, B, I))
    with pytest.raises(ValueError, match=rf"got shape \({I},\)"):
        layer(torch.randn(I))


def test_error_wrong_feature_size():
    layer = rnnkit.LSTM(I, H)
    with pytest.raises(ValueError, match=rf"input_size={I}, got {I + 2}"):
        layer(torch.randn(T, B, I + 2))


@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_error_h0_wrong_shape(mode_id):
    layer = make(mode_id, "ours", num_layers=2)
    x = torch.randn(T, B, I)
    bad_h = torch.randn(1, B, H)
    good_h = torch.randn(2, B, H)
    hx = (bad_h, good_h) if mode_id == "lstm" else bad_h
    with pytest.raises(ValueError, match=rf"\(2, {B}, {H}\), got \(1, {B}, {H}\)"):
        layer(x, hx)
    if mode_id == "lstm":
        with pytest.raises(ValueError, match=rf"c_0.*\(2, {B}, {H}\), got \(2, {B}, {H + 1}\)"):
            layer(x, (good_h, torch.randn(2, B, H + 1)))
    # unbatched input with a batched hx
    with pytest.raises(ValueError, match=rf"\(2, {H}\), got \(2, {B}, {H}\)"):
        layer(torch.randn(T, I), (good_h, good_h) if mode_id == "lstm" else good_h)


@pytest.mark.parametrize("bad", [0, T + 1])
def test_error_lengths_out_of_range(bad):
    layer = rnnkit.GRU(I, H)
    lengths = torch.tensor([T, bad, 1, 2])
    with pytest.raises(ValueError, match=rf"\[1, {T}\].*got {bad}"):
        layer(torch.randn(T, B, I), lengths=lengths)
    with pytest.raises(ValueError, match=rf"\[1, {T}\].*got {bad}"):
        layer(torch.randn(T, B, I), lengths=lengths.tolist(), impl="loop")


def test_error_lengths_wrong_count():
    layer = rnnkit.RNN(I, H)
    with pytest.raises(ValueError, match=rf"\({B}\), got shape \({B - 1},\)"):
        layer(torch.randn(T, B, I), lengths=torch.tensor([1] * (B - 1)))
    with pytest.raises(ValueError, match=rf"\({B}\), got shape \({B}, 1\)"):
        layer(torch.randn(T, B, I), lengths=torch.ones(B, 1, dtype=torch.int64))


def test_error_float_lengths():
    layer = rnnkit.LSTM(I, H)
    with pytest.raises(TypeError, match="integer.*got dtype torch.float32"):
        layer(torch.randn(T, B, I), lengths=torch.tensor([1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(TypeError, match=r"integers, got \[1.0, 2, 3, 4\]"):
        layer(torch.randn(T, B, I), lengths=[1.0, 2, 3, 4])


def test_error_integer_input():
    layer = rnnkit.RNN(I, H)
    with pytest.raises(TypeError, match="floating-point.*got dtype torch.int64"):
        layer(torch.ones(T, B, I, dtype=torch.int64))


def test_error_dtype_mismatch():
    layer = rnnkit.RNN(I, H)
    with pytest.raises(TypeError, match="torch.float64.*torch.float32"):
        layer(torch.randn(T, B, I, dtype=torch.float64))


def test_error_unknown_nonlinearity():
    with pytest.raises(ValueError, match=r"\('tanh', 'relu'\), got 'gelu'"):
        rnnkit.RNN(I, H, nonlinearity="gelu")


def test_error_unknown_impl():
    with pytest.raises(ValueError, match=r"\('auto', 'bptt', 'fused', 'loop'\), got 'fast'"):
        rnnkit.LSTM(I, H, impl="fast")
    layer = rnnkit.LSTM(I, H)
    with pytest.raises(ValueError, match=r"\('auto', 'bptt', 'fused', 'loop'\), got 'fast'"):
        layer(torch.randn(T, B, I), impl="fast")


@pytest.mark.parametrize("cls", [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU])
def test_error_bad_hidden_size(cls):
    with pytest.raises(ValueError, match="hidden_size must be > 0, got 0"):
        cls(I, 0)
    with pytest.raises(TypeError, match="hidden_size must be an int, got str '3'"):
        cls(I, "3")
    with pytest.raises(ValueError, match="input_size must be > 0, got -1"):
        cls(-1, H)


# ---- dtypes, state_dict, torch utilities ---------------------------------------------------


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_state_dict_keys_match_torch(mode_id, bidirectional, bias):
    kw = {"num_layers": 3, "bidirectional": bidirectional, "bias": bias}
    ours, theirs = make(mode_id, "ours", **kw), make(mode_id, "theirs", **kw)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    assert any(k.endswith("_reverse") for k in ours_sd) == bidirectional
    for key in theirs_sd:
        assert ours_sd[key].shape == theirs_sd[key].shape, key


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_dtypes(mode_id, dtype):
    layer = make(mode_id, "ours", dtype=dtype)
    assert all(p.dtype == dtype for p in layer.parameters())
    x, hx = random_inputs(mode_id, layer, dtype)
    out, hn = layer(x, hx, lengths=torch.tensor(LENGTHS))
    assert out.dtype == dtype and all(s.dtype == dtype for s in _states(hn))
    out.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == dtype for p in layer.parameters())


@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_to_float64(mode_id):
    layer = make(mode_id, "ours", num_layers=2, bidirectional=True)
    x, hx = random_inputs(mode_id, layer, torch.float32)
    out32, _ = layer(x, hx)
    assert layer.to(torch.float64) is layer
    assert all(p.dtype == torch.float64 for p in layer.parameters())
    x64 = x.double()
    hx64 = tuple(s.double() for s in hx) if isinstance(hx, tuple) else hx.double()
    out64, _ = layer(x64, hx64)
    assert out64.dtype == torch.float64
    assert_close(out64.float(), out32, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_clip_grad_norm(mode_id):
    layer = make(mode_id, "ours", num_layers=2, bidirectional=True, dtype=torch.float64)
    x, hx = random_inputs(mode_id, layer, torch.float64)
    out, _ = layer(x, hx, lengths=torch.tensor(LENGTHS))
    (out**2).sum().backward()
    norm = torch.sqrt(sum((p.grad**2).sum() for p in layer.parameters()))
    assert norm > 0.2
    total = nn.utils.clip_grad_norm_(layer.parameters(), max_norm=0.1)
    assert_close(total, norm, atol=1e-10, rtol=1e-10)
    clipped = torch.sqrt(sum((p.grad**2).sum() for p in layer.parameters()))
    assert_close(clipped, torch.tensor(0.1, dtype=torch.float64), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("impl", ["bptt", "loop"])
@pytest.mark.parametrize("mode_id", MODE_IDS)
def test_gradients_accumulate_over_backward_passes(mode_id, impl):
    """Two backward passes leave exactly twice one pass's .grad in every parameter."""
    layer = make(mode_id, "ours", dtype=torch.float64, impl=impl)
    x, hx = random_inputs(mode_id, layer, torch.float64)
    w = torch.randn(T, B, H, dtype=torch.float64)
    (layer(x, hx)[0] * w).sum().backward()
    once = {n: p.grad.clone() for n, p in layer.named_parameters()}
    (layer(x, hx)[0] * w).sum().backward()
    for n, p in layer.named_parameters():
        assert_close(p.grad, 2 * once[n], atol=1e-12, rtol=1e-12, msg=n)
    # and each parameter owns its .grad (no two share storage)
    ptrs = [p.grad.data_ptr() for p in layer.parameters()]
    assert len(set(ptrs)) == len(ptrs)
