"""--ema: the moving average of the weights (train/averaging.py) as the training loop keeps it:
the ramped decay, validated and saved as OUT/best, carried through OUT/last into a resume."""

import os
import signal

import pytest
import torch
from torch import nn
from toys import Toy, batches, valid_fn

from rnnkit.train import checkpoint
from rnnkit.train.averaging import averaged
from rnnkit.train.config import TrainConfig
from rnnkit.train.loop import Trainer
from rnnkit.train.seeding import seed_everything

QUIET = {"progress": False, "tensorboard": False}


def config(**kw) -> TrainConfig:
    base = {"lr": 1e-2, "warmup_steps": 0, "schedule": "constant", "max_steps": 6, **QUIET}
    return TrainConfig(**{**base, **kw})


def trainer(out, cfg, on_step=None, valid=valid_fn) -> Trainer:
    seed_everything(0)
    model = Toy(dropout=0.2)
    return Trainer(model, batches, cfg, out, valid_fn=valid, on_step=on_step)


def test_the_average_follows_the_ramped_decay(tmp_path):
    """a_1 = w_1, then a_n = d a_{n-1} + (1 - d) w_n with d = min(D, n / (9 + n)), computed
    here in float64 from the weights after every update."""
    weights = []
    t = trainer(tmp_path / "out", config(ema=0.6, eval_every=100), valid=None)
    t.on_step = lambda step, stats: weights.append(
        {k: v.double().clone() for k, v in t.module.state_dict().items()}
    )
    t.fit()
    expected = weights[0]
    for n, w in enumerate(weights[1:], start=1):
        d = min(0.6, (1 + n) / (10 + n))
        expected = {k: d * expected[k] + (1 - d) * w[k] for k in w}
    assert [min(0.6, (1 + n) / (10 + n)) for n in (1, 4)] == [2 / 11, 5 / 14]  # the ramp, then D
    got = t.average.module.state_dict()
    for k, v in expected.items():
        torch.testing.assert_close(got[k].double(), v, atol=1e-6, rtol=1e-6)
    live = t.module.state_dict()
    assert any(not torch.equal(got[k], live[k]) for k in live)  # an average, not the last


def test_best_holds_the_average_and_last_holds_both(tmp_path):
    out = tmp_path / "out"
    t = trainer(out, config(ema=0.5, eval_every=6))
    t.fit()
    best, last = checkpoint.load(out / "best"), checkpoint.load(out / "last")
    for name, p in t.average.module.state_dict().items():
        assert torch.equal(best.model_state[name], p), name
    for name, p in t.module.state_dict().items():
        assert torch.equal(last.model_state[name], p), name
    average = last.extra_state["average"]
    assert int(average["n_averaged"]) == 6
    assert torch.equal(average["module.head.weight"], t.average.module.head.weight.detach())
    assert t.metrics["valid/loss"] == pytest.approx(valid_fn(t.average.module.eval())["loss"])


def test_resume_goes_on_averaging_exactly(tmp_path):
    """10 updates straight, or 5, SIGTERM and a resume for 5: the same average."""
    cfg = config(ema=0.7, max_steps=10, eval_every=2)
    straight = trainer(tmp_path / "a", cfg)
    straight.fit()

    def sigterm_at_5(step, stats):
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    out = tmp_path / "b"
    trainer(out, cfg, on_step=sigterm_at_5).fit()
    resumed = trainer(out, cfg)
    assert resumed.fit(resume=out / "last").step == 10
    a, b = straight.average.state_dict(), resumed.average.state_dict()
    for name, p in a.items():
        assert torch.equal(p, b[name]), name


def test_off_by_default(tmp_path):
    t = trainer(tmp_path / "out", config(eval_every=6))
    t.fit()
    assert t.average is None
    assert checkpoint.load(tmp_path / "out" / "last").extra_state["average"] is None


def test_integer_buffers_are_copied_not_averaged():
    model = nn.BatchNorm1d(3)  # running mean and var averaged, num_batches_tracked copied
    average = averaged(model, 0.9)
    for _ in range(3):
        model(torch.randn(8, 3))
        average.update_parameters(model)
    assert int(average.module.num_batches_tracked) == 3
    assert not torch.equal(average.module.running_mean, model.running_mean)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_a_decay_outside_0_1_is_refused(bad):
    with pytest.raises(ValueError, match="ema"):
        config(ema=bad)
