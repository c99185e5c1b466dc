"""A training process killed with SIGKILL and continued with --resume ends where the run that
was never interrupted ends: the same weights (last/ and best/) and the same validation figures,
for each task. The straight runs train in this process on one thread (tests/conftest.py); the
killed ones in child processes on one thread (procs.py)."""

from __future__ import annotations

import csv
import random

import pytest
import torch
from clirun import rnnkit
from procs import kill_after_save, max_difference, run, start, weights
from speech_toys import fake_fsdd

from rnnkit.train.runlog import read_metrics

WORDS = "good fine great film bad awful dull plot actor story scene music".split()
GERMAN = dict(zip("ein zwei hund katze mann frau rot blau".split(),
                  "one two dog cat man woman red blue".split()))  # fmt: skip


def reviews(path, n=300, seed=0):
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        words = rng.choices(WORDS, k=rng.randint(3, 12))
        rows.append((" ".join(words) + (" great" if k % 2 else " awful"), k % 2))
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    return path


def parallel(directory, n=300, seed=0):
    rng = random.Random(seed)
    src, tgt = [], []
    for _ in range(n):
        words = rng.choices(list(GERMAN), k=rng.randint(2, 5))
        src.append(" ".join(words))
        tgt.append(" ".join(GERMAN[w] for w in reversed(words)))
    files, split = {}, {"de": src[:260], "en": tgt[:260], "vde": src[260:], "ven": tgt[260:]}
    for name, lines in split.items():
        files[name] = directory / f"pairs.{name}"
        files[name].write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return files


def classify_args(d):
    data = reviews(d / "reviews.csv")
    return ["classify", "train", "--train", data, "--embed", 8, "--hidden", 8, "--batch", 8,
            "--min-freq", 1, "--dropout", 0.2, "--eval-every", 10, "--max-steps", 150]  # fmt: skip


def forecast_args(d):  # the built-in series
    return ["forecast", "train", "--lookback", 16, "--horizon", 4, "--hidden", 8, "--batch", 16,
            "--dropout", 0.1, "--eval-every", 10, "--max-steps", 100]  # fmt: skip


def translate_args(d):  # scheduled sampling: the teacher-forcing ratio falls with the step
    f = parallel(d)
    return ["translate", "train", "--source", f["de"], "--target", f["en"],
            "--valid-source", f["vde"], "--valid-target", f["ven"], "--embed", 8, "--hidden", 8,
            "--batch", 16, "--min-freq", 1, "--dropout", 0.1, "--teacher-forcing", 0.9,
            "--teacher-forcing-final", 0.3, "--eval-every", 10, "--max-steps", 100]  # fmt: skip


def speech_args(d):  # CTC with SpecAugment masks drawn from the torch RNG
    fake_fsdd(d / "fsdd", digits=range(3), speakers=("ann",), indices=range(12))
    code, _, err = rnnkit("speech", "fsdd-manifest", "--root", d / "fsdd", "--out", d / "m",
                          "--strings", 24, "--test-strings", 4)  # fmt: skip
    assert code == 0, err
    return ["speech", "train", "--manifest", d / "m" / "strings_train.csv", "--task", "ctc",
            "--units", "word", "--no-bidirectional", "--freq-masks", 1, "--time-masks", 1,
            "--hidden", 8, "--layers", 1, "--batch", 4, "--dropout", 0.1, "--eval-every", 5,
            "--max-steps", 60]  # fmt: skip


def validation(out) -> list[tuple]:
    """(step, name, value) of every validation figure in out/metrics.csv."""
    rows = read_metrics(out / "metrics.csv")
    return [(r["step"], r["name"], r["value"]) for r in rows if r["name"].startswith("valid/")]


def assert_same_run(straight, resumed):
    for name in ("last", "best"):
        a, b = weights(straight / name), weights(resumed / name)
        assert all(torch.equal(a[k], b[k]) for k in a), (name, max_difference(a, b))
    assert validation(straight) == validation(resumed)


TASKS = {  # the options of the run, and how many times it is killed
    "classify": (classify_args, 2),
    "forecast": (forecast_args, 1),
    "translate": (translate_args, 1),
    "speech": (speech_args, 1),
}


@pytest.mark.parametrize("task", TASKS)
def test_a_run_killed_and_resumed_ends_as_if_never_stopped(tmp_path, task):
    make, kills = TASKS[task]
    args = make(tmp_path)
    code, _, err = run(*args, "--out", tmp_path / "straight")  # one thread, as the killed runs
    assert code == 0, err
    out = tmp_path / "killed"
    steps = [kill_after_save(start(*args, "--out", out), out)]
    command = [task, "train", "--out", out, "--resume"]  # the options are the checkpoint's
    for _ in range(kills - 1):
        steps.append(kill_after_save(start(*command), out, step=steps[-1] + 1))
    assert 0 < steps[0] and steps == sorted(set(steps)) and steps[-1] < int(args[-1])
    code, _, err = run(*command)
    assert code == 0, err
    assert f"resuming from step {steps[-1]} " in err
    assert_same_run(tmp_path / "straight", out)
