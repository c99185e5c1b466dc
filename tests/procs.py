"""Real `rnnkit` processes for the fault tests: started on one thread (so that a run is
repeatable to the bit), killed with SIGKILL once they have saved a checkpoint or while they
save one, and the weights they leave read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

from rnnkit.train import checkpoint, rundir

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMEOUT = 120  # seconds a process may take to get where a test waits for it


def start(*args) -> subprocess.Popen:
    """`python -m rnnkit ARGS` in a child process on one thread."""
    return subprocess.Popen(
        [sys.executable, "-m", "rnnkit", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **ONE_THREAD},
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    """Wait for `process`: (exit status, stdout, stderr)."""
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    return process.returncode, stdout, stderr


def run(*args) -> tuple[int, str, str]:
    """`rnnkit ARGS` in a child process, to its end."""
    return finish(start(*args))


def saved_step(out: Path) -> int | None:
    """The step of the checkpoint in out/last, None while there is none (or it is mid-swap)."""
    try:
        return json.loads((out / rundir.LAST / checkpoint.META_FILE).read_text())["step"]
    except (OSError, ValueError, KeyError):
        return None


def kill_after_save(process: subprocess.Popen, out: Path, step: int = 1) -> int:
    """SIGKILL `process` as soon as out/last holds a checkpoint of step `step` or later (it
    is training on); the step of out/last after the kill."""
    deadline = time.monotonic() + TIMEOUT
    while (saved_step(out) or 0) < step:
        assert process.poll() is None, f"the run ended before its kill: {finish(process)}"
        assert time.monotonic() < deadline, "no checkpoint came"
        time.sleep(0.005)
    return _kill(process, out)


def kill_during_save(process: subprocess.Popen, out: Path) -> str:
    """SIGKILL `process` while it saves out/last: as soon as the temporary directory of a save
    or the backup of the checkpoint it replaces is seen. Which one it was."""
    tmp, old = f".{rundir.LAST}.tmp-", checkpoint.backup_path(out / rundir.LAST).name
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert process.poll() is None, f"the run ended before its kill: {finish(process)}"
        assert time.monotonic() < deadline, "no save was caught"
        names = os.listdir(out) if out.is_dir() else []
        seen = [n for n in names if n.startswith(tmp) or n == old]
        if seen and (out / rundir.LAST).exists() or old in seen:  # not the first save
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=TIMEOUT)
            return "backup" if old in seen else "temporary"
        time.sleep(0.0005)


def _kill(process: subprocess.Popen, out: Path) -> int:
    assert process.poll() is None, f"the run ended before its kill: {finish(process)}"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    return checkpoint.load(out / rundir.LAST).step


def weights(directory: Path) -> dict:
    """The tensors of directory/model.safetensors."""
    return load_file(directory / checkpoint.MODEL_FILE)


def max_difference(a: dict, b: dict) -> float:
    """max |a - b| over the tensors of two state dicts with the same keys and shapes."""
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
