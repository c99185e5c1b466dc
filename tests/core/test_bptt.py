"""The hand-written BPTT kernels: gradcheck, and agreement with autograd over functional steps."""

import pytest
import torch
from torch.testing import assert_close

from rnnkit import functional as F
from rnnkit.bptt import GRUFunction, LSTMFunction, RNNFunction

pytestmark = pytest.mark.usefixtures("both_loops")  # C++ and Python loops

KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
B, I, H = 3, 2, 4
RAGGED = {1: (3,), 5: (3, 3, 2, 1, 1)}  # T -> batch_sizes with B = 3
DT = torch.float64


def kernel(kind, x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes):
    """(out, h_n, c_n or None) from the kernel under test."""
    if kind == "lstm":
        return LSTMFunction.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes)
    if kind == "gru":
        return (*GRUFunction.apply(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes), None)
    nl = kind.split("_")[1]
    return (*RNNFunction.apply(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, nl), None)


def reference(kind, x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes, return_preact=False):
    """The functional step looped under autograd; padded steps keep the state, output 0."""
    T, nb = x.shape[0], x.shape[1]
    bs = batch_sizes if batch_sizes is not None else (nb,) * T
    h, c, outs, preacts = h0, c0, [], []
    for t in range(T):
        valid = (torch.arange(nb) < bs[t]).unsqueeze(1)  # (B, 1)
        if kind == "lstm":
            h_new, c_new = F.lstm_step(x[t], (h, c), w_ih, w_hh, b_ih, b_hh)
            c = torch.where(valid, c_new, c)
        elif kind == "gru":
            h_new = F.gru_step(x[t], h, w_ih, w_hh, b_ih, b_hh)
        else:
            h_new = F.rnn_step(x[t], h, w_ih, w_hh, b_ih, b_hh, kind.split("_")[1])
            if return_preact:
                z = torch.nn.functional.linear(x[t], w_ih, b_ih)
                z = z + torch.nn.functional.linear(h, w_hh, b_hh)
                preacts.append(z[: bs[t]])
        h = torch.where(valid, h_new, h)
        outs.append(torch.where(valid, h_new, torch.zeros_like(h_new)))
    if return_preact:
        return preacts
    return torch.stack(outs), h, (c if kind == "lstm" else None)


def make_inputs(kind, T, bias, batch_sizes, seed=0):
    """Random float64 inputs [x, h0, c0, w_ih, w_hh, b_ih, b_hh] (c0/biases may be None).

    For relu, the seed is advanced until every valid pre-activation is at least 1e-2 from 0,
    so that finite differences never straddle the kink.
    """
    G = GATES[kind]
    while True:
        gen = torch.Generator().manual_seed(seed)

        def rand(*shape, scale=1.0, gen=gen):
            return (torch.rand(*shape, generator=gen, dtype=DT) * 2 - 1) * scale

        args = [
            rand(T, B, I),
            rand(B, H),
            rand(B, H) if kind == "lstm" else None,
            rand(G * H, I, scale=0.8),
            rand(G * H, H, scale=0.8),
            rand(G * H, scale=0.5) if bias else None,
            rand(G * H, scale=0.5) if bias else None,
        ]
        if kind != "rnn_relu":
            return args
        with torch.no_grad():
            z = reference(kind, *args, batch_sizes, return_preact=True)
        if min(p.abs().min().item() for p in z) > 1e-2:
            return args
        seed += 1000


def _bias_id(bias):
    return "bias" if bias else "nobias"


@pytest.mark.parametrize("bias", [True, False], ids=_bias_id)
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("T", [1, 5])
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck(kind, T, ragged, bias):
    batch_sizes = RAGGED[T] if ragged else None
    args = make_inputs(kind, T, bias, batch_sizes)
    args = [a.requires_grad_() if a is not None else None for a in args]

    def fn(*a):
        out, h_n, c_n = kernel(kind, *a, batch_sizes)
        return (out, h_n) if c_n is None else (out, h_n, c_n)

    assert torch.autograd.gradcheck(fn, tuple(args), eps=1e-6, atol=1e-6, rtol=1e-4)


ARG_NAMES = ["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"]
LOSSES = ["all", "state_only", "output_only"]
RAGGED_CASES = {"full": None, "ragged": (3, 3, 2, 1, 1), "explicit_full": (3,) * 5}


def _loss(out, h_n, c_n, which, weights):
    w_out, w_h, w_c = weights
    terms = []
    if which in ("all", "output_only"):
        terms.append((out * w_out).sum())
    if which in ("all", "state_only"):
        terms.append((h_n * w_h).sum())
        if c_n is not None:
            terms.append((c_n * w_c).sum())
    return sum(terms)


