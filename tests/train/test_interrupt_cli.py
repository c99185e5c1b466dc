"""SIGINT/SIGTERM stop a real `train` process gracefully and say so: the summary is printed,
no test evaluation is made on the cut-short model, stderr says where the run is and how to go
on, and the exit status is the shell's for the signal (130, 143)."""

import csv
import json
import signal
import subprocess
import sys
import time

import pytest

from rnnkit.train import rundir


def start(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rnnkit", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt_when_saved(process: subprocess.Popen, out, signum) -> tuple[int, str, str]:
    """Send `signum` once the run has saved last/ (it is training), then wait for it."""
    deadline = time.monotonic() + 120
    while not (out / rundir.LAST).exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_classifier_run_skips_the_test_set_and_exits_128_plus_the_signal(
    tmp_path, signum
):
    rows = [("good fine great film" if k % 2 else "bad awful dull film", k % 2) for k in range(400)]
    for name in ("train", "test"):
        with (tmp_path / f"{name}.csv").open("w", newline="") as f:
            csv.writer(f).writerows([("text", "label"), *rows])
    out = tmp_path / "run"
    process = start(
        "classify", "train", "--train", tmp_path / "train.csv", "--test", tmp_path / "test.csv",
        "--embed", "8", "--hidden", "8", "--batch", "4", "--min-freq", "1",
        "--eval-every", "2", "--epochs", "1000", "--json", "--out", out,
    )  # fmt: skip
    code, stdout, stderr = interrupt_when_saved(process, out, signum)
    assert code == 128 + signum, stderr
    summary = json.loads(stdout)
    assert summary["stop_reason"] == "signal" and summary["test"] is None
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted by {signal.Signals(signum).name} at step ")
    assert "no test evaluation" in last and str(out / "last") in last
    assert "Traceback" not in stderr


def test_an_interrupted_textgen_run_says_how_to_resume(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    out = tmp_path / "run"
    process = start(
        "textgen", "train", "--data", text, "--hidden", "8", "--bptt", "8", "--batch", "2",
        "--eval-every", "2", "--max-time", "120", "--out", out,
    )  # fmt: skip
    code, _, stderr = interrupt_when_saved(process, out, signal.SIGTERM)
    assert code == 143 and "continue it with the same command and --resume" in stderr, stderr
