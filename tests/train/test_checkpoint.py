"""Tests for checkpoint directories: round trip, atomic replace, no unpickling, bad directories."""

import json
import os
import pickle
import random

import numpy as np
import pytest
import torch
from torch import nn
from toys import Toy, batches

from rnnkit.train import checkpoint
from rnnkit.train.seeding import rng_state, set_rng_state


def trained_toy(steps: int = 2):
    """A Toy and its Adam after `steps` updates, so the optimizer has state."""
    model = Toy()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.99))
    for step in range(steps):
        _, loss = model(*batches(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, optimizer


def save(path, model, optimizer=None, step=1, **kw):
    kw = {"config": {"hidden": 8}, "metrics": {"valid/loss": 0.25}, **kw}
    return checkpoint.save(path, model, optimizer, step=step, **kw)


def assert_tensors_equal(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert type(b) is dict and list(a) == list(b)
        for k in a:
            assert_tensors_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_tensors_equal(x, y)
    else:
        assert a == b


def test_round_trip(tmp_path):
    model, optimizer = trained_toy()
    extra = {"h": torch.randn(1, 8, 8), "pos": (3, [1.5, None]), "by_rank": {0: torch.ones(2)}}
    vocab = ["\n", " ", "a", "é"]
    save(tmp_path / "ck", model, optimizer, step=7, vocab=vocab, extra_state=extra)

    ck = checkpoint.load(tmp_path / "ck")
    assert ck.step == 7 and ck.vocab == vocab and ck.config == {"hidden": 8}
    assert ck.metrics == {"valid/loss": 0.25}
    assert_tensors_equal(model.state_dict(), ck.model_state)
    assert_tensors_equal(extra, ck.extra_state)
    fresh = Toy()
    fresh.load_state_dict(ck.model_state)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.5)
    fresh_optimizer.load_state_dict(ck.optimizer_state)
    assert_tensors_equal(optimizer.state_dict(), fresh_optimizer.state_dict())


def test_rng_states_round_trip(tmp_path):
    save(tmp_path / "ck", Toy())
    expected = (random.random(), np.random.rand(), torch.rand(3))
    state = checkpoint.load(tmp_path / "ck").rng_states[0]
    json.dumps(state)  # plain JSON
    set_rng_state(state)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(3), expected[2])
    set_rng_state(rng_state())


def test_only_safetensors_and_json_and_nothing_unpickled(tmp_path, monkeypatch):
    model, optimizer = trained_toy()
    save(tmp_path / "ck", model, optimizer, extra_state={"h": torch.zeros(2)})
    names = sorted(os.listdir(tmp_path / "ck"))
    assert names == [
        "checkpoint.json",
        "extra.safetensors",
        "model.safetensors",
        "optimizer.safetensors",
    ]

    def forbidden(*args, **kwargs):
        raise AssertionError("checkpoint.load unpickled something")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    checkpoint.load(tmp_path / "ck")


def test_tied_weights_save(tmp_path):
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False))
    model[1].weight = model[0].weight  # tied, as language models do
    save(tmp_path / "ck", model)
    fresh = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False))
    fresh.load_state_dict(checkpoint.load(tmp_path / "ck").model_state)
    assert torch.equal(fresh[0].weight, model[0].weight)


@pytest.mark.parametrize("make", ["missing", "empty", "other files", "not ours", "bad json"])
def test_not_a_checkpoint(tmp_path, make):
    path = tmp_path / "dir"
    if make != "missing":
        path.mkdir()
    if make == "other files":
        (path / "notes.txt").write_text("hello")
    if make == "not ours":
        (path / "checkpoint.json").write_text('{"format": "something-else"}')
    if make == "bad json":
        (path / "checkpoint.json").write_text("{not json")
    with pytest.raises(ValueError, match=str(path)):
        checkpoint.load(path)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupt_file(tmp_path, damage):
    model, optimizer = trained_toy()
    save(tmp_path / "ck", model, optimizer)
    file = tmp_path / "ck" / "optimizer.safetensors"
    data = file.read_bytes()
    if damage == "delete":
        file.unlink()
    else:
        file.write_bytes(data[:-10] if damage == "truncate" else data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ValueError, match="corrupt"):
        checkpoint.load(tmp_path / "ck")


def test_failed_save_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "ck"
    model, optimizer = trained_toy()
    save(path, model, optimizer, step=1)
    write = checkpoint._write

    def disk_full(file, data):
        if file.name == checkpoint.META_FILE:
            raise OSError("No space left on device")
        write(file, data)

    monkeypatch.setattr(checkpoint, "_write", disk_full)
    with torch.no_grad():
        model.head.weight.add_(1.0)
    with pytest.raises(OSError, match="No space"):
        save(path, model, optimizer, step=2)
    ck = checkpoint.load(path)
    assert ck.step == 1 and not torch.equal(ck.model_state["head.weight"], model.head.weight)
    assert os.listdir(tmp_path) == ["ck"]  # the temporary directory is gone


def test_crash_between_renames_keeps_previous(tmp_path, monkeypatch):
    """The new checkpoint fails to move into place after the old one moved aside."""
    path = tmp_path / "ck"
    save(path, Toy(), step=1)
    rename = os.rename

    def failing_rename(src, dst):
        if os.path.basename(src).startswith(".ck.tmp-"):
            raise OSError("power cut")
        rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="power cut"):
        save(path, Toy(), step=2)
    assert checkpoint.load(path).step == 1


def test_backup_is_loaded_and_replaced(tmp_path):
    """A save killed after moving the old checkpoint aside leaves only the backup and a temp dir."""
    path = tmp_path / "ck"
    save(path, Toy(), step=1)
    os.rename(path, checkpoint.backup_path(path))
    (tmp_path / ".ck.tmp-dead").mkdir()  # half-written by the killed save
    assert checkpoint.exists(path)
    assert checkpoint.load(path).step == 1
    save(path, Toy(), step=2)
    assert checkpoint.load(path).step == 2
    assert os.listdir(tmp_path) == ["ck"]


def test_refuses_to_replace_a_directory_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "mine"
    path.mkdir()
    (path / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not a checkpoint"):
        save(path, Toy())
    assert (path / "thesis.tex").read_text() == "precious"


def test_map_location(tmp_path):
    save(tmp_path / "ck", Toy())
    ck = checkpoint.load(tmp_path / "ck", map_location=torch.device("cpu"))
    assert all(t.device.type == "cpu" for t in ck.model_state.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_checkpoint_loads_on_cpu(tmp_path):
    model, optimizer = trained_toy()
    model.cuda()
    optimizer.load_state_dict(optimizer.state_dict())  # moves its state to the GPU
    save(tmp_path / "ck", model, optimizer)
    ck = checkpoint.load(tmp_path / "ck", map_location="cpu")
    assert all(t.device.type == "cpu" for t in ck.model_state.values())
    Toy().load_state_dict(ck.model_state)


def test_unstorable_extra_state(tmp_path):
    with pytest.raises(TypeError, match="extra_state.fn"):
        save(tmp_path / "ck", Toy(), extra_state={"fn": print})
    assert not checkpoint.exists(tmp_path / "ck")
