"""Checks before work of `rnnkit textgen`'s verbs (see rnnkit.train.preflight)."""

from __future__ import annotations

import argparse

from rnnkit.export.checks import export
from rnnkit.train.preflight import readable, run_dir, train_output, writable_file


def train(args: argparse.Namespace) -> None:
    train_output(args)
    readable(args.path, "--data")  # None: the built-in corpus


def sample(args: argparse.Namespace) -> None:
    run_dir(args.dir)


def evaluate(args: argparse.Namespace) -> None:
    run_dir(args.dir)
    readable(args.data, "--data")


def inspect(args: argparse.Namespace) -> None:
    run_dir(args.dir)
    readable(args.text, "--text")
    writable_file(args.out, "--out")


def export_(args: argparse.Namespace) -> None:
    export(args)
    readable(args.data, "--data")


VERBS = {
    "train": train,
    "sample": sample,
    "eval": evaluate,
    "inspect": inspect,
    "export": export_,
}
