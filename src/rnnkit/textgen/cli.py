"""`rnnkit textgen train | sample | eval | inspect | export`: a parser and a command per verb
over `rnnkit.textgen` (train's in `cli_textgen_train`, export's step model in `textgen.export`)."""

from __future__ import annotations

import argparse
import inspect
import json
import logging

from rnnkit import textgen
from rnnkit.export.cli import export_verb
from rnnkit.textgen.cli_train import EXAMPLES, train_command_parser
from rnnkit.textgen.data import read_text
from rnnkit.textgen.export import build as build_export
from rnnkit.textgen.generate import generate
from rnnkit.textgen.inspect import MAX_CHARS
from rnnkit.train.cli import DIR_HELP, log_to_stderr, stream, task_parser
from rnnkit.train.options import nonnegative_float, nonnegative_int, positive_int, probability


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


# ---- inspect


def inspect_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "inspect",
        help="an HTML page of a text coloured by a hidden unit's activation",
        description=(
            "Read a text through a trained model and write one self-contained HTML page (no\n"
            "network needed): the text with each character coloured by a hidden unit's\n"
            "activation after reading it (blue -1, white 0, red +1), a unit picker, and the\n"
            "units most correlated (Pearson r) with features of the text: inside double\n"
            "quotes, position in line (characters since the last newline), bracket depth\n"
            "of ( [ {. Characters the model never saw read as <unk>, as in eval and sample.\n"
            "Open the page in a browser; PAGE#unit=N opens it on unit N."
        ),
        epilog="example:\n  rnnkit textgen inspect runs/mytext --text input.txt --out page.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", metavar="DIR", help=DIR_HELP)
    parser.add_argument("--text", required=True, metavar="FILE", help="the text file to read")
    parser.add_argument("--out", required=True, metavar="PAGE", help="the HTML file to write")
    parser.add_argument(
        "--encoding", default="utf-8", help="the file's text encoding (default: %(default)s)"
    )
    parser.add_argument(
        "--max-chars",
        type=positive_int,
        default=MAX_CHARS,
        metavar="N",
        help="read and show the first N characters (default: %(default)s)",
    )
    parser.add_argument(
        "--layer",
        type=int,
        metavar="K",
        help="the layer to show, from 0 (default: the top layer)",
    )
    parser.add_argument(
        "--state",
        choices=("h", "c"),
        default="h",
        help="h: the hidden state; c: an LSTM's cell state (default: %(default)s)",
    )
    parser.add_argument("--device", default="cpu", help="(default: %(default)s)")
    parser.set_defaults(func=inspect_command)
    return parser


def inspect_command(args: argparse.Namespace) -> int:
    model, vocab, info = textgen.load(args.dir, args.device)
    text = read_text(args.text, args.encoding)
    found = textgen.inspect_text(
        model, vocab, text, layer=args.layer, state=args.state, max_chars=args.max_chars
    )
    page = textgen.write_page(args.out, found, source=f"{info['path']} (step {info['step']})")
    n, units = found.activations.shape
    print(
        f"wrote {page}: {n:,} characters, {units} units of layer {found.layer} "
        f"({found.state}) of a {found.layers}-layer {found.cell}"
    )
    for name in textgen.FEATURES:
        best = ", ".join(f"{u} (r = {r:+.2f})" for u, r in found.top(name, 3))
        print(f"  {name}: units {best}")
    unknown = int(found.unknown.sum())
    if unknown:
        print(f"note: {unknown:,} characters are not in the model's vocabulary (read as <unk>)")
    return 0


# ---- export


def export_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = export_verb(
        verbs,
        build_export,
        items="characters",
        help="write the step model as ONNX or a torch.export program, with a JSON sidecar",
        description="Write the character model as a step model: each row's current character "
        "id (batch,) and the recurrent state (layers, batch, hidden) in, the next character's "
        "logits (batch, vocabulary) and the new state out, with a dynamic batch, and a JSON "
        "sidecar beside it holding the vocabulary and the state's names and shapes; a "
        "generator feeds the state back with each character. Before writing, it reads a "
        "held-back text (--data, else the last part of the run's text) one character at a "
        "time through the export and through rnnkit and prints the largest difference; an "
        "export that differs is not written.",
        epilog="examples:\n  rnnkit textgen export runs/mytext\n"
        "  rnnkit textgen export runs/mytext --format pt2 --data held_out.txt",
    )
    parser.add_argument(
        "--data", metavar="FILE", help="a held-back text (default: the run's validation text)"
    )
    parser.add_argument("--encoding", help="the file's text encoding (default: utf-8)")
    return parser


def textgen_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return task_parser(
        subparsers,
        "textgen",
        (
            train_command_parser,
            sample_command_parser,
            eval_command_parser,
            inspect_command_parser,
            export_command_parser,
        ),
        help="character-level text generation: train, sample, eval, inspect, export",
        description="Train a character-level language model on your text, sample from it, "
        "evaluate it, and see what its hidden units follow.",
        epilog=EXAMPLES,
    )
