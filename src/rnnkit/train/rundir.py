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
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

from rnnkit.train import checkpoint
from rnnkit.train.runlog import CSV_FILE

LAST, BEST, TB = "last", "best", "tb"
# The largest sizes a checkpoint's model config may ask for, checked before anything is built:
MAX_LAYERS = 1024  # stacked layers (each is built, so their number bounds the time to build)
MAX_SIZE = 1 << 24  # any other size: units, embedding, vocabulary, classes, features
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
        meta = ckpt.path / checkpoint.META_FILE
        for key in ("model", "data", "train"):
            if not isinstance(ckpt.config.get(key), dict):
                raise ValueError(f"{meta} is damaged: its config has no {key} settings")
        check_sizes(ckpt.config["model"], meta)
        check_resumable(ckpt)
        return ckpt
    held_now = held(out)
    if held_now and not overwrite:
        raise ValueError(
            f"{out} already holds a training run ({', '.join(held_now)}): "
            + ("continue it with --resume, " if resumable else "")
            + "replace it with --force, or choose another directory"
        )
    return None


# What the Trainer saves of itself in OUT/last (train/loop.py, Trainer._save), checked before a
# resumed run starts
TRAINER_STATE = {"elapsed": (int, float), "bad_evals": int, "early_stop": bool, "schedule": dict}


def check_resumable(ckpt: checkpoint.Checkpoint) -> None:
    """Refuse (ValueError naming the file) a checkpoint without a whole optimizer, trainer and
    RNG state to continue from."""
    meta = ckpt.path / checkpoint.META_FILE
    extra = ckpt.extra_state
    trainer = extra.get("trainer") if isinstance(extra, dict) else None
    if ckpt.optimizer_state is None or trainer is None:
        raise ValueError(
            f"{ckpt.path} cannot be resumed: it holds no optimizer or trainer state "
            "(resume from OUT/last, not OUT/best)"
        )
    for key, kind in TRAINER_STATE.items():
        if not isinstance(trainer, dict) or key not in trainer:
            raise ValueError(f"{meta} cannot be resumed: its trainer state lacks {key!r}")
        if not isinstance(trainer[key], kind) or isinstance(trainer[key], bool) != (kind is bool):
            raise ValueError(
                f"{meta} cannot be resumed: its trainer state's {key!r} is {trainer[key]!r:.40}"
            )
    kinds = {"torch": str, "numpy": dict, "python": dict}  # seeding.rng_state()
    whole = [
        isinstance(r, dict) and all(isinstance(r.get(k), t) for k, t in kinds.items())
        for r in ckpt.rng_states
    ]
    if not whole or not all(whole):
        raise ValueError(f"{meta} cannot be resumed: its 'rng' holds no whole generator states")


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
    TypeError, AttributeError, IndexError, RuntimeError) raise ValueError("PATH/checkpoint.json
    is not a usable TASK checkpoint: ...")."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
        what = f"it lacks {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())
        raise ValueError(
            f"{ckpt.path / checkpoint.META_FILE} is not a usable {task} checkpoint: {what}"
        ) from None


def build_model(ckpt: checkpoint.Checkpoint, cls: type[nn.Module]) -> nn.Module:
    """`cls.from_config(ckpt.config["model"])` with the checkpoint's weights, trusting nothing:
    the config's sizes are checked against sane bounds (MAX_LAYERS, MAX_SIZE), the model is
    first built on the meta device (no memory) and the names and shapes of its weights compared
    with model.safetensors; only then is it built and loaded. ValueError names the file."""
    config = ckpt.config.get("model")
    meta = ckpt.path / checkpoint.META_FILE
    check_model(ckpt, lambda: _build(cls, config, meta))
    model = _build(cls, config, meta)
    model.load_state_dict(ckpt.model_state)
    return model


def check_model(ckpt: checkpoint.Checkpoint, build: Callable[[], nn.Module]) -> None:
    """Refuse (ValueError naming the file) a checkpoint whose model config has sizes out of
    bounds, or weights that do not fit the model `build()` makes from the config; `build` runs
    on the meta device, so nothing is allocated for the model's weights."""
    config = ckpt.config.get("model")
    meta = ckpt.path / checkpoint.META_FILE
    if not isinstance(config, dict):
        raise ValueError(f"{meta} is damaged: its config has no model settings")
    check_sizes(config, meta)
    try:
        with torch.device("meta"):
            skeleton = build()
    except ValueError:
        raise
    except Exception:  # noqa: BLE001 - a model that cannot be built on the meta device is
        return  # built for real, and load_state_dict still refuses weights that do not fit
    check_fits(ckpt, skeleton.state_dict())


def check_sizes(config: dict, meta: Path) -> None:
    """Refuse (ValueError naming `meta`) a model config with a size out of bounds, or a size
    (a key named as the model configs name them) that is not an int."""
    for key, value in config.items():
        if _is_size(key) and value is not None and (type(value) is not int):
            raise ValueError(f"{meta} is damaged: the model's {key} is {value!r}, not an int")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        most = MAX_LAYERS if key.endswith("layers") else MAX_SIZE
        if isinstance(value, int) and not 0 <= value <= most or value != value or abs(value) > most:
            raise ValueError(
                f"{meta} is damaged: the model's {key} is {value!r}, "
                f"outside what any model has (0 to {most})"
            )


def _is_size(key: str) -> bool:
    """Whether a model config's `key` holds a size or an id (an int), by its name."""
    named = ("layers", "hidden", "embed", "targets", "horizon", "subsample", "t_max")
    return key in named or key.endswith(("_size", "_vocab", "_features", "_classes", "_id"))


def check_fits(ckpt: checkpoint.Checkpoint, expected: dict) -> None:
    """Refuse (ValueError) weights whose names or shapes differ from `expected` (a state_dict,
    on the meta device) of the model the checkpoint's config describes."""
    weights, meta = ckpt.path / checkpoint.MODEL_FILE, ckpt.path / checkpoint.META_FILE
    found = ckpt.model_state
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{weights} does not fit the model {meta} describes: "
            + (f"missing {', '.join(missing[:4])}" if missing else "")
            + ("; " if missing and unexpected else "")
            + (f"unexpected {', '.join(unexpected[:4])}" if unexpected else "")
        )
    for name, t in expected.items():
        if tuple(found[name].shape) != tuple(t.shape):
            raise ValueError(
                f"{weights} does not fit the model {meta} describes: {name} has shape "
                f"{tuple(found[name].shape)}, the config makes {tuple(t.shape)}"
            )


def _build(cls, config: dict, meta: Path) -> nn.Module:
    try:
        return cls.from_config(config)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{meta} is damaged: its model config: {exc}") from None


def info(ckpt: checkpoint.Checkpoint) -> dict:
    """{"path", "step", "config", "metrics"} of a loaded checkpoint."""
    return {"path": ckpt.path, "step": ckpt.step, "config": ckpt.config, "metrics": ckpt.metrics}


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
