"""What the command's verbs share: option types that reject bad values as one error line, the
log handler, printing generated text as it comes, and writing an output file atomically."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path


def _number(kind, text: str, ok, what: str):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(float, text, lambda v: 0 < v < float("inf"), "a positive number")


def nonnegative_float(text: str) -> float:
    return _number(float, text, lambda v: 0 <= v < float("inf"), "a number >= 0")


def fraction(text: str) -> float:
    return _number(float, text, lambda v: 0 <= v < 1, "a number in [0, 1)")


def probability(text: str) -> float:
    return _number(float, text, lambda v: 0 < v <= 1, "a number in (0, 1]")


UNITS = {"s": 1, "m": 60, "h": 3600}


def duration(text: str) -> float:
    """Seconds from '90', '90s', '30m', '1.5h' or '1h30m'."""
    spec = text.strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)([smh])", spec)
    if re.fullmatch(r"\d+(?:\.\d+)?", spec):
        seconds = float(spec)
    elif parts and re.fullmatch(r"(?:\d+(?:\.\d+)?[smh])+", spec):
        seconds = sum(float(n) * UNITS[unit] for n, unit in parts)
    else:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive duration such as 90s, 30m, 2h or 1h30m, got {text!r}"
        )
    return seconds


def run_dir_options(parser: argparse.ArgumentParser, json_help: str, resume: str | None = None):
    """The output group of a `train` verb: --out DIR, --force (or --resume, with its help),
    --json."""
    output = parser.add_argument_group("output")
    output.add_argument("--out", required=True, metavar="DIR", help="the run directory")
    again = output.add_mutually_exclusive_group()
    if resume is not None:
        again.add_argument("--resume", action="store_true", help=resume)
    again.add_argument(
        "--force", action="store_true", help="replace a run DIR holds (deletes it first)"
    )
    output.add_argument("--json", action="store_true", help=json_help)
    return output


@contextlib.contextmanager
def log_to_stderr(level: int):
    """rnnkit's log records as plain lines on stderr while open."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("rnnkit")
    old_level, old_propagate = root.level, root.propagate
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        root.propagate = old_propagate


def stream(prime: str, chars: Iterable[str]) -> None:
    """Print `prime`, then each character as it comes, then a newline."""
    out = sys.stdout
    out.write(prime)
    out.flush()
    for ch in chars:
        out.write(ch)
        out.flush()
    out.write("\n")
    out.flush()


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
