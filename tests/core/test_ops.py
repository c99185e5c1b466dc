"""The kernels as PyTorch operators (bptt/ops.py): opcheck, agreement with the autograd
reference (impl="loop") in float64, gradcheck, lengths validation and recycled outputs."""

import pytest
import torch
from torch.testing import assert_close

import rnnkit
from rnnkit.bptt import ops, ops_backward

KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
LAYERS = {"rnn_tanh": rnnkit.RNN, "rnn_relu": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
T, B, I, H = 5, 4, 3, 4
LENGTHS = [3, 5, 1, 3]  # unsorted, a tie, one full row
DT = torch.float64


def forward_op(kind, x, state, w, lengths, reverse, save=True):
    """The kind's forward operator: (out, [h_n] or [h_n, c_n])."""
    if kind == "lstm":
        out, h, c, _, _ = ops.lstm(x, *state, *w, lengths, reverse, save)
        return out, [h, c]
    if kind == "gru":
        out, h, _, _ = ops.gru(x, *state, *w, lengths, reverse, save)
        return out, [h]
    out, h = ops.rnn(x, *state, *w, lengths, reverse, kind == "rnn_relu")
    return out, [h]


def op_args(kind, x, state, w, lengths, reverse):
    """The forward operator and its full argument tuple."""
    if kind == "lstm":
        return ops.lstm, (x, *state, *w, lengths, reverse, True)
    if kind == "gru":
        return ops.gru, (x, *state, *w, lengths, reverse, True)
    return ops.rnn, (x, *state, *w, lengths, reverse, kind == "rnn_relu")


def inputs(kind, dtype=DT, device="cpu", grad=True, seed=0, bias=True):
    """x (T, B, I), the state list and (w_ih, w_hh, b_ih, b_hh), leaves requiring grad."""
    gen = torch.Generator().manual_seed(seed)
    G = GATES[kind]

    def rand(*shape, scale=1.0):
        t = (torch.rand(*shape, generator=gen, dtype=dtype) * 2 - 1) * scale
        return t.to(device).requires_grad_(grad)

    state = [rand(B, H) for _ in range(2 if kind == "lstm" else 1)]
    w = [rand(G * H, I, scale=0.8), rand(G * H, H, scale=0.8)]
    w += [rand(G * H, scale=0.5), rand(G * H, scale=0.5)] if bias else [None, None]
    return rand(T, B, I), state, w


def lengths_of(ragged, device="cpu"):
    return torch.tensor(LENGTHS, device=device) if ragged else None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("kind", KINDS)
def test_opcheck_forward_ops(kind, ragged, reverse, device):
    x, state, w = inputs(kind, device=device)
    op, args = op_args(kind, x, state, w, lengths_of(ragged, device), reverse)
    torch.library.opcheck(op, args)


@pytest.mark.parametrize("kind", KINDS)
def test_opcheck_float32_without_bias(kind):
    x, state, w = inputs(kind, dtype=torch.float32, bias=False)
    op, args = op_args(kind, x, state, w, lengths_of(True), True)
    torch.library.opcheck(op, args)


def backward_args(kind, x, state, w, lengths, reverse, needs):
    """The backward operator and its arguments, from a forward run with save=True."""
    gen = torch.Generator().manual_seed(5)
    detached = [t.detach() for t in (x, *state, *w[:2])]
    x, *state, w_ih, w_hh = detached
    op, fargs = op_args(kind, x, state, [w_ih, w_hh, *w[2:]], lengths, reverse)
    out, *rest = op(*fargs)
    dout = torch.randn(out.shape, generator=gen, dtype=out.dtype).to(out.device)
    dstates = [torch.randn(s.shape, generator=gen, dtype=s.dtype).to(s.device) for s in state]
    if kind == "lstm":
        Z, C = rest[2:]
        args = (dout, *dstates, x, *state, w_ih, w_hh, out, Z, C, lengths, reverse, needs)
        return ops_backward.lstm_backward, args
    if kind == "gru":
        A, U = rest[1:]
        args = (dout, *dstates, x, *state, w_ih, w_hh, out, A, U, lengths, reverse, needs)
        return ops_backward.gru_backward, args
    relu = kind == "rnn_relu"
    args = (dout, *dstates, x, *state, w_ih, w_hh, out, lengths, reverse, relu, needs)
    return ops_backward.rnn_backward, args


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("some", [False, True], ids=["all_grads", "some_grads"])
@pytest.mark.parametrize("kind", KINDS)
def test_opcheck_backward_ops(kind, some, device):
    n = {"lstm": 7, "gru": 6}.get(kind, 5)
    needs = [i % 2 == 0 for i in range(n)] if some else [True] * n
    if kind == "lstm":
        needs[6] = False  # dW_hr: no projection here (test_proj_size.py has one)
    x, state, w = inputs(kind, device=device, grad=False)
    reverse = some  # both variants, without a grid of their own
    op, args = backward_args(kind, x, state, w, lengths_of(True, device), reverse, needs)
    torch.library.opcheck(op, args)
    grads = op(*args)
    assert [g.numel() > 0 for g in grads] == needs  # not asked for: an empty tensor


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_lstm_cell(device):
    x, state, w = inputs("lstm", device=device, grad=False)
    torch.library.opcheck(ops.lstm_cell, (x[0], *state, *w))
    h, c = ops.lstm_cell(x[0], *state, *w)
    want = rnnkit.functional.lstm_step(x[0], tuple(state), *w)
    assert_close((h, c), want, atol=1e-12, rtol=1e-12)


def reference_layer(kind, w_fwd, w_rev):
    """A one-layer bidirectional impl="loop" layer (autograd over functional steps) holding
    the given weights (as leaves of the graph: the layer's parameters are these tensors)."""
    extra = {"nonlinearity": kind.split("_")[1]} if kind.startswith("rnn") else {}
    layer = LAYERS[kind](I, H, bidirectional=True, impl="loop", dtype=DT, **extra)
    for names, ws in zip(layer._names, (w_fwd, w_rev), strict=True):
        for name, t in zip(names, ws, strict=True):
            delattr(layer, name)
            setattr(layer, name, t)
    return layer


@pytest.mark.usefixtures("both_loops")
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("kind", KINDS)
def test_ops_match_autograd_reference(kind, ragged):
    """Both directions through the ops against the impl="loop" layer: outputs, final states
    and the gradients of every input, at 1e-10 in float64."""
    x, fwd_state, w_fwd = inputs(kind, seed=1)
    _, rev_state, w_rev = inputs(kind, seed=2)
    lengths = lengths_of(ragged)
    out_f, last_f = forward_op(kind, x, fwd_state, w_fwd, lengths, False)
    out_r, last_r = forward_op(kind, x, rev_state, w_rev, lengths, True)
    got = [torch.cat([out_f, out_r], 2), *(torch.stack(p) for p in zip(last_f, last_r))]
    hx = [torch.stack(p) for p in zip(fwd_state, rev_state)]
    layer = reference_layer(kind, w_fwd, w_rev)
    out, last = layer(x, hx[0] if len(hx) == 1 else tuple(hx), lengths=lengths)
    want = [out, *(last if isinstance(last, tuple) else [last])]
    assert_close(got, want, atol=1e-10, rtol=1e-10)
    leaves = [x, *fwd_state, *rev_state, *w_fwd, *w_rev]
    gen = torch.Generator().manual_seed(3)
    weights = [torch.randn(t.shape, generator=gen, dtype=DT) for t in want]
    grads = [
        torch.autograd.grad(sum((a * b).sum() for a, b in zip(ys, weights)), leaves)
        for ys in (got, want)
    ]
    assert_close(grads[0], grads[1], atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_a_loss_on_some_outputs_only(kind):
    """A loss on the output alone, or on one final state alone: the outputs left out reach
    the backward with no gradient (the ops turn autograd's zero-filling off) and count as
    zeros, the same gradients as with every output in the loss at weight 0."""
    x, state, w = inputs(kind, seed=5)
    leaves = [x, *state, *w]
    out, last = forward_op(kind, x, state, w, lengths_of(True), False)
    outputs = [out, *last]
    for k, y in enumerate(outputs):
        alone = torch.autograd.grad((y * y).sum(), leaves, retain_graph=True, allow_unused=True)
        zeros = sum(0 * z.sum() for j, z in enumerate(outputs) if j != k)
        every = torch.autograd.grad((y * y).sum() + zeros, leaves, retain_graph=True)
        alone = [torch.zeros_like(e) if a is None else a for a, e in zip(alone, every)]
        assert_close(alone, list(every), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_through_ops(kind, reverse):
    x, state, w = inputs(kind, seed=4)
    lengths, n = lengths_of(True), len(state)

    def fn(x, *rest):
        out, last = forward_op(kind, x, list(rest[:n]), rest[n:], lengths, reverse)
        return out, *last

    assert torch.autograd.gradcheck(fn, (x, *state, *w), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("bad", [0, T + 1])
@pytest.mark.parametrize("kind", KINDS)
def test_ops_reject_lengths_out_of_range(kind, bad):
    x, state, w = inputs(kind, grad=False)
    lengths = torch.tensor([bad, 1, 2, 3])
    with pytest.raises(ValueError, match=rf"lengths must be in \[1, {T}\].*got {bad}"):
        forward_op(kind, x, state, w, lengths, False)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_backward_of_a_forward_without_save_is_refused(kind):
    x, state, w = inputs(kind)
    out, _ = forward_op(kind, x, state, w, None, False, save=False)
    with pytest.raises(RuntimeError, match="save=True"):
        out.sum().backward()


def test_padded_steps_output_zeros_whatever_the_input_holds():
    x, state, w = inputs("lstm", grad=False)
    x[4:, 0] = float("nan")  # row 0 has 3 valid steps: its padding may hold anything
    out, (h, c) = forward_op("lstm", x, state, w, lengths_of(True), True)
    assert out.isfinite().all() and h.isfinite().all() and c.isfinite().all()
    assert (out[3:, 0] == 0).all() and (out[1:, 2] == 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_recycled_outputs_held_across_op_calls_are_not_overwritten(kind):
    """Outputs over workspace.MIN_BYTES come from the recycled pool: one the caller (or
    autograd) still holds must not be handed out again by the next call."""
    G, (T2, B2, I2, H2) = GATES[kind], (64, 32, 8, 128)  # out (T, B, H): 1 MB in float32
    gen = torch.Generator().manual_seed(6)
    x1, x2 = (torch.randn(T2, B2, I2, generator=gen) for _ in range(2))
    state = [torch.zeros(B2, H2)] * (2 if kind == "lstm" else 1)
    w = [torch.randn(G * H2, n, generator=gen) * 0.1 for n in (I2, H2)] + [None, None]
    first = [forward_op(kind, x1, state, w, None, False)[0] for _ in range(2)]
    keep = first[0].clone()
    second = forward_op(kind, x2, state, w, None, False)[0]
    assert_close(first[0], keep, rtol=0, atol=0)
    assert_close(first[1], keep, rtol=0, atol=0)
    assert len({t.untyped_storage().data_ptr() for t in (*first, second)}) == 3
