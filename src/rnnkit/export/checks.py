"""Checks before work of the `export` verb every task shares: the format's extra imports and
the model file can be written."""

from __future__ import annotations

import argparse

from rnnkit.export.task import require
from rnnkit.extras import need
from rnnkit.train.preflight import run_dir, writable_dir, writable_file

ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")


def export(args: argparse.Namespace) -> None:
    """The extra of --format, DIR, then the model file's place."""
    require(args.format)
    if args.format == "onnx":  # imported too: a broken install is caught here as well
        for module in ONNX_MODULES:
            need(module, f"{args.command} export --format onnx")
    run_dir(args.dir)
    if args.out is not None:
        writable_file(args.out, "--out", make_parents=True)
    else:
        writable_dir(f"{args.dir}/export", "DIR")
