"""`rnnkit textgen train`: its parser and command over `rnnkit.textgen.train`.

Defaults shown in --help come from the dataclasses that own them (TextData, CharLMConfig,
TrainConfig); an option left out is None here, so a resumed run can take it from its checkpoint.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import fields

from rnnkit import textgen
from rnnkit.textgen.model import CELLS, CharLMConfig
from rnnkit.train.cli import (
    duration,
    fraction,
    positive_float,
    positive_int,
    run_dir_options,
    run_training,
)
from rnnkit.train.config import TrainConfig

DEFAULT_MAX_TIME = 30 * 60  # seconds: a fresh run given neither --max-steps nor --max-time
TRAIN_OPTIONS = (  # argparse dests handed to textgen.train when given
    *("path", "encoding", "val_fraction", "bptt", "batch"),
    *("cell", "hidden", "layers", "dropout", "embed"),
    *("lr", "max_steps", "max_time", "eval_every", "seed", "device"),
)
EXAMPLES = """examples:
  rnnkit textgen train --data input.txt --max-time 30m --out runs/shakespeare
  rnnkit textgen sample runs/shakespeare --prime "ROMEO:" --length 500 --temperature 0.8
  rnnkit textgen eval runs/shakespeare --data held-out.txt --json
  torchrun --standalone --nproc-per-node 2 -m rnnkit textgen train --data input.txt --out runs/ddp
"""


def _default(cls, name: str):
    return next(f.default for f in fields(cls) if f.name == name)


def train_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "train",
        help="train a character-level language model on a text file",
        description=(
            "Train a character-level RNN language model with truncated BPTT on a text file.\n"
            "The last --val-fraction of the text validates. DIR gets last/ (to resume),\n"
            "best/ (the best validation loss: what sample and eval read) and metrics.csv.\n"
            "Under torchrun (torchrun --nproc-per-node N -m rnnkit textgen train ...) each\n"
            "process trains on its share of the --batch streams; process 0 writes."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        dest="path",
        metavar="FILE",
        help="text file to train on (default: the built-in corpus, the text of Python's "
        "help topics, about 465,000 characters)",
    )
    data.add_argument("--encoding", help="the file's text encoding (default: utf-8)")
    data.add_argument(
        "--val-fraction",
        type=fraction,
        metavar="F",
        help=f"the last F of the text validates; 0: no validation "
        f"(default: {_default(textgen.TextData, 'val_fraction')})",
    )
    data.add_argument(
        "--bptt",
        type=positive_int,
        metavar="N",
        help=f"time steps per batch (default: {_default(textgen.TextData, 'bptt')})",
    )
    data.add_argument(
        "--batch",
        type=positive_int,
        metavar="N",
        help="streams per batch, over all processes together "
        f"(default: {_default(textgen.TextData, 'batch')})",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--cell",
        choices=tuple(CELLS),
        help=f"the recurrent cell (default: {_default(CharLMConfig, 'cell')})",
    )
    for flag, what in (("hidden", "hidden size of each layer"), ("layers", "stacked layers")):
        model.add_argument(
            f"--{flag}",
            type=positive_int,
            metavar="N",
            help=f"{what} (default: {_default(CharLMConfig, flag)})",
        )
    model.add_argument(
        "--dropout",
        type=fraction,
        metavar="P",
        help=f"(default: {_default(CharLMConfig, 'dropout')})",
    )
    model.add_argument(
        "--embed",
        type=positive_int,
        metavar="N",
        help="embedding size (default: the smaller of --hidden and the vocabulary size)",
    )
    training = parser.add_argument_group("training")
    training.add_argument(
        "--lr",
        type=positive_float,
        help=f"peak learning rate, AdamW, warm-up then cosine decay "
        f"(default: {_default(TrainConfig, 'lr')})",
    )
    training.add_argument(
        "--max-steps", type=positive_int, metavar="N", help="stop after N updates in all"
    )
    training.add_argument(
        "--max-time",
        type=duration,
        metavar="TIME",
        help="stop after this much training in all, e.g. 90s, 30m, 2h "
        f"(default: {DEFAULT_MAX_TIME // 60}m when --max-steps is not given; with both, "
        "whichever comes first)",
    )
    training.add_argument(
        "--eval-every",
        type=positive_int,
        metavar="N",
        help="validate and save every N steps, and at the end "
        f"(default: {_default(TrainConfig, 'eval_every')})",
    )
    training.add_argument(
        "--seed", type=int, help=f"random seed (default: {_default(TrainConfig, 'seed')})"
    )
    training.add_argument(
        "--device",
        help="e.g. cpu, cuda, cuda:1 (default: cuda when available, cuda:LOCAL_RANK under "
        "torchrun, else cpu)",
    )
    run_dir_options(
        parser,
        "print the summary as one JSON object on stdout (step, seconds, tokens_per_s, "
        "train_loss, valid_/best_valid_ nats_per_char and bits_per_char)",
        resume="continue the run in DIR from DIR/last; the data and model options are the "
        "run's, --max-steps/--max-time give the new total",
    )
    parser.set_defaults(func=train_command)
    return parser


def train_command(args: argparse.Namespace) -> int:
    options = {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
    if not args.resume and not {"max_steps", "max_time"} & options.keys():
        options["max_time"] = float(DEFAULT_MAX_TIME)
    train = functools.partial(textgen.train, resume=args.resume)
    return run_training(train, options, args, format_summary)


def format_summary(s: dict) -> str:
    lines = [
        f"stopped at step {s['step']} ({s['stop_reason']}) after {s['seconds']:.1f} s of "
        f"training, {s['tokens_per_s']:,.0f} characters/s"
    ]
    if s["train_loss"] is not None:
        lines.append(f"train loss        {s['train_loss']:.4f} nats/char")
    if s["valid_nats_per_char"] is not None:
        lines.append(
            f"validation        {s['valid_nats_per_char']:.4f} nats/char  "
            f"{s['valid_bits_per_char']:.4f} bits/char"
        )
        lines.append(
            f"best validation   {s['best_valid_nats_per_char']:.4f} nats/char  "
            f"{s['best_valid_bits_per_char']:.4f} bits/char"
        )
    lines.append(f"run directory     {s['out']}  (sample: rnnkit textgen sample {s['out']})")
    return "\n".join(lines)
