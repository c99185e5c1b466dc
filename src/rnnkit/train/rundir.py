"""A training run's output directory: its layout, the refusal to start over another run, and
reading a task's checkpoint back from it.

OUT/last          the checkpoint to resume from
OUT/best          the weights with the best validation metric (no optimizer state)
OUT/metrics.csv   every metric (train/runlog.py)
OUT/tb/           TensorBoard events, when tensorboard is installed
OUT/.rnnkit.lock  held (flock) by the one process writing the run; says who that is
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

from rnnkit.train import checkpoint
from rnnkit.train.runlog import CSV_FILE

LAST, BEST, TB = "last", "best", "tb"
LOCK_FILE = ".rnnkit.lock"
_writing: set[Path] = set()  # run directories this process holds


def held(out: Path) -> list[str]:
    """What of a previous run `out` holds (names from LAST, BEST, metrics.csv)."""
    names = (LAST, BEST, CSV_FILE)
    return [n for n in names if checkpoint.exists(out / n) or (out / n).exists()]


def prepare(out: Path, *, resume: bool, overwrite: bool, main: bool) -> None:
    """Create `out`. If it holds another run, refuse (ValueError) unless resuming it or told to
    `overwrite`, which deletes that run's checkpoints and logs first. Only `main` writes."""
    previous = held(out)
    if previous and not resume and not overwrite:
        raise ValueError(
            f"{out} already holds a training run ({', '.join(previous)}): "
            f"resume from {out / LAST}, choose another directory, or overwrite it"
        )
    if not main:
        return
    if previous and not resume:
        for name in (LAST, BEST):
            _remove(out / name)
            _remove(checkpoint.backup_path(out / name))
        _remove(out / TB)  # metrics.csv is rewritten by the new run's log
    out.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def writer(out: Path, main: bool = True) -> Iterator[None]:
    """While open, this process is the one writer of the run directory `out` (created here).
    Another process writing `out` (a run still training; --resume or --force included) is
    refused with ValueError naming it. The lock is the kernel's (flock): it ends with the
    process, so one killed, even by SIGKILL, leaves no stale lock; the file stays, harmless."""
    key = out.resolve()
    if not main or fcntl is None or key in _writing:  # held here already (train -> Trainer)
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown"
            raise ValueError(
                f"{out} is being written by another training run ({holder}); wait for it to "
                "end or stop it, or choose another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder().encode(), 0)
        _writing.add(key)
        try:
            yield
        finally:
            _writing.discard(key)
    finally:
        os.close(fd)  # releases the lock


def _holder() -> str:
    """Who writes the run: process, host, start time and command."""
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    command = " ".join(["rnnkit", *sys.argv[1:]])[:300]
    return f"process {os.getpid()} on {socket.gethostname()}, since {started}: {command}"


def previous(
    out: Path, task: str, *, resume: bool = False, overwrite: bool = False, resumable=False
) -> checkpoint.Checkpoint | None:
    """The checkpoint out/last of the `task` run to resume, or None for a new run. Refuses
    (ValueError) an `out` that is not a directory, nothing to resume, or, for a new run, an
    `out` holding another run unless told to `overwrite` it (--force; or --resume, which the
    message names when the task is `resumable`)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory; give a directory for the run")
    if resume:
        last = out / LAST
        if not checkpoint.exists(last):
            raise ValueError(f"nothing to resume: {last} is not a checkpoint")
        ckpt = checkpoint.load(last)
        check_task(ckpt, task)
        return ckpt
    held_now = held(out)
    if held_now and not overwrite:
        raise ValueError(
            f"{out} already holds a training run ({', '.join(held_now)}): "
            + ("continue it with --resume, " if resumable else "")
            + "replace it with --force, or choose another directory"
        )
    return None


def find_checkpoint(path: str | Path) -> Path:
    """`path` when it is a checkpoint, else the run directory's best/, else its last/."""
    path = Path(path)
    if not path.exists() and not checkpoint.exists(path):
        raise ValueError(f"{path} does not exist; give a checkpoint or a training run directory")
    for candidate in (path, path / BEST, path / LAST):
        if checkpoint.exists(candidate):
            return candidate
    raise ValueError(
        f"{path} is not an rnnkit checkpoint (no {checkpoint.META_FILE}) nor a training run "
        f"directory (no {BEST}/ or {LAST}/)"
    )


def check_task(ckpt: checkpoint.Checkpoint, task: str) -> None:
    """Refuse (ValueError) a checkpoint whose config's "task" is not `task`."""
    found = ckpt.config.get("task") if isinstance(ckpt.config, dict) else None
    if found != task:
        raise ValueError(f"{ckpt.path} is not a {task} checkpoint (its task is {found!r})")


def load_task(path: str | Path, task: str) -> checkpoint.Checkpoint:
    """The `task` checkpoint at `path` (`find_checkpoint`), its tensors on the CPU."""
    ckpt = checkpoint.load(find_checkpoint(path), map_location="cpu")
    check_task(ckpt, task)
    return ckpt


@contextlib.contextmanager
def usable(ckpt: checkpoint.Checkpoint, task: str) -> Iterator[None]:
    """While open, a missing key, a wrong type or weights that do not fit the model (KeyError,
    TypeError, RuntimeError) raise ValueError("PATH is not a usable TASK checkpoint: ...")."""
    try:
        yield
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{ckpt.path} is not a usable {task} checkpoint: {exc}") from None


def info(ckpt: checkpoint.Checkpoint) -> dict:
    """{"path", "step", "config", "metrics"} of a loaded checkpoint."""
    return {"path": ckpt.path, "step": ckpt.step, "config": ckpt.config, "metrics": ckpt.metrics}


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
