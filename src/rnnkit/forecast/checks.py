"""Checks before work of `rnnkit forecast`'s verbs (see rnnkit.train.preflight): the series
exists and names the columns asked for, plots have matplotlib, outputs can be written."""

from __future__ import annotations

import argparse

from rnnkit.export.checks import export
from rnnkit.extras import need
from rnnkit.train.preflight import columns, readable, run_dir, train_output, writable_file


def train(args: argparse.Namespace) -> None:
    train_output(args)
    if getattr(args, "resume", False):  # the data options are the run's (its checkpoint's)
        readable(args.path, "--data")
    elif args.path is None:  # --data
        need("vega_datasets", "forecast train without --data (the built-in series)", "forecast")
    else:
        readable(args.path, "--data")
        wanted = {args.time_column or "date": "--time-column"}
        wanted |= {name: "--target" for name in args.target or ()}
        wanted |= {name: "--covariates" for name in args.covariates or ()}
        columns(args.path, wanted, "--data", encoding=args.encoding)


def predict(args: argparse.Namespace) -> None:
    _reading(args)
    writable_file(args.output, "--output")


def evaluate(args: argparse.Namespace) -> None:
    _reading(args)


def export_(args: argparse.Namespace) -> None:
    export(args)
    readable(args.data, "--data")


def _reading(args: argparse.Namespace) -> None:
    if args.plot is not None:
        need("matplotlib", f"forecast {args.verb} --plot", "forecast")
    run_dir(args.dir)
    readable(args.data, "--data")
    writable_file(args.plot, "--plot")


VERBS = {"train": train, "predict": predict, "eval": evaluate, "export": export_}
