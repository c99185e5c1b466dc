"""`rnnkit speech train`: its parser and command over `rnnkit.speech.train`.

Defaults shown in --help come from the dataclasses that own them (SpeechData, FeatureConfig,
Masking, SpeechConfig, TrainConfig); an option left out is None here and takes that default, or
with --resume the run's own (train/resume.py).
"""

from __future__ import annotations

import argparse

from rnnkit import speech
from rnnkit.speech.augment import Masking
from rnnkit.speech.features import FeatureConfig
from rnnkit.speech.model import SpeechConfig
from rnnkit.speech.run import DEFAULT_EPOCHS, TRAIN_DEFAULTS, SpeechData
from rnnkit.train.cli import run_training, stopped, train_verb
from rnnkit.train.config import EpochBudget, TrainConfig
from rnnkit.train.options import given

OPTIONS = (SpeechData, FeatureConfig, Masking, SpeechConfig, TrainConfig, EpochBudget)
EXAMPLES = """examples:
  rnnkit speech fsdd-manifest --root shared/data/fsdd --out fsdd --strings 3000
  rnnkit speech train --manifest fsdd/train.csv --test fsdd/test.csv --out runs/digits
  rnnkit speech train --manifest fsdd/strings_train.csv --task ctc --units word \\
      --subsample 3 --out runs/strings
  rnnkit speech eval runs/strings --manifest fsdd/strings_test.csv
  rnnkit speech transcribe runs/strings my_recording.wav
"""


def train_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser, _ = train_verb(
        verbs,
        {"data": (SpeechData,), "features": (FeatureConfig, Masking), "model": (SpeechConfig,)},
        train_command,
        epochs=DEFAULT_EPOCHS,
        defaults=TRAIN_DEFAULTS,
        json_help="print the summary as one JSON object on stdout (step, epochs, seconds, "
        "train_loss, best_valid_error, counts, test: the eval report)",
        help="train an isolated-word classifier or a CTC recogniser on a manifest",
        description=(
            "Train a recurrent acoustic model on a manifest (a CSV with the header\n"
            "path,transcript, or JSONL). --task classify: each transcript is one class (spoken\n"
            "words); --task ctc: a label sequence learnt with CTC. The feature normalisation,\n"
            "labels and settings are stored in the checkpoint. DIR gets best/ (the lowest\n"
            "validation error: what transcribe and eval read), last/ and metrics.csv."
        ),
        epilog=EXAMPLES,
    )
    return parser


def train_command(args: argparse.Namespace) -> int:
    options = given(args, *OPTIONS)
    return run_training(speech.train, options, args, format_summary)


def format_summary(s: dict) -> str:
    lines = [stopped(s, "frames_per_s", "frames")]
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
