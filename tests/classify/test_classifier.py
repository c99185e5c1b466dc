"""Tests for classify/model.py: padding never changes a result, the pooling choices, the call
contract, and a model that learns a tiny task to 100 %."""

import pytest
import torch
from budget import SEED, train_until

from rnnkit.classify.model import POOLINGS, ClassifierConfig, SequenceClassifier


def padded(seqs: list[list[int]], T: int | None = None, fill: int = 0):
    T = T or max(map(len, seqs))
    ids = torch.full((len(seqs), T), fill, dtype=torch.int64)
    for k, s in enumerate(seqs):
        ids[k, : len(s)] = torch.tensor(s)
    return ids, torch.tensor([len(s) for s in seqs])


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_never_changes_a_result(pooling, cell, bidirectional):
    model = (
        SequenceClassifier(
            20,
            3,
            cell=cell,
            embed=6,
            hidden=5,
            layers=2,
            bidirectional=bidirectional,
            pooling=pooling,
            dropout=0.0,
        )
        .double()
        .eval()
    )
    seqs = [[3, 4, 5], [7], [2, 9, 11, 12, 13, 4], [8, 8]]
    batched, _ = model(padded(seqs))
    for k, s in enumerate(seqs):
        alone, _ = model(padded([s]))
        torch.testing.assert_close(batched[k], alone[0], rtol=0, atol=1e-12)
    junk, _ = model(padded(seqs, T=9, fill=17))  # padding holding real token ids, longer
    torch.testing.assert_close(junk, batched, rtol=0, atol=1e-12)


def test_pooling_matches_its_definition():
    model = SequenceClassifier(10, 2, embed=4, hidden=3, bidirectional=True, dropout=0.0)
    model.eval()
    ids, lengths = padded([[1, 2, 3], [4]])
    h, (h_n, _) = model.rnn(model.embedding(ids), lengths=lengths)
    outs = {}
    for pooling in POOLINGS:
        model.config.pooling = pooling
        outs[pooling] = model((ids, lengths))[0]
    w, b = model.head.weight, model.head.bias
    torch.testing.assert_close(outs["mean"][1], w @ h[1, 0] + b)
    torch.testing.assert_close(outs["max"][0], w @ h[0].amax(0) + b)
    last = torch.cat([h[0, 2, :3], h[0, 0, 3:]])  # forward at the end, backward at the start
    torch.testing.assert_close(outs["last"][0], w @ last + b)
    torch.testing.assert_close(torch.cat([h_n[0, 0], h_n[1, 0]]), last)


def test_call_contract_and_bad_inputs():
    model = SequenceClassifier(10, 4, embed=4, hidden=3)
    ids, lengths = padded([[1, 2], [3]])
    logits, loss = model((ids, lengths), torch.tensor([0, 3]))
    assert logits.shape == (2, 4) and loss.dim() == 0
    assert model((ids, lengths))[1] is None
    with pytest.raises(TypeError, match="inputs must be"):
        model(ids)
    with pytest.raises(ValueError, match="int64"):
        model((ids.float(), lengths))
    with pytest.raises(ValueError, match="targets"):
        model((ids, lengths), torch.tensor([0]))
    with pytest.raises(ValueError, match="num_classes"):
        ClassifierConfig(10, 1)
    with pytest.raises(ValueError, match="pooling"):
        ClassifierConfig(10, 2, pooling="sum")
    with pytest.raises(ValueError, match="cell"):
        ClassifierConfig(10, 2, cell="transformer")


def test_config_round_trip():
    model = SequenceClassifier(30, 3, cell="gru", bidirectional=True, pooling="mean", hidden=7)
    again = SequenceClassifier.from_config(model.config.to_dict())
    assert again.config == model.config
    again.load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="unknown"):
        ClassifierConfig.from_dict({**model.config.to_dict(), "heads": 2})


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_overfits_a_tiny_set(cell):
    """Label = whether token 3 occurs anywhere in a sequence of random length: needs memory."""
    g = torch.Generator().manual_seed(SEED + 1)
    seqs, labels = [], []
    for k in range(32):
        n = int(torch.randint(2, 12, (1,), generator=g))
        s = torch.randint(4, 10, (n,), generator=g).tolist()
        if k % 2:
            s[int(torch.randint(n, (1,), generator=g))] = 3
        seqs.append(s)
        labels.append(k % 2)
    inputs, targets = padded(seqs), torch.tensor(labels)
    model = SequenceClassifier(10, 2, cell=cell, embed=8, hidden=16, dropout=0.0, pooling="last")
    opt = torch.optim.Adam(model.parameters(), lr=0.02)

    def step(_: int) -> None:
        _, loss = model.train()(inputs, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def all_right() -> bool:
        with torch.no_grad():
            return bool((model.eval()(inputs)[0].argmax(1) == targets).all())

    train_until(step, all_right, budget=300, every=25)


def test_regularisers_reach_the_layer_and_round_trip():
    options = {"recurrent_dropout": 0.2, "weight_drop": 0.3, "zoneout": 0.1}
    model = SequenceClassifier(50, 3, cell="gru", **options)
    reg = model.rnn.regularisers
    assert (reg.recurrent_dropout, reg.weight_drop, reg.zoneout) == (0.2, 0.3, (0.1, 0.0))
    again = SequenceClassifier.from_config(model.config.to_dict())
    assert again.rnn.regularisers == reg
    with pytest.raises(ValueError, match="zoneout is an option of"):
        ClassifierConfig(50, 3, cell="minlstm", zoneout=0.1)
    with pytest.raises(ValueError, match=r"weight_drop must be a float in \[0, 1\), got 1.0"):
        ClassifierConfig(50, 3, weight_drop=1.0)


def test_layer_norm_reaches_the_layer_and_round_trips():
    model = SequenceClassifier(50, 3, cell="lstm", layer_norm=True, recurrent_dropout=0.2)
    assert model.rnn.layer_norm and model.config.layer_kwargs()["layer_norm"] is True
    again = SequenceClassifier.from_config(model.config.to_dict())
    again.load_state_dict(model.state_dict())
    assert again.rnn.layer_norm
    with pytest.raises(ValueError, match="layer_norm is an option of"):
        ClassifierConfig(50, 3, cell="minlstm", layer_norm=True)
    with pytest.raises(TypeError, match="layer_norm must be a bool"):
        ClassifierConfig(50, 3, layer_norm=1)
