"""Tests for `rnnkit textgen train | sample | eval`: a tiny run end to end, resuming, every bad
input as one `error:` line with exit status 2, and 2 torchrun processes against 1."""

import io
import json
import math
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch
from clirun import assert_one_error_line, rnnkit, snapshot

from rnnkit import textgen
from rnnkit.train import checkpoint
from rnnkit.train.cli import stream
from rnnkit.train.loop import NonFiniteError
from rnnkit.train.options import duration
from rnnkit.train.runlog import read_metrics

# --warmup-steps 100: the learning rate of the first 100 steps does not depend on --max-steps
TINY = ["--hidden", "16", "--bptt", "16", "--batch", "4", "--max-steps", "5", "--eval-every", "5",
        "--warmup-steps", "100"]  # fmt: skip
WORDS = "the quick brown fox jumps over a lazy dog while seven birds sing softly".split()


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    g = torch.Generator().manual_seed(0)
    picks = torch.randint(len(WORDS), (500,), generator=g).tolist()
    lines = [" ".join(WORDS[i] for i in picks[k : k + 10]) for k in range(0, 500, 10)]
    path = tmp_path_factory.mktemp("data") / "tiny.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")  # about 2,600 characters
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, text_file) -> tuple[Path, dict]:
    """A 5-step run of a tiny model: (its directory, its --json summary)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    code, stdout, err = rnnkit(
        "textgen", "train", "--data", text_file, *TINY, "--json", "--out", out
    )
    assert code == 0, err
    return out, json.loads(stdout)


def test_train_writes_a_self_contained_run(run):
    out, summary = run
    assert summary["step"] == 5 and summary["stop_reason"] == "max_steps"
    nats, bits = summary["best_valid_nats_per_char"], summary["best_valid_bits_per_char"]
    assert 0 < nats < 10 and bits == pytest.approx(nats / math.log(2))
    assert summary["seconds"] > 0 and summary["tokens_per_s"] > 0
    assert {p.name for p in out.iterdir()} >= {"last", "best", "metrics.csv"}
    ckpt = checkpoint.load(out / "last")
    assert ckpt.config["task"] == "textgen" and ckpt.config["model"]["hidden"] == 16
    assert ckpt.config["data"]["bptt"] == 16 and ckpt.vocab["kind"] == "char"


def test_proj_size_is_stored_in_the_checkpoint_and_reloaded(text_file, tmp_path):
    out = tmp_path / "proj"
    code, _, err = rnnkit(
        "textgen", "train", "--data", text_file, *TINY, "--proj-size", "4", "--out", out
    )
    assert code == 0, err
    assert checkpoint.load(out / "last").config["model"]["proj_size"] == 4
    model = textgen.load(out)[0]
    assert model.rnn.proj_size == 4 and model.head.in_features == 4
    code, stdout, err = rnnkit("textgen", "sample", out, "--length", 10, "--seed", 1)
    assert code == 0 and len(stdout) == 11, err


def test_regularisers_are_stored_in_the_checkpoint_and_reloaded(text_file, tmp_path):
    out = tmp_path / "reg"
    flags = ["--recurrent-dropout", "0.25", "--weight-drop", "0.3", "--zoneout", "0.1"]
    code, _, err = rnnkit("textgen", "train", "--data", text_file, *TINY, *flags, "--out", out)
    assert code == 0, err
    model_options = checkpoint.load(out / "last").config["model"]
    assert (model_options["recurrent_dropout"], model_options["weight_drop"]) == (0.25, 0.3)
    reg = textgen.load(out)[0].rnn.regularisers
    assert (reg.recurrent_dropout, reg.weight_drop, reg.zoneout) == (0.25, 0.3, (0.1, 0.1))
    code, stdout, err = rnnkit("textgen", "sample", out, "--length", 10, "--seed", 1)
    assert code == 0 and len(stdout) == 11, err


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_layer_norm_is_stored_in_the_checkpoint_and_reloaded(text_file, tmp_path, cell):
    out = tmp_path / "ln"
    flags = ["--layer-norm", "--cell", cell, "--weight-drop", "0.2", "--recurrent-dropout", "0.1"]
    code, _, err = rnnkit("textgen", "train", "--data", text_file, *TINY, *flags, "--out", out)
    assert code == 0, err
    assert checkpoint.load(out / "last").config["model"]["layer_norm"] is True
    model = textgen.load(out)[0]
    assert model.rnn.layer_norm and hasattr(model.rnn, "ln_hh_weight_l0")
    code, stdout, err = rnnkit("textgen", "sample", out, "--length", 10, "--seed", 1)
    assert code == 0 and len(stdout) == 11, err


def test_sample_prints_the_prime_then_the_characters(run):
    out, _ = run
    code, stdout, err = rnnkit(
        "textgen", "sample", out, "--prime", "the ", "--length", 40, "--seed", 3
    )
    assert code == 0, err
    assert stdout.startswith("the ") and len(stdout) == len("the ") + 40 + 1
    assert (
        rnnkit("textgen", "sample", out, "--prime", "the ", "--length", 40, "--seed", 3)[1]
        == stdout
    )
    greedy = rnnkit("textgen", "sample", out / "last", "--length", 10, "--greedy")[1]
    assert greedy == rnnkit("textgen", "sample", out / "last", "--length", 10, "--greedy")[1]
    assert len(greedy) == 11


def test_sample_output_is_flushed_character_by_character():
    class Recorder(io.StringIO):
        def __init__(self):
            super().__init__()
            self.seen = []

        def flush(self):
            self.seen.append(self.getvalue())

    out = Recorder()
    with redirect_stdout(out):
        stream("ab", iter("cd"))
    assert out.seen == ["ab", "abc", "abcd", "abcd\n"]


def test_eval_reports_nats_and_bits(run, text_file):
    out, _ = run
    code, stdout, err = rnnkit("textgen", "eval", out, "--data", text_file, "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["bits_per_char"] == pytest.approx(result["nats_per_char"] / math.log(2))
    assert 0 < result["nats_per_char"] < 10 and result["unknown_chars"] == 0
    assert result["chars"] > 0.9 * len(text_file.read_text()) and result["step"] == 5
    model, vocab, _ = textgen.load(out)
    expected = textgen.evaluate_text(model, vocab, text_file.read_text(), batch=4, bptt=16)
    assert result["nats_per_char"] == pytest.approx(expected["nats_per_char"], rel=1e-6)
    code, stdout, _ = rnnkit("textgen", "eval", out, "--data", text_file)
    assert code == 0 and "nats/char" in stdout and "bits/char" in stdout


def test_resume_continues_as_if_never_stopped(run, text_file, tmp_path):
    """5 steps, then --resume to 8 == 8 steps straight (warm-up lasts 100 steps, TINY, so the
    learning rate does not depend on --max-steps; dropout follows the restored RNG)."""
    out = tmp_path / "resumed"
    shutil.copytree(run[0], out)
    code, stdout, err = rnnkit(
        "textgen",
        "train",
        "--data",
        text_file,
        "--out",
        out,
        "--resume",
        "--max-steps",
        8,
        "--json",
    )
    assert code == 0, err
    assert json.loads(stdout)["step"] == 8
    assert max(r["step"] for r in read_metrics(out / "metrics.csv")) == 8
    straight = tmp_path / "straight"
    code, _, err = rnnkit(
        "textgen", "train", "--data", text_file, *TINY, "--max-steps", 8, "--out", straight
    )  # the last --max-steps counts
    assert code == 0, err
    a, b = checkpoint.load(out / "last"), checkpoint.load(straight / "last")
    for name, tensor in a.model_state.items():
        assert torch.equal(tensor, b.model_state[name]), name


def test_resume_keeps_the_model_and_the_text(run, text_file, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(run[0], out)
    before = snapshot(out)
    code, _, err = rnnkit("textgen", "train", "--out", out, "--resume", "--hidden", 32)
    assert_one_error_line(code, err, "hidden=32 differs")
    other = tmp_path / "other.txt"
    other.write_text(text_file.read_text().upper())
    code, _, err = rnnkit("textgen", "train", "--data", other, "--out", out, "--resume")
    assert_one_error_line(code, err, "is not the text the run")
    assert snapshot(out) == before


def test_out_holding_another_run_is_refused_and_untouched(run, text_file, tmp_path):
    out = tmp_path / "taken"
    shutil.copytree(run[0], out)
    before = snapshot(out)
    code, _, err = rnnkit("textgen", "train", "--data", text_file, *TINY, "--out", out)
    assert_one_error_line(code, err, "already holds a training run")
    assert snapshot(out) == before
    args = ["--data", text_file, *TINY, "--max-steps", 2, "--force", "--json"]
    code, stdout, err = rnnkit("textgen", "train", *args, "--out", out)
    assert code == 0, err
    assert json.loads(stdout)["step"] == 2 and checkpoint.load(out / "last").step == 2


def test_train_without_data_uses_the_builtin_corpus(tmp_path):
    out = tmp_path / "builtin"
    args = ["--hidden", "8", "--bptt", "8", "--batch", "2", "--max-steps", "1"]
    code, stdout, err = rnnkit(
        "textgen", "train", *args, "--val-fraction", 0, "--out", out, "--json"
    )
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["step"] == 1 and summary["best_valid_nats_per_char"] is None
    config = checkpoint.load(out / "last").config
    assert config["data"]["path"] is None and config["data"]["text"]["chars"] > 100_000
    code, stdout, err = rnnkit("textgen", "sample", out, "--length", 5)  # no best/: uses last/
    assert code == 0 and len(stdout) == 6, err


def bad_files(d: Path) -> dict[str, Path]:
    files = {"empty": b"", "binary": b"ab\0cd" * 50, "latin1": "café au lait ".encode("latin-1")}
    files["short"] = b"hello world, but not enough for one batch"
    for name, data in files.items():
        (d / name).write_bytes(data * (40 if name == "latin1" else 1))
    return {name: d / name for name in files} | {"missing": d / "missing.txt"}


TRAIN_ERRORS = [
    (["--data", "{missing}"], "no such file"),
    (["--data", "{empty}"], "is empty"),
    (["--data", "{binary}"], "looks binary"),
    (["--data", "{latin1}"], "is not valid utf-8"),
    (["--data", "{short}"], "fewer than one batch"),
    (["--data", "{text}", "--val-fraction", "0.01"], "validation text"),
    (["--hidden", "-3"], "--hidden"),
    (["--layers", "0"], "--layers"),
    (["--bptt", "0"], "--bptt"),
    (["--batch", "-1"], "--batch"),
    (["--embed", "x"], "--embed"),
    (["--dropout", "1"], "--dropout"),
    (["--val-fraction", "1"], "--val-fraction"),
    (["--lr", "0"], "--lr"),
    (["--max-steps", "0"], "--max-steps"),
    (["--max-time", "30x"], "--max-time"),
    (["--max-time", "soon"], "--max-time"),
    (["--cell", "transformer"], "--cell"),
    (["--proj-size", "-1"], "--proj-size"),
    (["--data", "{text}", "--proj-size", "16"], "proj_size must be < hidden_size=16"),
    (["--data", "{text}", "--cell", "gru", "--proj-size", "4"], "proj_size is an LSTM option"),
    (["--zoneout", "1.0"], "--zoneout"),
    (["--data", "{text}", "--cell", "minlstm", "--zoneout", "0.1"], "zoneout is an option of"),
    (["--data", "{text}", "--cell", "mingru", "--layer-norm"], "layer_norm is an option of"),
    (["--data", "{text}", "--cell", "mingru", "--weight-drop", "0.1"], "weight_drop is an"),
    (["--resume"], "nothing to resume"),
    (["--resume", "--force"], "not allowed"),
    (["--data", "{text}", "--encoding", "klingon"], "unknown encoding"),
]


@pytest.mark.parametrize("args, match", TRAIN_ERRORS)
def test_bad_train_input_is_one_error_line(tmp_path, text_file, args, match):
    files = {**bad_files(tmp_path), "text": text_file}
    out = tmp_path / "out"
    args = [a.format(**files) for a in args]
    code, stdout, err = rnnkit("textgen", "train", *TINY, *args, "--out", out)
    assert_one_error_line(code, err, match)
    assert stdout == "" and not out.exists()


def test_out_that_is_a_file_is_refused(tmp_path, text_file):
    out = tmp_path / "file"
    out.write_text("keep me")
    code, _, err = rnnkit("textgen", "train", "--data", text_file, *TINY, "--out", out)
    assert_one_error_line(code, err, "not a directory")
    assert out.read_text() == "keep me"


SAMPLE_ERRORS = [
    (["--top-p", "0"], "--top-p"),
    (["--top-p", "1.5"], "--top-p"),
    (["--temperature", "-1"], "--temperature"),
    (["--top-k", "0"], "--top-k"),
    (["--length", "-1"], "--length"),
]


@pytest.mark.parametrize("args, match", SAMPLE_ERRORS)
def test_bad_sample_option_is_one_error_line(run, args, match):
    code, stdout, err = rnnkit("textgen", "sample", run[0], *args)
    assert_one_error_line(code, err, match)
    assert stdout == ""


@pytest.mark.parametrize("verb", ["sample", "eval"])
def test_a_directory_that_is_not_a_checkpoint_is_refused(tmp_path, text_file, verb):
    extra = ["--data", text_file] if verb == "eval" else []
    for where, match in [(tmp_path, "not an rnnkit checkpoint"), (tmp_path / "no", "not exist")]:
        code, stdout, err = rnnkit("textgen", verb, where, *extra)
        assert_one_error_line(code, err, match)
        assert stdout == ""


def test_eval_of_a_bad_file_is_one_error_line(run, tmp_path):
    files = bad_files(tmp_path)
    for name, match in [("missing", "no such file"), ("binary", "binary"), ("empty", "empty")]:
        code, _, err = rnnkit("textgen", "eval", run[0], "--data", files[name])
        assert_one_error_line(code, err, match)


def test_nonfinite_loss_is_one_error_line(monkeypatch, tmp_path):
    def diverge(*args, **kwargs):
        raise NonFiniteError("non-finite loss (nan) at step 3")

    monkeypatch.setattr(textgen, "train", diverge)
    code, _, err = rnnkit("textgen", "train", "--out", tmp_path / "x")
    assert_one_error_line(code, err, "step 3")


def test_help_shows_the_defaults():
    code, stdout, _ = rnnkit("textgen", "train", "--help")
    assert code == 0
    assert "(default: 512)" in stdout and "(default: 0.1)" in stdout and "torchrun" in stdout


@pytest.mark.parametrize(
    "text, seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("1.5h", 5400), ("1h30m", 5400)]
)
def test_duration(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "m", "10x", "5m 3"])
def test_bad_duration(text):
    with pytest.raises(Exception, match="expected a positive duration"):
        duration(text)


def test_torchrun_two_processes_match_one(text_file, tmp_path):
    """`torchrun --nproc-per-node 2 -m rnnkit textgen train` (gloo, 2 streams each) ends where
    `python -m rnnkit textgen train` over all 4 streams does: train and validation loss, weights.
    Dropout is off: each process draws its own masks."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["textgen", "train", "--data", str(text_file), *TINY, "--dropout", "0", "--lr", "0.05"]
    args += ["--max-steps", "6", "--json", "--out"]
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
    ]
    runs = {}
    for name, command in [
        ("ddp", [*launch, "-m", "rnnkit"]),
        ("one", [sys.executable, "-m", "rnnkit"]),
    ]:
        done = subprocess.run(
            [*command, *args, str(tmp_path / name)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        assert len(lines) == 1, done.stdout  # process 0 alone prints
        runs[name] = json.loads(lines[0])
    ddp, one = runs["ddp"], runs["one"]
    assert ddp["step"] == one["step"] == 6
    for key in ("train_loss", "valid_nats_per_char"):
        assert ddp[key] == pytest.approx(one[key], abs=1e-5), key
    a, b = checkpoint.load(tmp_path / "ddp" / "last"), checkpoint.load(tmp_path / "one" / "last")
    assert len(a.rng_states) == 2
    torch.testing.assert_close(a.model_state, b.model_state, rtol=0, atol=1e-5)
