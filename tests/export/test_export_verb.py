"""`rnnkit <task> export`, what every task shares: the README's onnxruntime-only snippets run as
they are (no torch imported) against `predict`, and each bad request as one `error:` line with
exit status 2 that leaves no file behind."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import assert_one_error_line, rnnkit

import rnnkit.export.task as export_task

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "checkpoints"
TASKS = ("classify", "forecast", "speech", "textgen")
TEXT = FIXTURES / "inputs" / "textgen_eval.txt"  # the fixture run's own text is not in the repo


def readme_snippet(tag: str) -> str:
    """The ```python block after `<!-- tested: TAG -->` in the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- tested: {tag} -->\n```python\n(.*?)```", text, re.S)
    assert found, f"README.md has no tested snippet {tag!r}"
    return found.group(1)


def run_alone(code: str, cwd: Path) -> str:
    """`code` in a fresh Python that must not import torch (nor rnnkit); its stdout."""
    check = "\nimport sys\nassert not {'torch', 'rnnkit'} & set(sys.modules), 'imported torch'\n"
    done = subprocess.run(
        [sys.executable, "-c", code + check], cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Path:
    """The README's layout: runs/imdb and runs/etth2 (fixture checkpoints) exported to ONNX, and
    ETTh2.csv (the forecast fixture's input rows)."""
    root = tmp_path_factory.mktemp("deploy")
    shutil.copytree(FIXTURES / "classify", root / "runs" / "imdb")
    shutil.copytree(FIXTURES / "forecast", root / "runs" / "etth2")
    shutil.copy(FIXTURES / "inputs" / "forecast_input.csv", root / "ETTh2.csv")
    texts = root / "texts.txt"
    texts.write_text("A fine film.\nNot good at all, I'm afraid.\nWhat a <i>mess</i>!\n")
    for argv in (
        ("classify", "export", root / "runs" / "imdb", "--data", texts),
        ("forecast", "export", root / "runs" / "etth2", "--data", root / "ETTh2.csv"),
    ):
        code, out, err = rnnkit(*argv)
        assert code == 0, err
        assert re.search(r"^parity: max \|onnx - eager\| = \S+ over \d+ ", out, re.M), out
    return root


def test_readme_classifier_snippet_matches_predict_without_torch(deployed):
    code = readme_snippet("classify-onnx") + "\nprint(json.dumps(probs.tolist()))\n"
    got = json.loads(run_alone(code, deployed).splitlines()[-1])
    texts = re.search(r"texts = (\[.*\])", code).group(1)
    status, out, err = rnnkit("classify", "predict", deployed / "runs" / "imdb", "--json",
                              *json.loads(texts))  # fmt: skip
    assert status == 0, err
    side = json.loads((deployed / "runs/imdb/export/model.onnx.json").read_text())
    for row, line in zip(got, out.splitlines(), strict=True):
        want = json.loads(line)["probabilities"]
        assert row == pytest.approx([want[c] for c in side["labels"]], abs=1e-5)


def test_readme_forecaster_snippet_matches_predict_without_torch(deployed):
    code = readme_snippet("forecast-onnx") + "\nprint(json.dumps(forecast[0].tolist()))\n"
    got = json.loads(run_alone(code, deployed).splitlines()[-1])  # (H, C)
    status, out, err = rnnkit(
        "forecast", "predict", deployed / "runs" / "etth2", "--data", deployed / "ETTh2.csv",
        "--json",
    )  # fmt: skip
    assert status == 0, err
    want = [v for row in json.loads(out)["rows"] for v in row[1:]]  # (H * C,)
    assert [v for row in got for v in row] == pytest.approx(want, rel=1e-5, abs=1e-4)


@pytest.mark.parametrize("task", TASKS)
def test_a_directory_that_is_not_a_checkpoint_is_one_error_line(task, tmp_path):
    code, out, err = rnnkit(task, "export", tmp_path)
    assert_one_error_line(code, err, "is not an rnnkit checkpoint")
    assert not (tmp_path / "export").exists()


def test_a_checkpoint_of_another_task_is_one_error_line(tmp_path):
    code, out, err = rnnkit("classify", "export", FIXTURES / "forecast", "--out",
                            tmp_path / "m.onnx")  # fmt: skip
    assert_one_error_line(code, err, "is not a classify checkpoint")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("task", TASKS)
def test_an_unknown_format_is_one_error_line(task, tmp_path):
    code, out, err = rnnkit(task, "export", FIXTURES / task, "--format", "tflite")
    assert_one_error_line(code, err, "invalid choice: 'tflite'")


def test_an_out_with_the_wrong_suffix_is_one_error_line(tmp_path):
    code, out, err = rnnkit("textgen", "export", FIXTURES / "textgen", "--format", "pt2",
                            "--out", tmp_path / "model.onnx")  # fmt: skip
    assert_one_error_line(code, err, "must end in .pt2")


def test_existing_files_are_kept_without_force(deployed):
    model = deployed / "runs" / "imdb" / "export" / "model.onnx"
    before = model.read_bytes(), model.with_name("model.onnx.json").read_bytes()
    code, out, err = rnnkit("classify", "export", deployed / "runs" / "imdb")
    assert_one_error_line(code, err, "exists; pass --force to replace it")
    assert (model.read_bytes(), model.with_name("model.onnx.json").read_bytes()) == before


def test_a_missing_export_extra_is_one_error_line_before_any_work(monkeypatch, tmp_path):
    real = export_task._installed
    monkeypatch.setattr(export_task, "_installed", lambda m: m != "onnxruntime" and real(m))
    code, out, err = rnnkit("speech", "export", tmp_path / "no such run")  # not even read
    assert_one_error_line(code, err, "needs onnxruntime: pip install 'rnnkit[export]'")
    code, out, err = rnnkit("textgen", "export", FIXTURES / "textgen", "--format", "pt2",
                            "--out", tmp_path / "m.pt2", "--limit", "8",
                            "--data", TEXT)  # fmt: skip
    assert code == 0, err  # pt2 needs no extra


def test_an_export_that_differs_from_eager_is_not_written(monkeypatch, tmp_path):
    monkeypatch.setattr(export_task, "TOLERANCE", -1.0)  # every difference, even 0, too large
    code, out, err = rnnkit("textgen", "export", FIXTURES / "textgen", "--out",
                            tmp_path / "m.onnx", "--limit", "8", "--data", TEXT)  # fmt: skip
    assert_one_error_line(code, err, "differs from eager rnnkit by")
    assert list(tmp_path.iterdir()) == []  # no model, no sidecar, no temporary file
