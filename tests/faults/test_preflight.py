"""Checks before work (issue 22, item 4): a missing extra, a missing or unreadable input, a CSV
without the columns asked for, an output that cannot be written and a disk without room for the
checkpoints are each one `error:` line and exit status 2, before any data is read or any step
trained. The missing extras are real import failures: a module on PYTHONPATH that raises
ModuleNotFoundError as an absent package does, in a real `rnnkit` process."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clirun import assert_one_error_line, rnnkit

from rnnkit import extras
from rnnkit.train import preflight

SRC = Path(__file__).parents[2] / "src"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "checkpoints"
QUICK = 45.0  # seconds: an rnnkit process that refuses at once (torch's import included)


def rnnkit_without(tmp_path: Path, modules: list[str], *args) -> tuple[int, str, str, float]:
    """`python -m rnnkit ARGS` in a fresh process in which importing each of `modules` fails as
    for a package that is not installed: (exit status, stdout, stderr, seconds)."""
    shadow = tmp_path / "not_installed"
    shadow.mkdir(exist_ok=True)
    for name in modules:
        (shadow / f"{name}.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n"
        )
    paths = [str(shadow), str(SRC), *filter(None, os.environ.get("PYTHONPATH", "").split(":"))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


def lines(path: Path, rows: list[str]) -> Path:
    path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_translate_train_without_sacrebleu_stops_before_training(tmp_path):
    src = lines(tmp_path / "train.de", [f"ein satz {i} ." for i in range(50)])
    tgt = lines(tmp_path / "train.en", [f"a sentence {i} ." for i in range(50)])
    out = tmp_path / "run"
    code, stdout, err, seconds = rnnkit_without(
        tmp_path, ["sacrebleu"], "translate", "train", "--source", src, "--target", tgt,
        "--valid-source", src, "--valid-target", tgt, "--max-steps", "200", "--out", out,
    )  # fmt: skip
    assert_one_error_line(code, err, "translate train --valid-source (BLEU) needs sacrebleu: ")
    assert err.rstrip().endswith("pip install 'rnnkit[translate]'"), err
    assert not out.exists() and stdout == ""  # no last/, not even the run directory
    assert seconds < QUICK


def test_speech_train_without_soundfile_stops_before_featurising(tmp_path):
    manifest = lines(tmp_path / "train.csv", ["path,transcript", "a.wav,one"])
    out = tmp_path / "run"
    code, _, err, seconds = rnnkit_without(
        tmp_path, ["soundfile"], "speech", "train", "--manifest", manifest, "--out", out
    )
    assert_one_error_line(code, err, "speech train needs soundfile: pip install 'rnnkit[speech]'")
    assert not out.exists() and seconds < QUICK


def test_lab_gradients_plot_without_matplotlib_refuses_before_computing(tmp_path):
    code, stdout, err, seconds = rnnkit_without(
        tmp_path, ["matplotlib"], "lab", "gradients", "--length", "400", "--plot", "g.png"
    )
    assert_one_error_line(code, err, "lab gradients --plot needs matplotlib: ")
    assert "pip install 'rnnkit[plot]'" in err and stdout == ""
    assert not (tmp_path / "g.png").exists() and seconds < QUICK


@pytest.mark.parametrize(
    "module, args, match",
    [
        ("sacrebleu", ["translate", "eval", FIXTURES / "translate", "--source", "x.de"],
         "translate eval (BLEU and chrF) needs sacrebleu: pip install 'rnnkit[translate]'"),
        ("sentencepiece", ["translate", "train", "--source", "x.tsv", "--tokenizer", "subword",
                           "--out", "run"],
         "--tokenizer subword needs sentencepiece: pip install 'rnnkit[translate]'"),
        ("sacrebleu", ["translate", "train", "--source", "x.tsv", "--test-source", "t.tsv",
                       "--out", "run"], "--test-source (BLEU) needs sacrebleu"),
        ("matplotlib", ["translate", "run", FIXTURES / "translate", "eins .", "--plot", "a.png"],
         "translate run --plot needs matplotlib: pip install 'rnnkit[translate]'"),
        ("matplotlib", ["forecast", "predict", FIXTURES / "forecast", "--plot", "f.png"],
         "forecast predict --plot needs matplotlib: pip install 'rnnkit[forecast]'"),
        ("vega_datasets", ["forecast", "train", "--out", "run"],
         "needs vega_datasets: pip install 'rnnkit[forecast]'"),
        ("librosa", ["speech", "transcribe", FIXTURES / "speech", "a.wav"],
         "speech transcribe needs librosa: pip install 'rnnkit[speech]'"),
        ("onnxruntime", ["classify", "export", FIXTURES / "classify"],
         "needs onnxruntime: pip install 'rnnkit[export]'"),
    ],
)  # fmt: skip
def test_each_verb_names_the_extra_it_needs(module, args, match, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # a real ImportError at `import module`
    code, out, err = rnnkit(*args)
    assert_one_error_line(code, err, match)
    assert out == "" and list(tmp_path.iterdir()) == []


def test_a_broken_install_is_named_too(tmp_path, monkeypatch):
    (tmp_path / "halfpkg.py").write_text("import a_dependency_that_is_not_there\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(extras.MissingExtraError, match="importing it failed") as caught:
        extras.need("halfpkg", "the test", "speech")
    assert isinstance(caught.value, ImportError) and isinstance(caught.value, ValueError)
    assert "pip install 'rnnkit[speech]'" in str(caught.value)


@pytest.fixture
def files(tmp_path):
    csv = lines(tmp_path / "reviews.csv", ["review,sentiment", "good,pos", "bad,neg"])
    series = lines(tmp_path / "s.csv", ["date,load", "2024-01-01,1", "2024-01-02,2"])
    (tmp_path / "a_file").write_text("x")
    return {"csv": csv, "series": series, "file": tmp_path / "a_file", "dir": tmp_path}


@pytest.mark.parametrize(
    "args, match",
    [
        (["textgen", "train", "--data", "{dir}/nope.txt", "--out", "{dir}/r"],
         "--data {dir}/nope.txt: no such file"),
        (["textgen", "train", "--data", "{dir}", "--out", "{dir}/r"], "is a directory"),
        (["textgen", "train", "--out", "{file}/r"], "{file} is a file, not a directory"),
        (["textgen", "train", "--out", "{file}"], "--out {file} is not a directory"),
        (["classify", "train", "--train", "{csv}", "--out", "{dir}/r"],
         "no column 'text'; its columns are: review, sentiment; name one of them in "
         "--text-column"),
        (["classify", "train", "--train", "{csv}", "--text-column", "review", "--out", "{dir}/r"],
         "no column 'label'"),
        (["classify", "train", "--train", "{csv}", "--text-column", "review", "--label-column",
          "sentiment", "--test", "{dir}/t.csv", "--out", "{dir}/r"], "--test {dir}/t.csv"),
        (["classify", "predict", FIXTURES / "classify", "--input", "{csv}", "--output",
          "{dir}/no/out.csv"], "the directory {dir}/no does not exist"),
        (["forecast", "train", "--data", "{series}", "--target", "OT", "--out", "{dir}/r"],
         "no column 'OT'; its columns are: date, load; name one of them in --target"),
        (["forecast", "train", "--data", "{series}", "--time-column", "time", "--target", "load",
          "--out", "{dir}/r"], "no column 'time'"),
        (["translate", "eval", FIXTURES / "translate", "--source", "{dir}/x.de"],
         "--source {dir}/x.de: no such file"),
        (["textgen", "eval", "{dir}/no_run", "--data", "{dir}/nope.txt"], "no_run does not exist"),
        (["textgen", "inspect", FIXTURES / "textgen", "--text", "{csv}", "--out", "{dir}"],
         "--out {dir} is a directory"),
        (["speech", "transcribe", FIXTURES / "speech", "{dir}/gone.wav"],
         "gone.wav does not exist"),
        (["speech", "fsdd-manifest", "--root", "{csv}", "--out", "{dir}/m"], "is a file"),
        (["lab", "gradients", "--checkpoint", "{dir}/no_lab"], "--checkpoint {dir}/no_lab"),
        (["lab", "adding", "--out", "{file}/r"], "is a file, not a directory"),
    ],
)  # fmt: skip
def test_inputs_and_outputs_are_checked_first(args, match, files):
    fill = {k: str(v) for k, v in files.items()}
    before = sorted(files["dir"].rglob("*"))
    code, out, err = rnnkit(*(str(a).format(**fill) for a in args))
    assert_one_error_line(code, err, match.format(**fill))
    assert sorted(files["dir"].rglob("*")) == before  # nothing made, nothing written


def test_no_room_for_a_checkpoint_stops_before_training(tmp_path, monkeypatch):
    text = lines(tmp_path / "t.txt", ["to be or not to be " * 20] * 20)
    real = preflight.shutil.disk_usage

    def nearly_full(path):
        return real(path)._replace(free=4096)

    monkeypatch.setattr(preflight.shutil, "disk_usage", nearly_full)
    out = tmp_path / "run"
    code, stdout, err = rnnkit(
        "textgen",
        "train",
        "--data",
        text,
        "--hidden",
        "16",
        "--batch",
        "2",
        "--bptt",
        "16",
        "--max-steps",
        "5",
        "--out",
        out,
    )
    assert_one_error_line(code, err, f"--out {out}: 4.0 KiB free on its disk, the checkpoints")
    assert "free some space or choose another directory" in err
    assert not out.exists() and stdout == ""
