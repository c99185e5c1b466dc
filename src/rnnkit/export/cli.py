"""The `export` verb every task shares: its parser (DIR, --format, --out, --force, --limit,
--json) and its command, which checks the request before loading anything, has the task build
its `Export`, writes it, and prints where it went and the parity it measured."""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Callable

from rnnkit.export.task import FORMATS, Export, parity_line, paths, require, write
from rnnkit.train.cli import DIR_HELP
from rnnkit.train.options import positive_int

Build = Callable[[argparse.Namespace], tuple[Export, dict]]  # args -> (export, checkpoint info)
LIMIT = 512  # held-back items the parity runs over, by default


def export_verb(
    verbs: argparse._SubParsersAction, build: Build, *, items: str, **texts
) -> argparse.ArgumentParser:
    """A task's `export` verb (`texts`: help, description, epilog) running
    `export_command(args, build)`; `items` names what --limit counts ("texts")."""
    if "description" in texts:  # the epilog's examples keep their lines; the rest is wrapped
        texts["description"] = textwrap.fill(texts["description"], width=79)
    parser = verbs.add_parser(
        "export", formatter_class=argparse.RawDescriptionHelpFormatter, **texts
    )
    parser.add_argument("dir", metavar="DIR", help=DIR_HELP)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="onnx",
        help="onnx: ONNX's own RNN/LSTM/GRU operators, runs in onnxruntime (needs "
        "pip install 'rnnkit[export]'); pt2: a torch.export program (torch.export.load, with "
        "rnnkit imported) (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="the model file (default: DIR/export/model.onnx or model.pt2); the sidecar is "
        "written next to it, its name + .json (model.onnx.json)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace an existing model file and sidecar"
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=LIMIT,
        metavar="N",
        help=f"at most N held-back {items} for the parity check (default: %(default)s)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: model, sidecar, format, inputs, outputs, parity",
    )
    parser.set_defaults(func=lambda args: export_command(args, build))
    return parser


def export_command(args: argparse.Namespace, build: Build) -> int:
    require(args.format)  # the export extra, before any work
    model_path, sidecar_path = paths(args.dir, args.format, args.out, args.force)
    export, info = build(args)
    sidecar = write(export, args.format, model_path, sidecar_path, info)
    if args.json:
        keys = ("format", "inputs", "outputs", "parity", "checkpoint")
        summary = {"model": str(model_path), "sidecar": str(sidecar_path)}
        print(json.dumps({**summary, **{k: sidecar[k] for k in keys}}))
        return 0
    print(f"wrote {model_path} and its sidecar {sidecar_path}")
    print(parity_line(sidecar))
    return 0
