"""Checks before work of the `export` verb every task shares: the format's extra imports and
the model file can be written."""

from __future__ import annotations

import argparse

from rnnkit.extras import need
from rnnkit.train.preflight import writable_dir, writable_file

ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")


def export(args: argparse.Namespace) -> None:
    if args.format == "onnx":
        for module in ONNX_MODULES:
            need(module, f"{args.command} export --format onnx")
    if args.out is not None:
        writable_file(args.out, "--out")
    else:
        writable_dir(f"{args.dir}/export", "DIR")
