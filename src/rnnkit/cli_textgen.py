"""`rnnkit textgen train | sample | eval`: a parser and a command per verb over `rnnkit.textgen`.

Defaults shown in --help come from the dataclasses that own them (TextData, CharLMConfig,
TrainConfig, generate's signature); an option left out is None here, so a resumed run can take
it from its checkpoint instead.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
from dataclasses import fields

import torch.distributed as dist

from rnnkit import distributed, textgen
from rnnkit.cli_common import (
    duration,
    fraction,
    log_to_stderr,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    probability,
    stream,
)
from rnnkit.data.text import read_text
from rnnkit.generate import generate
from rnnkit.models.lm import CELLS, CharLMConfig
from rnnkit.trainconfig import TrainConfig

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


def _generate_default(name: str):
    return inspect.signature(generate).parameters[name].default


# ---- train


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
        "--cell", choices=tuple(CELLS), help=f"(default: {_default(CharLMConfig, 'cell')})"
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
    output = parser.add_argument_group("output")
    output.add_argument("--out", required=True, metavar="DIR", help="the run directory")
    again = output.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in DIR from DIR/last; the data and model options are the "
        "run's, --max-steps/--max-time give the new total",
    )
    again.add_argument(
        "--force", action="store_true", help="replace a run DIR holds (deletes it first)"
    )
    output.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object on stdout (step, seconds, tokens_per_s, "
        "train_loss, valid_/best_valid_ nats_per_char and bits_per_char)",
    )
    parser.set_defaults(func=train_command)
    return parser


def train_command(args: argparse.Namespace) -> int:
    options = {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
    if not args.resume and not {"max_steps", "max_time"} & options.keys():
        options["max_time"] = float(DEFAULT_MAX_TIME)
    distributed.setup()
    main = distributed.is_main()
    try:
        with log_to_stderr(logging.INFO if main else logging.WARNING):
            run = textgen.train(options, args.out, resume=args.resume, overwrite=args.force)
    except BaseException:
        if distributed.is_distributed():
            dist.destroy_process_group()  # no barrier: the other processes may not get there
        raise
    distributed.cleanup()
    if main:
        print(json.dumps(run.summary) if args.json else format_summary(run.summary))
    return 0


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


# ---- sample


def sample_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "sample",
        help="generate text from a trained model",
        description="Print the prime, then characters sampled one at a time as they are produced.",
    )
    parser.add_argument("dir", metavar="DIR", help="a checkpoint, or a run directory (uses best/)")
    parser.add_argument("--prime", default="", metavar="TEXT", help="text to start from")
    parser.add_argument(
        "--length",
        type=nonnegative_int,
        default=_generate_default("length"),
        metavar="N",
        help="characters to generate (default: %(default)s)",
    )
    parser.add_argument(
        "--temperature",
        type=nonnegative_float,
        default=_generate_default("temperature"),
        metavar="T",
        help="below 1: safer, above 1: wilder; 0: greedy (default: %(default)s)",
    )
    parser.add_argument(
        "--top-k", type=positive_int, metavar="K", help="sample among the K likeliest only"
    )
    parser.add_argument(
        "--top-p",
        type=probability,
        metavar="P",
        help="sample among the likeliest characters that hold probability P (nucleus)",
    )
    parser.add_argument("--greedy", action="store_true", help="always the likeliest character")
    parser.add_argument("--seed", type=int, help="makes the output repeatable")
    parser.add_argument("--device", default="cpu", help="(default: %(default)s)")
    parser.set_defaults(func=sample_command)
    return parser


def sample_command(args: argparse.Namespace) -> int:
    model, vocab, _ = textgen.load(args.dir, args.device)
    with log_to_stderr(logging.WARNING):
        chars = textgen.sample(
            model,
            vocab,
            args.prime,
            length=args.length,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            greedy=args.greedy,
            seed=args.seed,
        )
    stream(args.prime, chars)
    return 0


# ---- eval


def eval_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "eval",
        help="nats and bits per character of a trained model on a text file",
        description="Evaluate a trained model on a text file: the mean cross-entropy in "
        "nats per character and bits per character, with the hidden state carried.",
    )
    parser.add_argument("dir", metavar="DIR", help="a checkpoint, or a run directory (uses best/)")
    parser.add_argument("--data", required=True, metavar="FILE", help="the text file")
    parser.add_argument(
        "--encoding", default="utf-8", help="the file's text encoding (default: %(default)s)"
    )
    parser.add_argument("--device", default="cpu", help="(default: %(default)s)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: nats_per_char, bits_per_char, chars, unknown_chars, "
        "checkpoint, step",
    )
    parser.set_defaults(func=eval_command)
    return parser


def eval_command(args: argparse.Namespace) -> int:
    model, vocab, info = textgen.load(args.dir, args.device)
    text = read_text(args.data, args.encoding)
    data = {**textgen.TextData().__dict__, **info["config"].get("data", {})}
    result = textgen.evaluate_text(model, vocab, text, batch=data["batch"], bptt=data["bptt"])
    result = {**result, "checkpoint": str(info["path"]), "step": info["step"]}
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{args.data}: {result['nats_per_char']:.4f} nats/char  "
        f"{result['bits_per_char']:.4f} bits/char  over {result['chars']:,} characters "
        f"({result['checkpoint']}, step {result['step']})"
    )
    if result["unknown_chars"]:
        print(f"note: {result['unknown_chars']:,} characters are not in the model's vocabulary")
    return 0


def textgen_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "textgen",
        help="character-level text generation: train, sample, eval",
        description="Train a character-level language model on your text, sample from it, "
        "and evaluate it.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)
    train_command_parser(verbs)
    sample_command_parser(verbs)
    eval_command_parser(verbs)
    return parser
