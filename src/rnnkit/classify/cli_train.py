"""`rnnkit classify train`: its parser and command over `rnnkit.classify.train`.

Defaults shown in --help come from the dataclasses that own them (ClassifyData,
ClassifierConfig, TrainConfig); an option left out is None here and takes that default.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from rnnkit import classify
from rnnkit.classify.model import POOLINGS, ClassifierConfig
from rnnkit.classify.run import DEFAULT_EPOCHS, ClassifyData
from rnnkit.layers import LAYERS
from rnnkit.train.cli import (
    fraction,
    positive_int,
    run_dir_options,
    run_training,
    training_options,
)

TRAIN_OPTIONS = (  # argparse dests handed to classify.train when given
    *("train", "valid", "test", "valid_fraction", "text_column", "label_column", "encoding"),
    *("on_missing", "tokenizer", "min_freq", "max_vocab", "max_tokens", "truncate", "batch"),
    "vectors",
    *("cell", "bidirectional", "hidden", "embed", "layers", "pooling", "dropout"),
    *("epochs", "lr", "max_steps", "max_time", "eval_every", "seed", "device"),
)
EXAMPLES = """examples:
  rnnkit classify train --train reviews.csv --text-column review --label-column sentiment \\
      --bidirectional --epochs 5 --out runs/sentiment
  rnnkit classify train --train aclImdb/train --test aclImdb/test --bidirectional --out runs/imdb
  rnnkit classify predict runs/sentiment "The movie was great"
  rnnkit classify predict runs/sentiment --input new.csv --output labelled.csv
  rnnkit classify eval runs/sentiment --data test.csv --json
"""
DATA_FORMATS = (
    "a CSV, TSV or JSONL file (columns --text-column and --label-column) or a folder with "
    "one sub-folder of .txt files per label"
)


def _default(cls, name: str):
    return next(f.default for f in fields(cls) if f.name == name)


def train_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "train",
        help="train a text classifier on labelled texts",
        description=(
            "Train a recurrent text classifier (embedding, RNN/LSTM/GRU, pooling, linear head)\n"
            f"on {DATA_FORMATS}.\n"
            "Texts are batched by similar length and the padding never changes a result. The\n"
            "vocabulary is built on the training texts only. DIR gets best/ (the best\n"
            "validation accuracy: what predict and eval read), last/ and metrics.csv."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--train", required=True, metavar="FILE|DIR", help=DATA_FORMATS)
    data.add_argument(
        "--valid",
        metavar="FILE|DIR",
        help="validation data (default: a seeded, stratified --valid-fraction of --train)",
    )
    data.add_argument(
        "--test", metavar="FILE|DIR", help="test data, evaluated with the best weights at the end"
    )
    data.add_argument(
        "--valid-fraction",
        type=fraction,
        metavar="F",
        help="held out of --train when --valid is not given; 0: no validation "
        f"(default: {_default(ClassifyData, 'valid_fraction')})",
    )
    for flag, what in (("text", "the texts"), ("label", "the labels")):
        data.add_argument(
            f"--{flag}-column",
            metavar="NAME",
            help=f"CSV/TSV column or JSONL key of {what} "
            f"(default: {_default(ClassifyData, f'{flag}_column')})",
        )
    data.add_argument("--encoding", help="the files' text encoding (default: utf-8)")
    data.add_argument(
        "--on-missing",
        choices=("skip", "error"),
        help="rows with a missing or empty text or label: skip them (and count them) or stop "
        "(default: skip)",
    )
    data.add_argument(
        "--tokenizer",
        choices=("word", "char"),
        help="word: lower-cased words and punctuation; char: characters (default: word)",
    )
    data.add_argument(
        "--min-freq",
        type=positive_int,
        metavar="N",
        help="tokens seen fewer than N times in training read as <unk> "
        f"(default: {_default(ClassifyData, 'min_freq')})",
    )
    data.add_argument(
        "--max-vocab",
        type=positive_int,
        metavar="N",
        help=f"vocabulary size limit (default: {_default(ClassifyData, 'max_vocab')})",
    )
    data.add_argument(
        "--max-tokens",
        type=positive_int,
        metavar="N",
        help="cut each text to N tokens (which: --truncate) "
        f"(default: {_default(ClassifyData, 'max_tokens')})",
    )
    data.add_argument(
        "--truncate",
        choices=("head", "tail", "head+tail"),
        help="keep a long text's first N tokens, its last N (where reviews give their "
        "verdict), or its first N/4 and last 3N/4 (default: head)",
    )
    data.add_argument(
        "--batch",
        type=positive_int,
        metavar="N",
        help=f"texts per batch (default: {_default(ClassifyData, 'batch')})",
    )
    data.add_argument(
        "--vectors",
        metavar="FILE",
        help="pretrained word vectors (GloVe or word2vec text format) for the embedding",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--cell",
        choices=tuple(LAYERS),
        help=f"the recurrent cell (default: {_default(ClassifierConfig, 'cell')})",
    )
    model.add_argument(
        "--bidirectional",
        action="store_true",
        default=None,
        help="read each text in both directions",
    )
    for flag, what in (
        ("hidden", "hidden size of each layer and direction"),
        ("embed", "embedding size (default with --vectors: theirs)"),
        ("layers", "stacked layers"),
    ):
        model.add_argument(
            f"--{flag}",
            type=positive_int,
            metavar="N",
            help=f"{what} (default: {_default(ClassifierConfig, flag)})",
        )
    model.add_argument(
        "--pooling",
        choices=POOLINGS,
        help="how the steps of a text become one vector: the final states, or the mean or "
        f"max over its steps (default: {_default(ClassifierConfig, 'pooling')})",
    )
    model.add_argument(
        "--dropout",
        type=fraction,
        metavar="P",
        help=f"(default: {_default(ClassifierConfig, 'dropout')})",
    )
    training_options(parser, DEFAULT_EPOCHS)
    run_dir_options(
        parser,
        "print the summary as one JSON object on stdout (step, epochs, seconds, "
        "tokens_per_s, train_loss, best_valid_accuracy, counts, test: the eval report)",
    )
    parser.set_defaults(func=train_command)
    return parser


def train_command(args: argparse.Namespace) -> int:
    options = {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
    return run_training(classify.train, options, args, format_summary)


def format_summary(s: dict) -> str:
    lines = [
        f"stopped at step {s['step']} ({s['epochs']:.2f} epochs, {s['stop_reason']}) after "
        f"{s['seconds']:.1f} s of training"
        + (f", {s['tokens_per_s']:,.0f} tokens/s" if s["tokens_per_s"] else "")
    ]
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
