"""`rnnkit textgen train`: its parser and command over `rnnkit.textgen.train`.

Defaults shown in --help come from the dataclasses that own them (TextData, CharLMConfig,
TrainConfig); an option left out is None here, so a resumed run can take it from its checkpoint.
"""

from __future__ import annotations

import argparse

from rnnkit import textgen
from rnnkit.textgen.model import CharLMConfig
from rnnkit.train.cli import run_training, stopped, train_verb
from rnnkit.train.config import TrainConfig
from rnnkit.train.options import given

DEFAULT_MAX_TIME = 30 * 60  # seconds: a fresh run given neither --max-steps nor --max-time
EXAMPLES = """examples:
  rnnkit textgen train --data input.txt --max-time 30m --out runs/shakespeare
  rnnkit textgen sample runs/shakespeare --prime "ROMEO:" --length 500 --temperature 0.8
  rnnkit textgen eval runs/shakespeare --data held-out.txt --json
  torchrun --standalone --nproc-per-node 2 -m rnnkit textgen train --data input.txt --out runs/ddp
"""


def train_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser, _ = train_verb(
        verbs,
        {"data": (textgen.TextData,), "model": (CharLMConfig,)},
        train_command,
        shown={"max_time": f"{DEFAULT_MAX_TIME // 60}m when --max-steps is not given"},
        json_help="print the summary as one JSON object on stdout (step, seconds, tokens_per_s, "
        "train_loss, valid_/best_valid_ nats_per_char and bits_per_char)",
        resume="continue the run in DIR from DIR/last, exactly as if it had not stopped: the "
        "data, model and training options are the run's; --max-steps or --max-time give a new "
        "total",
        help="train a character-level language model on a text file",
        description=(
            "Train a character-level RNN language model with truncated BPTT on a text file.\n"
            "The last --val-fraction of the text validates. DIR gets last/ (to resume),\n"
            "best/ (the best validation loss: what sample and eval read) and metrics.csv.\n"
            "Under torchrun (torchrun --nproc-per-node N -m rnnkit textgen train ...) each\n"
            "process trains on its share of the --batch streams; process 0 writes."
        ),
        epilog=EXAMPLES,
    )
    return parser


def train_command(args: argparse.Namespace) -> int:
    options = given(args, textgen.TextData, CharLMConfig, TrainConfig)
    if not args.resume and not {"max_steps", "max_time"} & options.keys():
        options["max_time"] = float(DEFAULT_MAX_TIME)
    return run_training(textgen.train, options, args, format_summary)


def format_summary(s: dict) -> str:
    lines = [stopped(s, "tokens_per_s", "characters", epochs=False)]
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
