"""A process killed with SIGKILL while it saves its checkpoint leaves one that loads (out/last,
or the backup of it that the save had parked), and the run resumed from it still ends as the
run that was never interrupted."""

from __future__ import annotations

import torch
from procs import kill_during_save, max_difference, run, start, weights

from rnnkit.train import checkpoint, rundir
from rnnkit.train.runlog import MetricsLog, read_metrics

KILLS = 3
STEPS = 60


def test_kills_during_saves_leave_a_checkpoint_that_resumes_exactly(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    # --eval-every 1 without validation: a checkpoint every step, so most moments are in a save
    args = ["textgen", "train", "--data", text, "--hidden", 8, "--bptt", 8, "--batch", 2,
            "--val-fraction", 0, "--dropout", 0.1, "--eval-every", 1,
            "--max-steps", STEPS]  # fmt: skip
    code, _, err = run(*args, "--out", tmp_path / "straight")  # one thread, as the killed runs
    assert code == 0, err
    out, unfinished = tmp_path / "killed", []
    resume = ["textgen", "train", "--out", out, "--resume"]
    for kill in range(KILLS):
        kill_during_save(start(*resume) if kill else start(*args, "--out", out), out)
        left = [p.name for p in out.iterdir() if p.name.startswith(f".{rundir.LAST}.")]
        unfinished.append(bool(left))  # the save's temporary directory, or the backup, is left
        step = checkpoint.load(out / rundir.LAST).step  # loads, from the backup if need be
        assert 0 < step < STEPS
    code, _, err = run(*resume)
    assert code == 0, err
    a, b = weights(tmp_path / "straight" / rundir.LAST), weights(out / rundir.LAST)
    assert all(torch.equal(a[k], b[k]) for k in a), max_difference(a, b)
    assert any(unfinished), "no kill landed inside a save"


def test_a_metrics_row_cut_by_a_kill_is_dropped_on_resume(tmp_path):
    """The rows up to a checkpoint are flushed before it is saved; a kill may cut the row
    being written after it, which the resumed run's log drops with the rows after the step."""
    path = tmp_path / "metrics.csv"
    path.write_text(
        "step,time_s,name,value\n5,0.1,train/loss,2.5\n5,0.1,valid/loss,2.4\n"
        "7,0.2,train/loss,2.3\n1"  # "1" of "10,...": cut by the kill
    )
    with MetricsLog(tmp_path, resume_step=5, tensorboard=False) as log:
        log.write(6, 0.15, {"train/loss": 2.2})
    assert [(r["step"], r["name"]) for r in read_metrics(path)] == [
        (5, "train/loss"),
        (5, "valid/loss"),
        (6, "train/loss"),
    ]
