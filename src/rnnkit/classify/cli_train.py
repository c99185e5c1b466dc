"""`rnnkit classify train`: its parser and command over `rnnkit.classify.train`.

Defaults shown in --help come from the dataclasses that own them (ClassifyData,
ClassifierConfig, TrainConfig); an option left out is None here and takes that default, or with
--resume the run's own (train/resume.py).
"""

from __future__ import annotations

import argparse

from rnnkit import classify
from rnnkit.classify.model import ClassifierConfig
from rnnkit.classify.run import DATA_FORMATS, DEFAULT_EPOCHS, TRAIN_DEFAULTS, ClassifyData
from rnnkit.train.cli import run_training, stopped, train_verb
from rnnkit.train.config import EpochBudget, TrainConfig
from rnnkit.train.options import given

EXAMPLES = """examples:
  rnnkit classify train --train reviews.csv --text-column review --label-column sentiment \\
      --bidirectional --epochs 5 --out runs/sentiment
  rnnkit classify train --train aclImdb/train --test aclImdb/test --bidirectional --out runs/imdb
  rnnkit classify predict runs/sentiment "The movie was great"
  rnnkit classify predict runs/sentiment --input new.csv --output labelled.csv
  rnnkit classify eval runs/sentiment --data test.csv --json
"""


def train_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser, _ = train_verb(
        verbs,
        {"data": (ClassifyData,), "model": (ClassifierConfig,)},
        train_command,
        epochs=DEFAULT_EPOCHS,
        defaults=TRAIN_DEFAULTS,
        json_help="print the summary as one JSON object on stdout (step, epochs, seconds, "
        "tokens_per_s, train_loss, best_valid_accuracy, counts, test: the eval report)",
        help="train a text classifier on labelled texts",
        description=(
            "Train a recurrent text classifier (embedding, RNN/LSTM/GRU, pooling, linear head)\n"
            f"on {DATA_FORMATS}.\n"
            "Texts are batched by similar length and the padding never changes a result. The\n"
            "vocabulary is built on the training texts only. DIR gets best/ (the best\n"
            "validation accuracy: what predict and eval read), last/ and metrics.csv."
        ),
        epilog=EXAMPLES,
    )
    return parser


def train_command(args: argparse.Namespace) -> int:
    options = given(args, ClassifyData, ClassifierConfig, TrainConfig, EpochBudget)
    return run_training(classify.train, options, args, format_summary)


def format_summary(s: dict) -> str:
    lines = [stopped(s, "tokens_per_s")]
    if s["train_loss"] is not None:
        lines.append(f"train loss            {s['train_loss']:.4f}")
    if s["best_valid_accuracy"] is not None:
        lines.append(f"best valid accuracy   {s['best_valid_accuracy']:.2%}")
    if s["test"] is not None:
        t = s["test"]
        lines.append(
            f"test accuracy         {t['accuracy']:.2%}  macro-F1 {t['macro_f1']:.4f}  "
            f"({t['examples']:,} texts)"
        )
    lines.append(f"run directory         {s['out']}  (rnnkit classify predict {s['out']} TEXT)")
    return "\n".join(lines)
