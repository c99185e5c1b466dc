"""`rnnkit speech train`: its parser and command over `rnnkit.speech.train`.

Defaults shown in --help come from the dataclasses that own them (SpeechData, FeatureConfig,
Masking, SpeechConfig, TrainConfig); an option left out is None here and takes that default.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from rnnkit import speech
from rnnkit.layers import LAYERS
from rnnkit.speech.augment import Masking
from rnnkit.speech.features import KINDS, FeatureConfig
from rnnkit.speech.model import POOLINGS, TASKS, SpeechConfig
from rnnkit.speech.run import DEFAULT_EPOCHS, SpeechData
from rnnkit.speech.text import UNITS
from rnnkit.train.cli import (
    fraction,
    nonnegative_int,
    positive_int,
    run_dir_options,
    run_training,
    training_options,
)

TRAIN_OPTIONS = (  # argparse dests handed to speech.train when given
    *("train", "valid", "test", "valid_fraction", "task", "units", "batch", "beam"),
    *("sample_rate", "kind", "n_mels", "n_mfcc", "mean_norm"),
    *("freq_masks", "time_masks"),
    *("cell", "hidden", "layers", "bidirectional", "subsample", "pooling", "dropout"),
    *("epochs", "lr", "max_steps", "max_time", "eval_every", "seed", "device"),
)
EXAMPLES = """examples:
  rnnkit speech fsdd-manifest --root shared/data/fsdd --out fsdd --strings 3000
  rnnkit speech train --manifest fsdd/train.csv --test fsdd/test.csv --out runs/digits
  rnnkit speech train --manifest fsdd/strings_train.csv --task ctc --units word \\
      --subsample 3 --out runs/strings
  rnnkit speech eval runs/strings --manifest fsdd/strings_test.csv
  rnnkit speech transcribe runs/strings my_recording.wav
