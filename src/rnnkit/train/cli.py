"""What the command's verbs share: option types that reject bad values as one error line, the
option groups and the command of the `train` verbs, the log handler, printing generated text as
it comes, and writing an output file atomically."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import fields
from pathlib import Path

import torch.distributed as dist

from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig


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


TRAINING_HELP = {  # dest: help of the training group; {epochs}, {lr}, {seed}: the defaults
    "epochs": "passes over the training data (default: {epochs} when neither --max-steps nor "
    "--max-time is given)",
    "max_steps": "stop after N updates (or --epochs)",
    "max_time": "stop after this much training, e.g. 90s, 30m, 2h (with --epochs or --max-steps: "
    "whichever comes first)",
    "lr": "peak learning rate, AdamW, warm-up then cosine decay (default: {lr})",
    "eval_every": "validate and save every N steps, and at the end (default: once an epoch)",
    "seed": "random seed (default: {seed})",
    "device": "e.g. cpu, cuda, cuda:1 (default: cuda when available, else cpu)",
}


def training_options(parser: argparse.ArgumentParser, default_epochs: int, **help: str):
    """The training group of a `train` verb: --epochs (`default_epochs` when neither --max-steps
    nor --max-time is given), --max-steps, --max-time, --lr, --eval-every, --seed, --device,
    each None when left out. `help` replaces the TRAINING_HELP of a dest."""
    unknown = help.keys() - TRAINING_HELP.keys()
    if unknown:
        raise TypeError(f"no training option {sorted(unknown)}")
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name in ("lr", "seed")}
    texts = {
        dest: text.format(epochs=default_epochs, **defaults)
        for dest, text in {**TRAINING_HELP, **help}.items()
    }
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=positive_int, metavar="N", help=texts["epochs"])
    training.add_argument("--max-steps", type=positive_int, metavar="N", help=texts["max_steps"])
    training.add_argument("--max-time", type=duration, metavar="TIME", help=texts["max_time"])
    training.add_argument("--lr", type=positive_float, help=texts["lr"])
    training.add_argument("--eval-every", type=positive_int, metavar="N", help=texts["eval_every"])
    training.add_argument("--seed", type=int, help=texts["seed"])
    training.add_argument("--device", help=texts["device"])
    return training


def run_training(train: Callable, options: dict, args: argparse.Namespace, summary: Callable):
    """The command of a `train` verb: `train(options, args.out, overwrite=args.force)`, in the
    process group when launched by torchrun (logging at INFO in process 0, WARNING elsewhere),
    then process 0 prints the run's summary, as JSON with --json, else as `summary(dict)`."""
    distributed.setup()
    main = distributed.is_main()
    try:
        with log_to_stderr(logging.INFO if main else logging.WARNING):
            run = train(options, args.out, overwrite=args.force)
    except BaseException:
        if distributed.is_distributed():
            dist.destroy_process_group()  # no barrier: the other processes may not get there
        raise
    distributed.cleanup()
    if main:
        print(json.dumps(run.summary) if args.json else summary(run.summary))
    return 0


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
