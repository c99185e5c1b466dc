"""`rnnkit translate train`: its parser and command over `rnnkit.translate.train`.

Defaults shown in --help come from the dataclasses that own them (TranslateData, Seq2SeqConfig,
TrainConfig); an option left out is None here and takes that default, or with --resume the run's
own (train/resume.py).
"""

from __future__ import annotations

import argparse

from rnnkit import translate
from rnnkit.train.cli import run_training, stopped, train_verb
from rnnkit.train.config import EpochBudget, TrainConfig
from rnnkit.train.options import given
from rnnkit.translate.model import Seq2SeqConfig
from rnnkit.translate.run import DEFAULT_EPOCHS, TRAIN_DEFAULTS, TranslateData

EXAMPLES = """examples:
  rnnkit translate train --source train.de --target train.en \\
      --valid-source val.de --valid-target val.en --max-time 1h --out runs/de-en
  rnnkit translate train --source pairs.tsv --tokenizer subword --out runs/tsv
  rnnkit translate run runs/de-en "ein mann fährt fahrrad ."
  rnnkit translate run runs/de-en --input test.de --output test.hyp.en --beam 5
  rnnkit translate eval runs/de-en --source test.de --target test.en --json
"""


def train_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser, _ = train_verb(
        verbs,
        {"data": (TranslateData,), "model": (Seq2SeqConfig,)},
        train_command,
        epochs=DEFAULT_EPOCHS,
        defaults=TRAIN_DEFAULTS,
        json_help="print the summary as one JSON object on stdout (step, epochs, seconds, "
        "best_valid_loss, valid_bleu_greedy, counts, test: BLEU, chrF and their signatures)",
        help="train a translator on parallel text",
        description=(
            "Train an attentional encoder-decoder (a bidirectional GRU/LSTM encoder, a decoder\n"
            "with Bahdanau or Luong attention) on parallel text: two aligned files, or one TSV\n"
            "of source<TAB>target pairs. Pairs are batched by similar length; vocabularies or\n"
            "sentencepiece models are built on the training text only and stored in the\n"
            "checkpoint. DIR gets best/ (the best validation loss: what run and eval read),\n"
            "last/ and metrics.csv (with the validation BLEU of greedy decoding)."
        ),
        epilog=EXAMPLES,
    )
    return parser


def train_command(args: argparse.Namespace) -> int:
    options = given(args, TranslateData, Seq2SeqConfig, TrainConfig, EpochBudget)
    return run_training(translate.train, options, args, format_summary)


def format_summary(s: dict) -> str:
    lines = [stopped(s, "tokens_per_s", "target tokens")]
    if s["train_loss"] is not None:
        lines.append(f"train loss            {s['train_loss']:.4f}")
    if s["best_valid_loss"] is not None:
        lines.append(f"best valid loss       {s['best_valid_loss']:.4f}")
    if s["valid_bleu_greedy"] is not None:
        lines.append(f"valid BLEU (greedy)   {s['valid_bleu_greedy']:.2f}")
    if s["test"] is not None:
        t = s["test"]
        lines.append(
            f"test BLEU (beam {t['beam']})    {t['bleu']:.2f}  chrF {t['chrf']:.2f}  "
            f"({t['sentences']:,} sentences; {t['bleu_signature']})"
        )
    lines.append(f"run directory         {s['out']}  (rnnkit translate run {s['out']} TEXT)")
    return "\n".join(lines)
