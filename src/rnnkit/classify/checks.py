"""Checks before work of `rnnkit classify`'s verbs (see rnnkit.train.preflight): the files and
folders exist, a CSV or TSV names the columns asked for, an empty TEXT is refused."""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.classify.run import ClassifyData
from rnnkit.export.checks import export
from rnnkit.train.preflight import columns, readable, run_dir, train_output, writable_file

DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}


def train(args: argparse.Namespace) -> None:
    train_output(args)
    text = args.text_column or ClassifyData.text_column
    label = args.label_column or ClassifyData.label_column
    wanted = {text: "--text-column", label: "--label-column"}
    for flag in ("--train", "--valid", "--test"):
        path = getattr(args, flag[2:])
        readable(path, flag, "any")
        if not getattr(args, "resume", False):  # else the run's columns, from its checkpoint
            _columns(path, wanted, flag, args.encoding)
    readable(args.vectors, "--vectors")


def predict(args: argparse.Namespace) -> None:
    run_dir(args.dir)
    for k, text in enumerate(args.texts, 1):
        if not text.strip():
            which = f"TEXT {k}" if len(args.texts) > 1 else "TEXT"
            raise ValueError(f"{which} is empty; give a text to label (or --input FILE)")
    if bool(args.input) != bool(args.output):
        return  # the command says which of the two is missing
    readable(args.input, "--input")
    writable_file(args.output, "--output")


def evaluate(args: argparse.Namespace) -> None:
    run_dir(args.dir)
    readable(args.data, "--data", "any")


def export_(args: argparse.Namespace) -> None:
    export(args)
    readable(args.data, "--data", "any")


def _columns(path: str | None, wanted: dict, flag: str, encoding: str | None) -> None:
    """The columns of a CSV or TSV (by its suffix); a resumed run's are checked as it reads."""
    delimiter = DELIMITERS.get(Path(path).suffix.lower()) if path else None
    if delimiter is not None and Path(path).is_file():
        columns(path, wanted, flag, delimiter, encoding)


VERBS = {"train": train, "predict": predict, "eval": evaluate, "export": export_}
