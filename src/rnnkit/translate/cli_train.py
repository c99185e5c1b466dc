"""`rnnkit translate train`: its parser and command over `rnnkit.translate.train`.

Defaults shown in --help come from the dataclasses that own them (TranslateData,
Seq2SeqConfig, TrainConfig); an option left out is None here and takes that default.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from rnnkit import translate
from rnnkit.train.cli import (
    fraction,
    positive_int,
    probability,
    run_dir_options,
    run_training,
    training_options,
)
from rnnkit.translate.attention import ATTENTIONS
from rnnkit.translate.model import CELLS, Seq2SeqConfig
from rnnkit.translate.run import DEFAULT_EPOCHS, TranslateData

TRAIN_OPTIONS = (  # argparse dests handed to translate.train when given
    *("source", "target", "valid_source", "valid_target", "test_source", "test_target"),
    *("encoding", "tokenizer", "min_freq", "max_vocab", "subword_vocab", "max_tokens", "batch"),
    *("beam", "alpha", "teacher_forcing_final"),
    *("cell", "attention", "hidden", "embed", "layers", "dropout", "tie_embeddings"),
    *("label_smoothing", "teacher_forcing"),
    *("epochs", "lr", "max_steps", "max_time", "eval_every", "seed", "device"),
)
EXAMPLES = """examples:
  rnnkit translate train --source train.de --target train.en \\
      --valid-source val.de --valid-target val.en --max-time 1h --out runs/de-en
  rnnkit translate train --source pairs.tsv --tokenizer subword --out runs/tsv
  rnnkit translate run runs/de-en "ein mann fährt fahrrad ."
  rnnkit translate run runs/de-en --input test.de --output test.hyp.en --beam 5
  rnnkit translate eval runs/de-en --source test.de --target test.en --json
"""


def _default(cls, name: str):
    return next(f.default for f in fields(cls) if f.name == name)


def train_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "train",
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
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--source",
        required=True,
        metavar="FILE",
        help="training sentences in the source language, one per line (.gz read too), or a "
        "TSV of source<TAB>target pairs when --target is left out",
    )
    data.add_argument("--target", metavar="FILE", help="their translations, line by line")
    for split, what in (("valid", "validation"), ("test", "test, translated at the end")):
        data.add_argument(f"--{split}-source", metavar="FILE", help=f"{what} source (or TSV)")
        data.add_argument(f"--{split}-target", metavar="FILE", help=f"{what} target")
    data.add_argument("--encoding", help="the files' text encoding (default: utf-8)")
    data.add_argument(
        "--tokenizer",
        choices=("word", "subword"),
        help="word: whitespace-separated tokens (give tokenised text); subword: sentencepiece "
        "trained on the training text (default: word)",
    )
    data.add_argument(
        "--min-freq",
        type=positive_int,
        metavar="N",
        help="word: tokens seen fewer than N times read as <unk> "
        f"(default: {_default(TranslateData, 'min_freq')})",
    )
    data.add_argument(
        "--max-vocab",
        type=positive_int,
        metavar="N",
        help=f"word: vocabulary limit (default: {_default(TranslateData, 'max_vocab')})",
    )
    data.add_argument(
        "--subword-vocab",
        type=positive_int,
        metavar="N",
        help=f"subword: pieces per language (default: {_default(TranslateData, 'subword_vocab')})",
    )
    data.add_argument(
        "--max-tokens",
        type=positive_int,
        metavar="N",
        help="cut longer sentences to N tokens, with a warning "
        f"(default: {_default(TranslateData, 'max_tokens')})",
    )
    data.add_argument(
        "--batch",
        type=positive_int,
        metavar="N",
        help=f"pairs per batch (default: {_default(TranslateData, 'batch')})",
    )
    data.add_argument(
        "--beam",
        type=positive_int,
        metavar="K",
        help=f"beam size for the test set (default: {_default(TranslateData, 'beam')})",
    )
    data.add_argument(
        "--alpha",
        type=float,
        metavar="A",
        help="beam length normalisation: log p / length^A "
        f"(default: {_default(TranslateData, 'alpha')})",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--cell", choices=CELLS, help=f"(default: {_default(Seq2SeqConfig, 'cell')})"
    )
    model.add_argument(
        "--attention",
        choices=ATTENTIONS,
        help="additive (Bahdanau) or multiplicative (Luong: trains faster) "
        f"(default: {_default(Seq2SeqConfig, 'attention')})",
    )
    for flag, what in (
        ("hidden", "hidden size (the encoder's per direction)"),
        ("embed", "embedding size"),
        ("layers", "stacked layers of the encoder and of the decoder"),
    ):
        model.add_argument(
            f"--{flag}",
            type=positive_int,
            metavar="N",
            help=f"{what} (default: {_default(Seq2SeqConfig, flag)})",
        )
    model.add_argument(
        "--dropout",
        type=fraction,
        metavar="P",
        help=f"(default: {_default(Seq2SeqConfig, 'dropout')})",
    )
    model.add_argument(
        "--tie-embeddings",
        action="store_true",
        default=None,
        help="share the target embedding with the output layer",
    )
    model.add_argument(
        "--label-smoothing",
        type=fraction,
        metavar="E",
        help=f"(default: {_default(Seq2SeqConfig, 'label_smoothing')})",
    )
    model.add_argument(
        "--teacher-forcing",
        type=probability,
        metavar="P",
        help="probability the decoder reads the true previous token in training; below 1, "
        "its own prediction otherwise (scheduled sampling) "
        f"(default: {_default(Seq2SeqConfig, 'teacher_forcing')})",
    )
    model.add_argument(
        "--teacher-forcing-final",
        type=probability,
        metavar="P",
        help="lower --teacher-forcing linearly to P by the last step (needs --epochs or "
        "--max-steps)",
    )
    training_options(
        parser, DEFAULT_EPOCHS, lr="peak learning rate, AdamW, cosine decay (default: 1e-3)"
    )
    run_dir_options(
        parser,
        "print the summary as one JSON object on stdout (step, epochs, seconds, "
        "best_valid_loss, valid_bleu_greedy, counts, test: BLEU, chrF and their signatures)",
    )
    parser.set_defaults(func=train_command)
    return parser


def train_command(args: argparse.Namespace) -> int:
    options = {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
    return run_training(translate.train, options, args, format_summary)


def format_summary(s: dict) -> str:
    lines = [
        f"stopped at step {s['step']} ({s['epochs']:.2f} epochs, {s['stop_reason']}) after "
        f"{s['seconds']:.1f} s of training"
        + (f", {s['tokens_per_s']:,.0f} target tokens/s" if s["tokens_per_s"] else "")
    ]
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
