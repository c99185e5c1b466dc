"""Tests for the training loop: learning, repeatability, exact resume, guards, logs and signals."""

import os
import signal
import sys
import types

import pytest
import torch
from toys import Toy, batches, valid_fn

from rnnkit.train import checkpoint, distributed
from rnnkit.train.batches import DatasetBatches
from rnnkit.train.config import TrainConfig
from rnnkit.train.loop import NonFiniteError, Trainer, train
from rnnkit.train.runlog import read_metrics
from rnnkit.train.seeding import seed_everything

QUIET = {"progress": False, "tensorboard": False}


def config(**kw) -> TrainConfig:
    base = {"lr": 1e-2, "warmup_steps": 0, "schedule": "constant", "max_steps": 10, **QUIET}
    return TrainConfig(**{**base, **kw})


def run(out, cfg, model=None, resume=None, on_step=None, valid=valid_fn, carry=False, seed=0):
    """Train a fresh Toy (or `model`); returns (result, model, {step: per-step stats})."""
    if model is None:
        seed_everything(seed)
        model = Toy(dropout=0.2, carry=carry)
    seen = {}

    def record(step, stats):
        seen[step] = stats
        if on_step is not None:
            on_step(step, stats)

    hooks = {"get_state": model.get_state, "set_state": model.set_state} if carry else {}
    result = train(model, batches, valid, cfg, out, resume=resume, on_step=record, **hooks)
    return result, model, seen


def losses(seen: dict) -> list[float]:
    return [seen[k]["loss"] for k in sorted(seen)]


def assert_same_weights(a, b):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_training_reduces_loss(tmp_path):
    result, _, seen = run(tmp_path / "out", config(max_steps=60, eval_every=20))
    curve = losses(seen)
    assert sum(curve[-5:]) < 0.5 * sum(curve[:5])
    assert result.stop_reason == "max_steps" and result.step == 60
    assert result.best is not None and (tmp_path / "out" / "best").is_dir()
    assert checkpoint.load(tmp_path / "out" / "last").step == 60


def test_same_seed_same_run(tmp_path):
    cfg = config(max_steps=8, eval_every=4)
    _, model_a, seen_a = run(tmp_path / "a", cfg)
    _, model_b, seen_b = run(tmp_path / "b", cfg)
    assert losses(seen_a) == losses(seen_b)
    assert_same_weights(model_a, model_b)
    _, _, seen_c = run(tmp_path / "c", config(max_steps=8, eval_every=4, seed=7))
    assert losses(seen_c) != losses(seen_a)  # the dropout masks follow the seed


def stalled(model):
    return 1.0  # never improves: the plateau schedule halves the lr at every evaluation


def test_a_second_signal_stops_at_once(tmp_path):
    """The first SIGINT asks for a stop after the step; a second one, before that step ends,
    raises KeyboardInterrupt at once (the CLI prints `error: interrupted`, exit 130), and the
    process's own SIGINT handler is back afterwards."""
    before = signal.getsignal(signal.SIGINT)

    def twice_at_3(step, stats):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "a", config(max_steps=8, eval_every=4), on_step=twice_at_3)
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("schedule, valid", [("cosine", valid_fn), ("plateau", stalled)])
def test_resume_continues_exactly(tmp_path, schedule, valid):
    """10 steps straight == 5, SIGTERM, resume a fresh model for 5: losses, weights, CSV."""
    cfg = config(schedule=schedule, warmup_steps=3, eval_every=2, plateau_patience=1, log_every=1)
    _, straight, seen = run(tmp_path / "a", cfg, carry=True, valid=valid)

    def sigterm_at_5(step, stats):
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    out = tmp_path / "b"
    first, _, seen_first = run(out, cfg, carry=True, valid=valid, on_step=sigterm_at_5)
    assert first.stop_reason == "signal" and first.step == 5
    second, resumed, seen_second = run(
        out, cfg, carry=True, valid=valid, resume=out / "last", seed=123
    )
    assert second.step == 10
    assert losses(seen_first) + losses(seen_second) == losses(seen)
    assert_same_weights(straight, resumed)
    assert torch.equal(straight.h, resumed.h)  # the carried state came back too

    def train_rows(path):
        timed = ("train/tokens_per_s",)
        return [
            (r["step"], r["name"], r["value"]) for r in read_metrics(path) if r["name"] not in timed
        ]

    assert train_rows(out / "metrics.csv") == train_rows(tmp_path / "a" / "metrics.csv")


