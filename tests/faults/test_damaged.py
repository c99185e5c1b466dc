"""Damaged and hostile checkpoints: every verb that loads one (sample, eval, export, resume, and
each task's inference verb) answers one `error:` line naming the file, exit status 2, and
builds no model from sizes it has not checked. The damages are in damage.py; the good
checkpoints are a tiny textgen run made here and the old checkpoints of tests/fixtures."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import assert_one_error_line, rnnkit
from damage import DAMAGES, RESUME_DAMAGES

from rnnkit.train import checkpoint

FIXTURES = Path(__file__).parent.parent / "fixtures" / "checkpoints"
TINY = ["--hidden", "8", "--layers", "1", "--bptt", "8", "--batch", "2", "--max-steps", "2"]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> tuple[Path, Path]:
    """(a tiny textgen run directory with last/ and best/, its text)."""
    where = tmp_path_factory.mktemp("good")
    text = where / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 20, encoding="utf-8")
    code, _, err = rnnkit("textgen", "train", "--data", text, *TINY, "--eval-every", 2,
                          "--out", where / "run")  # fmt: skip
    assert code == 0, err
    return where / "run", text


def damaged_copy(run: Path, tmp_path: Path, damage, part: str = "best") -> Path:
    """A copy of the run directory with `damage` done to its `part` checkpoint."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    damage(copy / part)
    return copy


@pytest.mark.parametrize("name", DAMAGES)
def test_sample_refuses_a_damaged_checkpoint(good_run, tmp_path, name):
    damage, must_name = DAMAGES[name]
    run = damaged_copy(good_run[0], tmp_path, damage)
    code, out, err = rnnkit("textgen", "sample", run / "best", "--length", 5)
    assert_one_error_line(code, err, must_name)
    assert str(run / "best") in err and out == ""


@pytest.mark.parametrize("name", [*DAMAGES, *RESUME_DAMAGES])
def test_resume_refuses_a_damaged_last_before_training(good_run, tmp_path, name):
    damage, must_name = {**DAMAGES, **RESUME_DAMAGES}[name]
    run = damaged_copy(good_run[0], tmp_path, damage, "last")
    before = (run / "metrics.csv").read_bytes()
    code, _, err = rnnkit("textgen", "train", "--data", good_run[1], "--out", run, "--resume",
                          "--max-steps", 4)  # fmt: skip
    assert_one_error_line(code, err, must_name)
    assert str(run / "last") in err
    assert (run / "metrics.csv").read_bytes() == before  # nothing trained, nothing written


@pytest.mark.parametrize("name", ["truncated_weights", "layers_1e9", "hidden_other", "no_vocab"])
@pytest.mark.parametrize("verb", ["eval", "export"])
def test_eval_and_export_refuse_a_damaged_checkpoint(good_run, tmp_path, name, verb):
    damage, must_name = DAMAGES[name]
    run, text = good_run
    run = damaged_copy(run, tmp_path, damage)
    extra = ["--data", text] if verb == "eval" else ["--format", "pt2", "--out", tmp_path / "m.pt2"]
    code, _, err = rnnkit("textgen", verb, run / "best", *extra)
    assert_one_error_line(code, err, must_name)
    assert not (tmp_path / "m.pt2").exists()


# Each task's loader (trained.py) on its old checkpoint: (folder, the verb's arguments after it)
TASK_VERBS = {
    "classify": ["classify", "predict", "{ckpt}", "a fine film"],
    "forecast": ["forecast", "predict", "{ckpt}", "--data", "{inputs}/forecast_input.csv"],
    "translate": ["translate", "run", "{ckpt}", "--beam", "1", "eins zwei"],
    "speech": ["speech", "transcribe", "{ckpt}", "{inputs}/0_george_0.wav"],
    "lab": ["lab", "gradients", "--checkpoint", "{ckpt}", "--length", "5", "--batch", "2"],
}


@pytest.mark.parametrize(
    "name", ["truncated_weights", "layers_10_9", "hidden_10_9", "hidden_float", "hidden_other",
             "weights_of_other_shapes", "no_vocab", "unknown_task"],
)  # fmt: skip
@pytest.mark.parametrize("task", TASK_VERBS)
def test_every_task_refuses_a_damaged_checkpoint(tmp_path, task, name):
    damage, must_name = DAMAGES[name]
    ckpt = tmp_path / task
    shutil.copytree(FIXTURES / task, ckpt)
    damage(ckpt)
    if name == "no_vocab" and task == "lab":  # lab's checkpoints hold no vocabulary
        must_name = "'vocab'"
    argv = [a.format(ckpt=ckpt, inputs=FIXTURES / "inputs") for a in TASK_VERBS[task]]
    code, _, err = rnnkit(*argv)
    assert_one_error_line(code, err, must_name)
    assert str(ckpt) in err


def test_every_task_still_loads_its_good_checkpoint():
    """The bounds and shape checks refuse nothing a real run wrote."""
    for task, argv in TASK_VERBS.items():
        ckpt = FIXTURES / task
        argv = [a.format(ckpt=ckpt, inputs=FIXTURES / "inputs") for a in argv]
        code, _, err = rnnkit(*argv)
        assert code == 0, (task, err)


def test_absurd_sizes_build_nothing(good_run, tmp_path, monkeypatch):
    """The config's sizes are checked before a model is built, even on the meta device."""
    from rnnkit.textgen import model

    built = []
    monkeypatch.setattr(model.CharLM, "from_config", classmethod(lambda *a: built.append(a)))
    run = damaged_copy(good_run[0], tmp_path, DAMAGES["hidden_10_9"][0])
    code, _, err = rnnkit("textgen", "sample", run / "best")
    assert_one_error_line(code, err, "hidden")
    assert built == []


def test_loading_never_unpickles(good_run, tmp_path, monkeypatch):
    import pickle

    import torch

    def forbidden(*args, **kwargs):
        raise AssertionError("a checkpoint was unpickled")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    code, _, err = rnnkit("textgen", "sample", good_run[0], "--length", 3)
    assert code == 0, err


def test_a_real_process_prints_one_line(good_run, tmp_path):
    """The whole command, as a user runs it: no traceback, no warning, status 2."""
    run = damaged_copy(good_run[0], tmp_path, DAMAGES["layers_1e9"][0])
    result = subprocess.run(
        [sys.executable, "-m", "rnnkit", "textgen", "sample", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert str(run / "best" / checkpoint.META_FILE) in result.stderr


def test_metadata_larger_than_any_checkpoint_is_not_read(good_run, monkeypatch):
    monkeypatch.setattr(checkpoint, "MAX_META_BYTES", 100)  # instead of writing a 1 GiB file
    code, _, err = rnnkit("textgen", "sample", good_run[0] / "best")
    assert_one_error_line(code, err, "more than any checkpoint's metadata")
    assert checkpoint.META_FILE in err