@pytest.mark.parametrize("bias", [True, False], ids=_bias_id)
@pytest.mark.parametrize("which", LOSSES)
@pytest.mark.parametrize("case", list(RAGGED_CASES))
@pytest.mark.parametrize("kind", KINDS)
def test_kernel_matches_autograd_reference(kind, case, which, bias):
    T = 5
    batch_sizes = RAGGED_CASES[case]
    args = make_inputs(kind, T, bias, batch_sizes, seed=1)
    leaves = [a.requires_grad_() if a is not None else None for a in args]
    weights = (torch.randn(T, B, H, dtype=DT), torch.randn(B, H, dtype=DT))
    weights = (*weights, torch.randn(B, H, dtype=DT))

    got = kernel(kind, *leaves, batch_sizes)
    want = reference(kind, *leaves, batch_sizes)
    names = ["out", "h_n", "c_n"]
    for name, g, w in zip(names, got, want, strict=True):
        if w is None:
            assert g is None, name
            continue
        assert g.shape == w.shape, name
        assert_close(g, w, atol=1e-10, rtol=1e-10, msg=name)
    # padded outputs are exactly zero
    if batch_sizes is not None:
        for t, bt in enumerate(batch_sizes):
            assert torch.equal(got[0][t, bt:], torch.zeros_like(got[0][t, bt:]))

    named = [(n, a) for n, a in zip(ARG_NAMES, leaves, strict=True) if a is not None]
    inputs = [a for _, a in named]
    g_got = torch.autograd.grad(_loss(*got, which, weights), inputs, allow_unused=True)
    g_want = torch.autograd.grad(_loss(*want, which, weights), inputs, allow_unused=True)
    for (name, a), g, w in zip(named, g_got, g_want, strict=True):
        assert g is not None, name  # the kernel returns a gradient for every input
        w = torch.zeros_like(a) if w is None else w  # the reference may not reach some
        assert_close(g, w, atol=1e-10, rtol=1e-10, msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_kernel_matches_reference_with_one_input_requiring_grad(kind):
    """needs_input_grad masks: each input alone still gets the right gradient."""
    T, batch_sizes = 5, RAGGED[5]
    args = make_inputs(kind, T, True, batch_sizes, seed=2)
    weights = (torch.randn(T, B, H, dtype=DT), torch.randn(B, H, dtype=DT))
    weights = (*weights, torch.randn(B, H, dtype=DT))
    for index, arg in enumerate(args):
        if arg is None:
            continue
        leaves = [a.detach().clone() if a is not None else None for a in args]
        leaves[index].requires_grad_()
        (g_got,) = torch.autograd.grad(
            _loss(*kernel(kind, *leaves, batch_sizes), "all", weights), leaves[index]
        )
        (g_want,) = torch.autograd.grad(
            _loss(*reference(kind, *leaves, batch_sizes), "all", weights), leaves[index]
        )
        assert_close(g_got, g_want, atol=1e-10, rtol=1e-10, msg=f"input {index}")


@pytest.mark.parametrize("kind", KINDS)
def test_kernel_leaves_its_inputs_unchanged(kind):
    T, batch_sizes = 5, RAGGED[5]
    args = make_inputs(kind, T, True, batch_sizes, seed=3)
    leaves = [a.requires_grad_() if a is not None else None for a in args]
    before = [a.detach().clone() if a is not None else None for a in leaves]
    out, h_n, c_n = kernel(kind, *leaves, batch_sizes)
    loss = out.sum() + h_n.sum() + (c_n.sum() if c_n is not None else 0)
    loss.backward()
    for index, (a, b) in enumerate(zip(leaves, before, strict=True)):
        if a is not None:
            assert torch.equal(a.detach(), b), f"input {index} was modified"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("ragged", [False, True])
def test_inference_path_equals_training_path(cell, ragged, monkeypatch):
    """No-grad calls save nothing and project in chunks; results must not change."""
    from rnnkit import bptt

    monkeypatch.setattr(bptt.common, "CHUNK", 1)  # one step per chunk
    torch.manual_seed(1)
    T, B, I, H = 5, 3, 4, 6
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    x = torch.randn(T, B, I, dtype=torch.float64)
    w = [torch.randn(G * H, I, dtype=torch.float64), torch.randn(G * H, H, dtype=torch.float64)]
    b = [torch.randn(G * H, dtype=torch.float64) for _ in range(2)]
    h0 = torch.randn(B, H, dtype=torch.float64)
    state = [h0, torch.randn(B, H, dtype=torch.float64)] if cell == "lstm" else [h0]
    bs = (3, 3, 2, 2, 1) if ragged else None
    fn = getattr(bptt, cell)
    with torch.no_grad():
        fast = fn(x, *state, *w, *b, bs)
    x.requires_grad_(True)
    slow = fn(x, *state, *w, *b, bs)
    for a, s in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, s.detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("ragged", [False, True])
def test_onednn_paths_match_reference(cell, ragged, monkeypatch):
    """float32 with every product forced onto oneDNN: outputs, states and all gradients
    match the autograd loop."""
    from rnnkit.bptt import gemm
    from rnnkit.layers import GRU, LSTM, RNN

    if not gemm.ONEDNN:
        pytest.skip("this torch has no oneDNN")
    monkeypatch.setattr(gemm, "MIN_FLOPS", 0)
    monkeypatch.setattr(gemm, "MKL_PACKED_MIN_ROWS", gemm.NEVER)
    torch.manual_seed(2)
    layer = {"lstm": LSTM, "gru": GRU, "rnn": RNN}[cell](4, 6)
    x = torch.randn(5, 3, 4, requires_grad=True)
    lengths = torch.tensor([5, 2, 4]) if ragged else None
    fast = layer(x, lengths=lengths)
    slow = layer(x, lengths=lengths, impl="loop")
    flat = [t for y in (fast, slow) for t in (y[0], *(y[1] if cell == "lstm" else (y[1],)))]
    n = len(flat) // 2
    params = [x, *layer.parameters()]
    g_fast = torch.autograd.grad(sum(t.sum() for t in flat[:n]), params)
    g_slow = torch.autograd.grad(sum(t.sum() for t in flat[n:]), params)
    for a, b in zip(flat[:n] + list(g_fast), flat[n:] + list(g_slow), strict=True):
        assert_close(a, b, rtol=1e-5, atol=1e-5)