def test_sigterm_saves_and_returns(tmp_path):
    previous = signal.getsignal(signal.SIGTERM)

    def sigterm_at_3(step, stats):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    result, model, _ = run(
        tmp_path / "out", config(max_steps=50, eval_every=100), on_step=sigterm_at_3
    )
    assert result.stop_reason == "signal" and result.step == 3
    saved = checkpoint.load(tmp_path / "out" / "last")
    assert saved.step == 3 and saved.optimizer_state is not None
    for name, p in model.state_dict().items():
        assert torch.equal(saved.model_state[name], p), name
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored


def test_nan_guard_names_step_and_keeps_last_checkpoint(tmp_path):
    def poisoned(step):
        x, y = batches(step)
        return (x * float("nan"), y) if step == 6 else (x, y)

    snapshots = {}
    seed_everything(0)
    model = Toy()

    def snapshot(step, stats):
        snapshots[step] = {k: v.clone() for k, v in model.state_dict().items()}

    cfg = config(max_steps=20, eval_every=100, checkpoint_every=3)
    with pytest.raises(NonFiniteError, match=r"at step 7 \(batch 6\)") as info:
        train(model, poisoned, None, cfg, tmp_path / "out", on_step=snapshot)
    assert "step 6" in str(info.value)  # the last good checkpoint
    saved = checkpoint.load(tmp_path / "out" / "last")
    assert saved.step == 6
    for name, p in snapshots[6].items():
        assert torch.equal(saved.model_state[name], p), name
    for p in model.parameters():  # the update with NaN gradients was not taken
        assert torch.isfinite(p).all()


def test_clipped_fraction_logged(tmp_path):
    run(tmp_path / "tight", config(max_steps=4, clip_norm=1e-4, log_every=2))
    run(tmp_path / "off", config(max_steps=4, clip_norm=None, log_every=2))
    tight = {r["name"]: r["value"] for r in read_metrics(tmp_path / "tight" / "metrics.csv")}
    off = {r["name"]: r["value"] for r in read_metrics(tmp_path / "off" / "metrics.csv")}
    assert tight["train/clip_frac"] == 1.0 and tight["train/grad_norm"] > 1e-4
    assert off["train/clip_frac"] == 0.0 and off["train/grad_norm"] > 0


def test_early_stopping(tmp_path):
    values = iter([1.0, 0.5, 0.6, 0.7, 0.4])  # best at the 2nd evaluation, then 2 worse

    def valid(model):
        return next(values)

    cfg = config(max_steps=100, eval_every=2, patience=2)
    result, _, _ = run(tmp_path / "out", cfg, valid=valid)
    assert result.stop_reason == "early_stopping" and result.step == 8
    assert result.best == 0.5
    assert checkpoint.load(tmp_path / "out" / "best").step == 4


def test_a_tie_in_the_metric_goes_to_the_lower_validation_loss(tmp_path):
    evals = iter([(0.5, 2.0), (0.0, 1.0), (0.0, 0.3), (0.0, 0.6), (0.25, 0.1)])

    def valid(model):
        error, loss = next(evals)
        return {"error": error, "loss": loss}

    cfg = config(max_steps=10, eval_every=2, metric="error")
    result, _, _ = run(tmp_path / "out", cfg, valid=valid)
    assert result.best == 0.0
    assert checkpoint.load(tmp_path / "out" / "best").step == 6  # error 0 at loss 0.3


def test_csv_holds_every_metric(tmp_path):
    run(tmp_path / "out", config(max_steps=6, eval_every=3, log_every=2))
    rows = read_metrics(tmp_path / "out" / "metrics.csv")
    names = {r["name"] for r in rows}
    assert names == {
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "train/clip_frac",
        "train/tokens_per_s",
        "valid/loss",
    }
    assert sorted({r["step"] for r in rows if r["name"] == "train/loss"}) == [2, 4, 6]
    assert sorted(r["step"] for r in rows if r["name"] == "valid/loss") == [3, 6]
    tokens = [r["value"] for r in rows if r["name"] == "train/tokens_per_s"]
    assert all(t > 0 for t in tokens)


