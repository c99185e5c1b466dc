"""Tests for the process-group helpers, and 2 real torchrun processes against 1 process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_toy import CONFIG, sharded_batches
from toys import Toy

from rnnkit.train import checkpoint, distributed
from rnnkit.train.loop import train
from rnnkit.train.runlog import read_metrics
from rnnkit.train.seeding import seed_everything

HERE = Path(__file__).parents[1]  # tests/, where ddp_toy.py lives


def test_single_process_answers_as_rank_0_of_1(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup() is False
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    x = torch.arange(6.0)
    assert distributed.shard(x) is not None and torch.equal(distributed.shard(x), x)
    assert distributed.all_gather_object({"a": 1}) == [{"a": 1}]
    distributed.cleanup()  # a no-op outside a process group


def test_shard_needs_an_even_split(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    assert distributed.shard(torch.arange(8)).tolist() == [2, 3]
    with pytest.raises(ValueError, match="6 along dim 0 does not split evenly over 4"):
        distributed.shard(torch.arange(6))


def train_losses(out: Path) -> list[float]:
    return [r["value"] for r in read_metrics(out / "metrics.csv") if r["name"] == "train/loss"]


def test_torchrun_two_processes_match_one(tmp_path):
    """DDP over 2 gloo processes, each on half the global batch, == 1 process on all of it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", str(HERE / "ddp_toy.py"), str(tmp_path / "ddp")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    seed_everything(0)
    train(Toy(), sharded_batches, None, CONFIG, tmp_path / "single")
    assert len(train_losses(tmp_path / "ddp")) == CONFIG.max_steps
    torch.testing.assert_close(
        train_losses(tmp_path / "ddp"), train_losses(tmp_path / "single"), rtol=0, atol=1e-6
    )
    ddp = checkpoint.load(tmp_path / "ddp" / "last")
    single = checkpoint.load(tmp_path / "single" / "last")
    assert ddp.step == single.step == CONFIG.max_steps
    assert len(ddp.rng_states) == 2  # one per process, for an exact resume
    torch.testing.assert_close(ddp.model_state, single.model_state, rtol=0, atol=1e-6)
    assert not (tmp_path / "ddp" / "tb").exists()