"""


def _default(cls, name: str):
    return next(f.default for f in fields(cls) if f.name == name)


def train_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "train",
        help="train an isolated-word classifier or a CTC recogniser on a manifest",
        description=(
            "Train a recurrent acoustic model on a manifest (a CSV with the header\n"
            "path,transcript, or JSONL). --task classify: each transcript is one class (spoken\n"
            "words); --task ctc: a label sequence learnt with CTC. The feature normalisation,\n"
            "labels and settings are stored in the checkpoint. DIR gets best/ (the lowest\n"
            "validation error: what transcribe and eval read), last/ and metrics.csv."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--manifest", dest="train", required=True, metavar="FILE", help="training")
    data.add_argument(
        "--valid", metavar="FILE", help="validation (default: a seeded --valid-fraction of train)"
    )
    data.add_argument("--test", metavar="FILE", help="evaluated with the best weights at the end")
    data.add_argument(
        "--valid-fraction",
        type=fraction,
        metavar="P",
        help=f"(default: {_default(SpeechData, 'valid_fraction')})",
    )
    data.add_argument("--task", choices=TASKS, help=f"(default: {_default(SpeechData, 'task')})")
    data.add_argument(
        "--units",
        choices=UNITS,
        help="ctc: characters (spaces included) or whitespace-separated words "
        f"(default: {_default(SpeechData, 'units')})",
    )
    data.add_argument(
        "--batch",
        type=positive_int,
        metavar="N",
        help=f"(default: {_default(SpeechData, 'batch')})",
    )
    data.add_argument(
        "--beam",
        type=positive_int,
        metavar="N",
        help="ctc: beam of the validation and test decoding; 1: greedy "
        f"(default: {_default(SpeechData, 'beam')})",
    )
    feats = parser.add_argument_group("features")
    feats.add_argument(
        "--sample-rate",
        type=positive_int,
        metavar="HZ",
        help=f"audio is resampled to it (default: {_default(FeatureConfig, 'sample_rate')})",
    )
    feats.add_argument(
        "--kind", choices=KINDS, help=f"(default: {_default(FeatureConfig, 'kind')})"
    )
    for flag in ("n_mels", "n_mfcc"):
        feats.add_argument(
            f"--{flag.replace('_', '-')}",
            type=positive_int,
            metavar="N",
            help=f"(default: {_default(FeatureConfig, flag)})",
        )
    feats.add_argument(
        "--mean-norm",
        action="store_true",
        default=None,
        help="subtract each utterance's own mean of each feature first (helps with unseen "
        "speakers; a model trained so cannot stream)",
    )
    for flag, what in (("freq_masks", "bands of features"), ("time_masks", "spans of frames")):
        feats.add_argument(
            f"--{flag.replace('_', '-')}",
            type=nonnegative_int,
            metavar="N",
            help=f"SpecAugment: {what} zeroed per training utterance "
            f"(default: {_default(Masking, flag)})",
        )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--cell", choices=tuple(LAYERS), help=f"(default: {_default(SpeechConfig, 'cell')})"
    )
    model.add_argument(
        "--bidirectional",
        action=argparse.BooleanOptionalAction,
        help="a forward and a backward pass; --no-bidirectional for a model that can stream "
        f"(default: {_default(SpeechConfig, 'bidirectional')})",
    )
    for flag, what in (
        ("hidden", "hidden units per direction"),
        ("layers", "stacked layers"),
        ("subsample", "frames stacked into one step"),
    ):
        model.add_argument(
            f"--{flag}",
            type=positive_int,
            metavar="N",
            help=f"{what} (default: {_default(SpeechConfig, flag)})",
        )
    model.add_argument(
        "--pooling",
        choices=POOLINGS,
        help=f"classify (default: {_default(SpeechConfig, 'pooling')})",
    )
    model.add_argument(
        "--dropout",
        type=fraction,
        metavar="P",
        help=f"(default: {_default(SpeechConfig, 'dropout')})",
    )
    training_options(
        parser,
        DEFAULT_EPOCHS,
        epochs="(default: {epochs} when neither --max-steps nor --max-time is given)",
        max_steps="stop after N updates",
        max_time="stop after this much training, e.g. 90s, 30m (with --epochs: whichever is first)",
        lr="peak learning rate (default: {lr})",
        eval_every="(default: once an epoch)",
        seed="(default: {seed})",
        device="e.g. cpu, cuda (default: cuda when available)",
    )
    run_dir_options(
        parser,
        "print the summary as one JSON object on stdout (step, epochs, seconds, train_loss, "
        "best_valid_error, counts, test: the eval report)",
    )
    parser.set_defaults(func=train_command)
    return parser


def train_command(args: argparse.Namespace) -> int:
    options = {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
    return run_training(speech.train, options, args, format_summary)


def format_summary(s: dict) -> str:
    lines = [
        f"stopped at step {s['step']} ({s['epochs']:.2f} epochs, {s['stop_reason']}) after "
        f"{s['seconds']:.1f} s of training"
        + (f", {s['frames_per_s']:,.0f} frames/s" if s["frames_per_s"] else "")
    ]
    if s["train_loss"] is not None:
        lines.append(f"train loss          {s['train_loss']:.4g}")
    if s["best_valid_error"] is not None:
        what = "error" if s["task"] == "classify" else "WER"
        lines.append(f"best valid {what:<8} {s['best_valid_error']:.2%}")
    if s["test"] is not None:
        lines.append(format_result(s["test"], "test"))
    lines.append(f"run directory       {s['out']}  (rnnkit speech transcribe {s['out']} FILE.wav)")
    return "\n".join(lines)


def format_result(r: dict, source: str) -> str:
    if "accuracy" in r:
        return f"{source}: accuracy {r['accuracy']:.2%} over {r['examples']:,} utterances"
    return (
        f"{source}: CER {r['cer']:.2%}  WER {r['wer']:.2%}  utterance error "
        f"{r['sentence_error']:.2%} over {r['utterances']:,} utterances (beam {r['beam']})"
    )
