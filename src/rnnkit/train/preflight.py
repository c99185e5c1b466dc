"""Checks before work: what a command will need, checked before it reads its data or trains, each
failure one ValueError naming the flag and the value (the command line prints it as one `error:`
line). The checks of each task's verbs are in the task's `checks.py` (VERBS: verb -> check of
its parsed arguments); `check` runs the one of `rnnkit TASK VERB`.

    readable(args.data, "--data")           # exists, is a file, can be read
    writable_dir(args.out, "--out")         # can be made and written in
    columns(path, ["date", "OT"], ...)      # the CSV header names them
    room_for_checkpoint(out, model)         # the disk holds a checkpoint (train/run.py)
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from torch import nn

from rnnkit.train import rundir
from rnnkit.train.devices import check_device

Check = Callable[..., None]  # check(args: argparse.Namespace) -> None, or raises ValueError
CHECKPOINT_COPIES = 4  # last/ (weights and two Adam moments) and best/ (weights)
SLACK = 1 << 20  # bytes beyond the tensors: JSON, metrics.csv, file system blocks
HEADER_BYTES = 1 << 16  # read to find a CSV's header line


def check(args, checks: Mapping[str, Mapping[str, Check]]) -> None:
    """The checks of `rnnkit args.command args.verb`: its --device, then the verb's own
    (checks[command][verb]: its extras, its DIR, its files, in that order)."""
    if getattr(args, "device", None) is not None:
        check_device(args.device)
    verb = checks.get(args.command, {}).get(getattr(args, "verb", None))
    if verb is not None:
        verb(args)


def run_dir(path: str | os.PathLike) -> None:
    """A checkpoint, or a run directory holding best/ or last/, is at `path` (DIR)."""
    rundir.find_checkpoint(path)


def train_output(args) -> None:
    """A `train` verb's --out: a directory files can be written in that holds no other run,
    unless --force (replace it) or --resume (continue it) is given."""
    if args.out is None:
        return
    writable_dir(args.out, "--out")
    resume = getattr(args, "resume", False)
    if not resume:  # a resumed run's checkpoint is checked when it is read
        rundir.previous(
            Path(args.out), args.command, overwrite=args.force, resumable=hasattr(args, "resume")
        )


def readable(path: str | os.PathLike | None, flag: str, kind: str = "file") -> None:
    """`path` exists, is a file (kind "file"), a directory ("dir") or either ("any"), and can
    be read; nothing for None (an option left out)."""
    if path is None:
        return
    p = Path(path)
    if not p.exists():
        what = {"file": "file", "dir": "directory"}.get(kind, "file or directory")
        raise ValueError(f"{flag} {path}: no such {what}; check the path")
    if kind == "file" and p.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give a file")
    if kind == "dir" and not p.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a directory")
    try:
        if p.is_dir():
            os.listdir(p)
        else:
            with open(p, "rb") as f:
                f.read(1)
    except OSError as exc:
        raise ValueError(f"{flag} {path} cannot be read ({_reason(exc)})") from None


def writable_dir(path: str | os.PathLike | None, flag: str) -> None:
    """Files can be written in the directory `path`: it is one, or it can be made (its nearest
    existing parent is a directory that takes a new file)."""
    if path is None:
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{flag} {path} is not a directory; give a directory (or a new name)")
    _probe(_existing(p), flag, path)


def writable_file(path: str | os.PathLike | None, flag: str, make_parents: bool = False) -> None:
    """A file can be written at `path`: it is not a directory and its directory exists (or,
    `make_parents`, can be made) and takes a file."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give a file name")
    parent = p.absolute().parent
    if not parent.exists() and not make_parents:
        raise ValueError(
            f"{flag} {path}: the directory {parent} does not exist; make it or give another path"
        )
    _probe(_existing(parent), flag, path)


def columns(
    path: str | os.PathLike,
    wanted: Mapping[str, str],
    flag: str,
    delimiter: str = ",",
    encoding: str | None = "utf-8",
) -> None:
    """The header line of the CSV (or TSV) at `path` names every column of `wanted` (column
    name -> the flag that asked for it). A file whose header cannot be read here (an unknown
    encoding, binary) is left to its reader, which says what is wrong with it."""
    header = _header(Path(path), delimiter, encoding or "utf-8")
    if header is None:
        return
    for name, asked_by in wanted.items():
        if name not in header:
            shown = ", ".join(header[:30]) + (" ..." if len(header) > 30 else "")
            raise ValueError(
                f"{flag} {path} has no column {name!r}; its columns are: {shown}; "
                f"name one of them in {asked_by}"
            )


def room(path: str | os.PathLike, need: int, what: str, flag: str = "--out") -> None:
    """The disk that holds `path` (or would) has `need` bytes free for `what`."""
    free = shutil.disk_usage(_existing(Path(path))).free
    if free < need:
        raise ValueError(
            f"{flag} {path}: {_size(free)} free on its disk, {what} needs about {_size(need)}; "
            "free some space or choose another directory"
        )


def checkpoint_bytes(model: nn.Module) -> int:
    """About what a run's checkpoints take on disk: CHECKPOINT_COPIES x the weights, + SLACK."""
    tensors = [*model.parameters(), *model.buffers()]
    weights = sum(t.numel() * t.element_size() for t in tensors)
    return CHECKPOINT_COPIES * weights + SLACK


def room_for_checkpoint(out: str | os.PathLike, model: nn.Module) -> None:
    """The run directory's disk holds the run's checkpoints (last/ with the optimizer, best/)."""
    room(out, checkpoint_bytes(model), "the checkpoints (last/ and best/)")


def _existing(p: Path) -> Path:
    """`p` or its nearest parent that exists."""
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe(directory: Path, flag: str, path) -> None:
    """A file can be made in `directory` (made and removed at once)."""
    if not directory.is_dir():
        raise ValueError(f"{flag} {path}: {directory} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot write in {directory} ({_reason(exc)})") from None


def _header(path: Path, delimiter: str, encoding: str) -> Sequence[str] | None:
    """The fields of the first non-blank line, or None when it cannot be read as text."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
        lines = [b for b in head.split(b"\n")[:-1] if b.strip()]  # whole lines only
        text = lines[0].decode(encoding).removeprefix("\ufeff") if lines else ""
    except (OSError, UnicodeDecodeError, LookupError):
        return None
    if not text.strip() or "\0" in text or text.count('"') % 2:  # a quoted newline: the reader's
        return None
    return [c.strip() for c in next(csv.reader(io.StringIO(text), delimiter=delimiter))]


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _reason(exc: OSError) -> str:
    return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
