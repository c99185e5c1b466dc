"""Checks before work of `rnnkit lab`'s verbs (see rnnkit.train.preflight)."""

from __future__ import annotations

import argparse

from rnnkit.extras import need
from rnnkit.train.preflight import readable, train_output, writable_file


def task(args: argparse.Namespace) -> None:
    train_output(args)  # --out None: a run kept in a temporary directory


def gradients(args: argparse.Namespace) -> None:
    readable(args.checkpoint, "--checkpoint", "any")
    if args.plot is not None:
        need("matplotlib", "lab gradients --plot", "plot")
        writable_file(args.plot, "--plot")


VERBS = {"adding": task, "copy": task, "gradients": gradients}
