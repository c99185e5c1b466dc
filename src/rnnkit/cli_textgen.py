"""`rnnkit textgen train | sample | eval`: a parser and a command per verb over `rnnkit.textgen`
(train's in `cli_textgen_train`)."""

from __future__ import annotations

import argparse
import inspect
import json
import logging

from rnnkit import textgen
from rnnkit.cli_common import (
    log_to_stderr,
    nonnegative_float,
    nonnegative_int,
    positive_int,
    probability,
    stream,
)
from rnnkit.cli_textgen_train import EXAMPLES, train_command_parser
from rnnkit.data.text import read_text
from rnnkit.generate import generate

DIR_HELP = "a checkpoint, or a training run's directory (reads DIR/best, else DIR/last)"


def _generate_default(name: str):
    return inspect.signature(generate).parameters[name].default


# ---- sample


def sample_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "sample",
        help="generate text from a trained model",
        description="Print the prime, then characters sampled one at a time as they are produced.",
    )
    parser.add_argument("dir", metavar="DIR", help=DIR_HELP)
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
    parser.add_argument("--seed", type=int, help="makes the output repeatable (default: random)")
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
    parser.add_argument("dir", metavar="DIR", help=DIR_HELP)
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
    data = info["config"].get("data", {})
    shape = {k: data[k] for k in ("batch", "bptt") if k in data}  # the run's, as in validation
    result = textgen.evaluate_text(model, vocab, text, **shape)
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
