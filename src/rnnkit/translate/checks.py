"""Checks before work of `rnnkit translate`'s verbs (see rnnkit.train.preflight): the extras
a run will reach (sacrebleu for validation and test BLEU, sentencepiece for subwords, matplotlib
for a plot) import, and the files exist."""

from __future__ import annotations

import argparse

from rnnkit.extras import need
from rnnkit.train.preflight import readable, run_dir, train_output, writable_file

FILES = ("source", "target", "valid_source", "valid_target", "test_source", "test_target")


def train(args: argparse.Namespace) -> None:
    train_output(args)
    for name in ("valid_source", "test_source"):
        if getattr(args, name) is not None:
            need("sacrebleu", f"translate train --{name.replace('_', '-')} (BLEU)")
    if args.tokenizer == "subword":
        need("sentencepiece", "translate train --tokenizer subword")
    for name in FILES:
        readable(getattr(args, name), "--" + name.replace("_", "-"))


def run(args: argparse.Namespace) -> None:
    if args.plot is not None:
        need("matplotlib", "translate run --plot", "translate")
    run_dir(args.dir)
    writable_file(args.plot, "--plot")
    readable(args.input, "--input")
    writable_file(args.output, "--output")


def evaluate(args: argparse.Namespace) -> None:
    need("sacrebleu", "translate eval (BLEU and chrF)")
    run_dir(args.dir)
    readable(args.source, "--source")
    readable(args.target, "--target")
    writable_file(args.output, "--output")


VERBS = {"train": train, "run": run, "eval": evaluate}
