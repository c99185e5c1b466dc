"""Tests for the BPTT kernels' opt-in record of || dL/dh_t ||: against autograd through the
step functions, with variable lengths, per layer and direction, and off by default."""

import pytest
import torch

import rnnkit
from rnnkit import functional as F
from rnnkit.bptt.probe import GradientRecord

pytestmark = pytest.mark.usefixtures("both_loops")  # C++ and Python loops

T, B, I, H = 7, 3, 4, 5


def reference_norms(layer, x, weights_of, loss_of):
    """|| dL/dh_t || by autograd: the cell stepped in Python, h_t.grad of every step.
    x (T, B, I) time-major; one layer, forward direction."""
    w = weights_of(layer)
    mode = layer.mode
    h = x.new_zeros(x.shape[1], H)
    c = x.new_zeros(x.shape[1], H)
    hs = []
    for x_t in x:
        if mode == "lstm":
            h, c = F.lstm_step(x_t, (h, c), *w)
        elif mode == "gru":
            h = F.gru_step(x_t, h, *w)
        else:
            h = F.rnn_step(x_t, h, *w, layer.nonlinearity)
        h.retain_grad()
        hs.append(h)
    loss_of(torch.stack(hs)).backward()
    return torch.stack([torch.linalg.vector_norm(h.grad) for h in hs])


def weights(layer, sfx="_l0"):
    return [getattr(layer, f"{n}{sfx}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def loss_of(out):
    """A loss that reads every step and weighs the last one most."""
    return (out * torch.linspace(0.1, 1.0, out.shape[0], dtype=out.dtype)[:, None, None]).sum() + (
        out[-1] ** 2
    ).sum()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_record_equals_autograd_through_the_steps(cell):
    layer = rnnkit.layers.LAYERS[cell](I, H).double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    expected = reference_norms(layer, x, weights, loss_of)
    with GradientRecord() as record:
        out, _ = layer(x)
        loss_of(out).backward()
    assert len(record.norms) == 1
    torch.testing.assert_close(record.norms[0], expected, rtol=1e-10, atol=1e-12)


def test_relu_rnn_record_equals_autograd():
    layer = rnnkit.RNN(I, H, nonlinearity="relu").double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    expected = reference_norms(layer, x, weights, loss_of)
    with GradientRecord() as record:
        loss_of(layer(x)[0]).backward()
    torch.testing.assert_close(record.norms[0], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_with_lengths_each_step_counts_the_sequences_still_running(cell):
    layer = rnnkit.layers.LAYERS[cell](I, H).double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    lengths = torch.tensor([4, 7, 2])
    with GradientRecord() as record:
        out, _ = layer(x, lengths=lengths)
        loss_of(out).backward()
    squares = torch.zeros(T, dtype=torch.float64)
    for b, n in enumerate(lengths.tolist()):  # each sequence alone, over its own length
        alone = reference_norms(layer, x[:n, b : b + 1], weights, lambda o, n=n: _masked(o, n))
        squares[:n] += alone**2
    torch.testing.assert_close(record.norms[0], squares.sqrt(), rtol=1e-10, atol=1e-12)


def _masked(out, n):
    """loss_of over the full length T, of which this sequence holds the first n steps."""
    weight = torch.linspace(0.1, 1.0, T, dtype=out.dtype)[:n, None, None]
    last = (out[-1] ** 2).sum() if n == T else 0.0  # padded outputs are 0 at t = T - 1
    return (out * weight).sum() + last


def test_one_record_per_layer_and_direction_in_forward_order():
    layer = rnnkit.GRU(I, H, num_layers=2, bidirectional=True).double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    with GradientRecord() as record:
        out, _ = layer(x)
        out[-1].sum().backward()
    norms = record.stacked()
    assert norms.shape == (4, T)
    assert (norms[:3] > 0).all()
    # a reverse direction is recorded in its own order: it reads the sequence from its end,
    # so the top layer's reverse output at t = T - 1 is its first step, the only one reached
    assert norms[3, 0] > 0 and (norms[3, 1:] == 0).all()
    # layer 1, forward direction: the loss reads only its last output directly, so the
    # gradient reaching its first step has come back through the whole recurrence
    assert norms[2, 0] < norms[2, -1]


def test_no_record_is_kept_when_none_is_open():
    layer = rnnkit.LSTM(I, H)
    x = torch.randn(T, B, I, requires_grad=True)
    with GradientRecord() as record:
        pass
    out, _ = layer(x)
    out.sum().backward()
    assert record.norms == []
    with pytest.raises(ValueError, match="the record is empty"):
        record.stacked()


def test_records_nest_and_the_innermost_collects():
    layer = rnnkit.RNN(I, H)
    x = torch.randn(T, B, I)
    with GradientRecord() as outer:
        with GradientRecord() as inner:
            layer(x)[0].sum().backward()
        layer(x)[0].sum().backward()
    assert len(inner.norms) == 1 and len(outer.norms) == 1
