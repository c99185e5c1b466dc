"""Tests for rnnkit.textgen.model: CharLM's contract, carried state, config and evaluation."""

import json
import math
import warnings

import pytest
import torch
from budget import train_until

from rnnkit.textgen.data import CharVocab, TextStreams
from rnnkit.textgen.model import CharLM, CharLMConfig, evaluate

CELLS = ["lstm", "gru", "rnn"]


def tiny(cell="lstm", vocab_size=20, **kw):
    kw = {"hidden": 16, "layers": 2, "dropout": 0.0, **kw}
    return CharLM(vocab_size, cell=cell, **kw)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_shapes_and_initial_loss(cell):
    V = 66
    model = CharLM(V, cell=cell, hidden=64, layers=2)
    x = torch.randint(0, V, (3, 40))
    logits, loss = model(x, torch.randint(0, V, (3, 40)))
    assert logits.shape == (3, 40, V) and loss.shape == ()
    assert abs(loss.item() - math.log(V)) < 0.05  # near uniform at initialisation
    model.reset_state()
    logits, loss = model(x)
    assert loss is None and logits.shape == (3, 40, V)


def test_backward_reaches_every_parameter():
    model = tiny()
    _, loss = model(torch.randint(0, 20, (2, 5)), torch.randint(0, 20, (2, 5)))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("cell", CELLS)
def test_carried_state_continues_the_sequence(cell):
    model = tiny(cell)
    x = torch.randint(0, 20, (2, 12))
    whole, _ = model.run(x)
    first, _ = model(x[:, :5])
    second, _ = model(x[:, 5:])  # starts from the state the first call left
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-5, rtol=1e-5)
    assert all(not s.requires_grad for s in model.state)
    assert len(model.state) == (2 if cell == "lstm" else 1)
    assert model.state[0].shape == (2, 2, 16)  # (L, B, H)


def test_get_and_set_state():
    model = tiny("lstm")
    x = torch.randint(0, 20, (2, 6))
    model(x)
    saved = model.get_state()
    a, _ = model(x)
    model.set_state(saved)
    b, _ = model(x)
    torch.testing.assert_close(a, b)
    model.set_state(None)
    assert model.state is None
    with pytest.raises(ValueError, match="tuple of 2"):
        model.set_state((saved[0],))


def test_reset_state_and_batch_mismatch():
    model = tiny()
    x = torch.randint(0, 20, (2, 6))
    a, _ = model(x)
    model(x)
    model.reset_state()
    b, _ = model(x)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="reset_state"):
        model(torch.randint(0, 20, (3, 6)))


def test_bad_inputs():
    model = tiny()
    with pytest.raises(ValueError, match="int64"):
        model(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="targets"):
        model(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))


def test_config_round_trip():
    model = CharLM(30, cell="gru", hidden=24, layers=3, dropout=0.1, embed=8)
    data = json.loads(json.dumps(model.config.to_dict()))
    again = CharLM.from_config(data)
    again.load_state_dict(model.state_dict())
    model.eval(), again.eval()
    x = torch.randint(0, 30, (2, 7))
    torch.testing.assert_close(again.run(x)[0], model.run(x)[0])
    assert again.config == model.config == CharLMConfig(**data)


def test_config_defaults_and_errors():
    config = CharLM(65).config
    assert (config.cell, config.hidden, config.layers, config.dropout) == ("lstm", 512, 2, 0.2)
    assert config.embed == 65  # min(hidden, vocab_size)
    assert CharLM(10, hidden=8, layers=1).config.embed == 8
    for bad in [{"cell": "transformer"}, {"hidden": 0}, {"layers": 1.5}, {"dropout": 1.0}]:
        with pytest.raises(ValueError, match=next(iter(bad))):
            CharLM(10, **bad)
    with pytest.raises(ValueError, match="unknown"):
        CharLMConfig.from_dict({"vocab_size": 3, "heads": 4})


def test_lstm_with_projections():
    """proj_size (an LSTM's, torch.nn's): h and the head's input P wide, c H wide; stepping
    gives the whole sequence's logits; the config round-trips, one from before proj_size
    reads as 0, and a bad value is a ValueError naming it."""
    model = tiny("lstm", proj_size=4).eval()
    x = torch.randint(0, 20, (2, 6))
    logits, state = model.run(x)
    assert logits.shape == (2, 6, 20) and [s.shape for s in state] == [(2, 2, 4), (2, 2, 16)]
    steps, carry = [], None
    for t in range(6):
        y, carry = model.step(x[:, t], carry)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), logits, atol=1e-5, rtol=1e-5)
    again = CharLM.from_config(json.loads(json.dumps(model.config.to_dict())))
    again.load_state_dict(model.state_dict())
    assert again.config == model.config and again.config.proj_size == 4
    before = {k: v for k, v in model.config.to_dict().items() if k != "proj_size"}
    assert CharLMConfig.from_dict(before).proj_size == 0
    for bad, match in [
        ({"cell": "gru", "proj_size": 4}, "proj_size is an LSTM option; cell 'gru'"),
        ({"proj_size": 16}, "proj_size must be < hidden_size=16, got 16"),
    ]:
        with pytest.raises(ValueError, match=match):
            tiny(**bad)


def test_one_layer_dropout_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CharLM(10, hidden=8, layers=1, dropout=0.3)


def test_evaluate_matches_the_whole_streams():
    torch.manual_seed(1)
    model = tiny(dropout=0.3)
    streams = TextStreams(torch.randint(0, 19, (500,)), batch_size=4, bptt=16)
    model(*streams.batch(0))  # a carried training state that evaluate must set aside
    saved = model.state
    result = evaluate(model, streams)
    assert model.training and model.state is saved
    model.eval()
    logits, _ = model.run(streams.data[:, :-1])
    nats = torch.nn.functional.cross_entropy(logits.flatten(0, 1), streams.data[:, 1:].flatten())
    assert result["chars"] == streams.data[:, 1:].numel()
    assert result["loss"] == result["nats_per_char"] == pytest.approx(nats.item(), rel=1e-5)
    assert result["bits_per_char"] == pytest.approx(nats.item() / math.log(2), rel=1e-5)


def train_tiny(text: str, cell: str = "lstm", budget: int = 300):
    """Fit a one-layer model to `text` with carried state until its training loss is under
    0.05 (within `budget` steps); returns (model, vocab, that loss)."""
    vocab = CharVocab.from_text(text)
    streams = TextStreams(vocab.encode(text), batch_size=4, bptt=16)
    model = CharLM(len(vocab), cell=cell, hidden=32, layers=1, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    last = {}

    def step(k: int) -> None:
        if streams.is_epoch_start(k):
            model.reset_state()
        _, loss = model(*streams.batch(k))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        last["loss"] = loss.item()

    train_until(step, lambda: last["loss"] < 0.05, budget, every=1)
    return model, vocab, last["loss"]


@pytest.mark.parametrize("cell", CELLS)
def test_overfits_a_repeating_text(cell):
    _, _, loss = train_tiny("hello world. " * 60, cell)
    assert loss < 0.1
