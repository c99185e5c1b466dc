"""One writer per run directory (rundir.writer): a second training process is refused with one
error line naming the first; a killed writer leaves no lock behind. Real processes throughout."""

import os
import signal
import subprocess
import sys
import time

import pytest
from clirun import assert_one_error_line, rnnkit

from rnnkit.train import rundir

HOLD = """
import os, signal, sys, time
from pathlib import Path
from rnnkit.train import rundir
with rundir.writer(Path(sys.argv[1])):
    print("held", flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
"""
TRY = """
import sys
from pathlib import Path
from rnnkit.train import rundir
try:
    with rundir.writer(Path(sys.argv[1])):
        print("acquired")
except ValueError as exc:
    print("refused:", exc)
"""


def python(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True
    )


def test_a_second_writer_is_refused_with_the_first_ones_process(tmp_path):
    with rundir.writer(tmp_path / "run"):
        out, _ = python(TRY, tmp_path / "run").communicate(timeout=60)
    assert out.startswith("refused:") and f"process {os.getpid()}" in out, out
    out, _ = python(TRY, tmp_path / "run").communicate(timeout=60)  # released on exit
    assert out.strip() == "acquired", out


def test_a_writer_killed_with_sigkill_leaves_no_stale_lock(tmp_path):
    holder = python(HOLD, tmp_path / "run", "kill")
    assert holder.stdout.readline().strip() == "held"
    assert holder.wait(timeout=60) == -signal.SIGKILL
    assert (tmp_path / "run" / rundir.LOCK_FILE).exists()  # the file stays, the lock does not
    with rundir.writer(tmp_path / "run"):
        pass


@pytest.mark.parametrize("again", [["--force"], ["--resume"]])
def test_training_into_a_directory_another_run_is_writing_is_one_error_line(tmp_path, again):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    out = tmp_path / "run"
    tiny = ["--hidden", "8", "--bptt", "8", "--batch", "2", "--eval-every", "5"]
    first = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", "textgen", "train", "--data", text, *tiny]
        + ["--max-time", "120", "--out", out],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, lock = time.monotonic() + 90, out / rundir.LOCK_FILE
        # writing (and for --resume, with a last/ to resume from)
        while not (
            lock.exists()
            and f"process {first.pid}" in lock.read_text()
            and ((out / rundir.LAST).exists() or again != ["--resume"])
        ):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        code, stdout, err = rnnkit("textgen", "train", "--data", text, *tiny, *again, "--out", out)
        assert_one_error_line(code, err, "being written by another training run")
        assert f"process {first.pid}" in err and stdout == ""
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