def test_max_time_stops(tmp_path):
    result, _, _ = run(tmp_path / "out", config(max_steps=None, max_time=0.2, eval_every=10**6))
    assert result.stop_reason == "max_time" and result.step >= 1
    assert checkpoint.load(tmp_path / "out" / "last").step == result.step


def test_out_dir_holding_a_run_is_refused(tmp_path):
    out = tmp_path / "out"
    run(out, config(max_steps=2))
    before = (out / "metrics.csv").read_bytes()
    with pytest.raises(ValueError, match="already holds a training run"):
        run(out, config(max_steps=2))
    assert (out / "metrics.csv").read_bytes() == before
    seed_everything(0)
    Trainer(Toy(), batches, config(max_steps=2), out, overwrite=True).fit()
    assert checkpoint.load(out / "last").step == 2
    assert not (out / "best").exists()  # the old run's best went with it


def test_resume_from_best_is_refused(tmp_path):
    run(tmp_path / "out", config(max_steps=2, eval_every=1))
    with pytest.raises(ValueError, match="cannot be resumed"):
        run(tmp_path / "out", config(max_steps=4), resume=tmp_path / "out" / "best")


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="'rmsprop'"):
        TrainConfig(optimizer="rmsprop", max_steps=1)
    with pytest.raises(ValueError, match="max_steps or max_time"):
        TrainConfig()
    with pytest.raises(ValueError, match="clip_norm"):
        TrainConfig(max_steps=1, clip_norm=-1.0)
    cfg = TrainConfig(max_steps=1, betas=[0.9, 0.95])  # as read back from JSON
    assert cfg.betas == (0.9, 0.95)


def test_dataset_batches_shard_the_global_batch(monkeypatch):
    data = [(torch.tensor([float(i)]), torch.tensor([float(i)])) for i in range(10)]
    whole = DatasetBatches(data, batch_size=4, seed=3)
    assert len(whole) == 2
    expected = whole(5)[0]
    assert torch.equal(expected, DatasetBatches(data, batch_size=4, seed=3)(5)[0])
    assert not torch.equal(expected, whole(4)[0])
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    shares = []
    for r in range(2):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        shares.append(DatasetBatches(data, batch_size=4, seed=3)(5)[0])
    together = sorted(torch.cat(shares).flatten().tolist())
    assert together == sorted(expected.flatten().tolist())


def test_tensorboard_when_it_imports(tmp_path, monkeypatch):
    written = []

    class SummaryWriter:
        def __init__(self, log_dir, purge_step=None):
            written.append(("open", log_dir, purge_step))

        def add_scalar(self, name, value, step):
            written.append((name, step))

        def flush(self):
            pass

        def close(self):
            written.append(("close",))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = SummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    run(tmp_path / "out", config(max_steps=2, eval_every=2, log_every=1, tensorboard=True))
    assert written[0] == ("open", str(tmp_path / "out" / "tb"), None)
    assert ("train/loss", 2) in written and ("valid/loss", 2) in written
    assert written[-1] == ("close",)


def _denormal_reads_as_zero() -> bool:
    tiny = torch.tensor([1e-39])  # a float32 denormal
    return bool((tiny * 1.0).item() == 0.0)


@pytest.mark.parametrize("flush", [True, False])
def test_denormals_are_flushed_while_training_and_restored_after(tmp_path, flush):
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    seen = []
    run(tmp_path / "out", config(max_steps=2, flush_denormal=flush),
        on_step=lambda step, stats: seen.append(_denormal_reads_as_zero()))  # fmt: skip
    assert seen == [flush, flush]
    assert not _denormal_reads_as_zero()  # torch's default again


def test_matmul_precision_is_set_while_training_and_restored_after(tmp_path):
    seen = []
    run(tmp_path / "out", config(max_steps=2, matmul_precision="medium"),
        on_step=lambda step, stats: seen.append(torch.get_float32_matmul_precision()))  # fmt: skip
    assert seen == ["medium", "medium"]
    assert torch.get_float32_matmul_precision() == "highest"  # torch's default again


def test_matmul_precision_refuses_unknown_names():
    with pytest.raises(ValueError, match="matmul_precision must be one of"):
        config(max_steps=2, matmul_precision="low")
