"""`train --resume` in every task: what a resumed run takes from its checkpoint and what it
refuses, each refusal one error line that leaves the run untouched (the exactness of a resumed
run against an uninterrupted one: tests/faults)."""

from __future__ import annotations

import csv

import pytest
from clirun import assert_one_error_line, rnnkit, snapshot

TASKS = ("textgen", "classify", "forecast", "translate", "speech")
REQUIRED = {"classify": "--train", "translate": "--source", "speech": "--manifest"}


@pytest.mark.parametrize("task", TASKS)
def test_resume_without_a_checkpoint_is_one_error_line(tmp_path, task):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "missing"):
        code, stdout, err = rnnkit(task, "train", "--out", out, "--resume")
        assert_one_error_line(code, err, f"nothing to resume: {out / 'last'} is not a checkpoint")
        assert stdout == ""
    assert not (tmp_path / "missing").exists() and not any((tmp_path / "empty").iterdir())


@pytest.mark.parametrize("task", REQUIRED)
def test_a_fresh_run_still_needs_its_data(tmp_path, task):
    code, _, err = rnnkit(task, "train", "--out", tmp_path / "out")
    assert_one_error_line(code, err, f"required: {REQUIRED[task]} (unless --resume")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def reviews(tmp_path):
    def write(name: str, n: int) -> str:
        rows = [("good fine film" if k % 2 else "bad dull film", k % 2) for k in range(n)]
        with (tmp_path / name).open("w", newline="") as f:
            csv.writer(f).writerows([("text", "label"), *rows])
        return str(tmp_path / name)

    return write


@pytest.fixture
def classifier_run(tmp_path, reviews):
    out = tmp_path / "run"
    args = ["--embed", 8, "--hidden", 8, "--batch", 4, "--min-freq", 1, "--max-steps", 3]
    code, _, err = rnnkit("classify", "train", "--train", reviews("a.csv", 40), *args, "--out", out)
    assert code == 0, err
    return out


@pytest.mark.parametrize(
    "given, match",
    [
        (["--hidden", 16], "hidden=16 differs from the run being resumed (hidden=8)"),
        (["--batch", 8], "batch=8 differs"),
        (["--tokenizer", "char"], "tokenizer=char differs"),
        (["--seed", 5], "seed=5 differs from the run being resumed (seed=1337)"),
        (["--train", "{other}"], "is not the data the run being resumed was trained on (counts"),
    ],
)
def test_a_resumed_run_keeps_its_data_model_and_seed(classifier_run, reviews, given, match):
    other = reviews("b.csv", 60)
    before = snapshot(classifier_run)
    given = [str(a).format(other=other) for a in given]
    code, _, err = rnnkit("classify", "train", "--out", classifier_run, "--resume", *given)
    assert_one_error_line(code, err, match)
    assert snapshot(classifier_run) == before


def test_a_resumed_run_takes_a_new_budget_and_may_find_its_data_moved(classifier_run, tmp_path):
    moved = tmp_path / "moved.csv"
    (tmp_path / "a.csv").rename(moved)
    code, _, err = rnnkit("classify", "train", "--out", classifier_run, "--resume")
    assert_one_error_line(code, err, "a.csv")  # where the run read it: gone
    args = ["--train", moved, "--hidden", 8, "--max-steps", 5, "--json"]
    code, stdout, err = rnnkit("classify", "train", "--out", classifier_run, "--resume", *args)
    assert code == 0, err
    assert '"step": 5' in stdout and "resuming from step 3 " in err
