"""The `rnnkit` command line: argument parsing, subcommand dispatch, error reporting, the demo.

Each subcommand NAME has a ``NAME_command_parser(subparsers)`` that registers it and a
``NAME_command(args)`` that runs it; ``main`` dispatches through ``args.func(args)``; the
task commands live in their own modules (`cli_textgen`, `cli_classify`, `cli_forecast`, `cli_lab`,
`cli_speech`, `cli_translate`).
Usage errors and the expected failures of a command (``ValueError``, ``TypeError``,
``OSError``, and ``FloatingPointError``, which is how training reports a non-finite loss)
become a single ``error: <message>`` line on stderr and exit status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from importlib import metadata

import torch

import rnnkit
from rnnkit import textgen
from rnnkit.bptt import native
from rnnkit.classify.cli import classify_command_parser
from rnnkit.forecast.cli import forecast_command_parser
from rnnkit.lab.cli import lab_command_parser
from rnnkit.speech.cli import speech_command_parser
from rnnkit.textgen.cli import textgen_command_parser
from rnnkit.train.cli import stream
from rnnkit.train.options import command_line, nonnegative_float
from rnnkit.translate.cli import translate_command_parser

# The founding notes' worked example: a scalar Elman RNN followed by a linear output.
DEMO_W_XH, DEMO_W_HH, DEMO_B_H = 0.5, 0.3, 0.1
DEMO_W_HY, DEMO_B_Y = 0.4, 0.2
DEMO_INPUTS = (1.0, 2.0, 3.0)

# The demo's character model (textgen options): small enough to learn words within a minute
# on one CPU thread; about 1.4 nats/char on the validation text after 12 s, 390 steps.
DEMO_OPTIONS = {
    "cell": "gru",
    "hidden": 256,
    "layers": 1,
    "dropout": 0.0,  # a minute is far too short to overfit
    "bptt": 64,
    "batch": 32,
    "lr": 3e-3,
    "warmup_steps": 20,  # of the few hundred steps a minute allows
    "eval_every": 10**9,  # validated once, at the end
    "tensorboard": False,
}
DEMO_PRIME, DEMO_SAMPLE_LENGTH, DEMO_TEMPERATURE = "The ", 300, 0.7
PROGRESS_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error reported as one `error:` line like every other error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    try:
        return metadata.version("rnnkit")
    except metadata.PackageNotFoundError:
        return getattr(rnnkit, "__version__", "unknown")


def demo_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="the worked example, then a character model trained for a minute",
        description="Compute the founding notes' worked example with rnnkit.RNN and print "
        "h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h) and y_t = W_hy h_t + b_y for each step; "
        "then train a small character-level GRU on the built-in corpus (the text of "
        "Python's help topics) and print a sample of what it writes.",
    )
    parser.add_argument(
        "--seconds",
        type=nonnegative_float,
        default=60.0,
        metavar="S",
        help="how long to train the character model; 0: skip it (default: %(default)g)",
    )
    parser.add_argument(
        "--no-train", action="store_true", help="print the worked example only (--seconds 0)"
    )
    parser.set_defaults(func=demo_command)
    return parser


def demo_command(args: argparse.Namespace) -> int:
    print_worked_example()  # three steps of a 1-unit RNN: no wait for the C++ build (main)
    if args.no_train or args.seconds == 0:
        return 0
    print()
    print(
        f"Training a character-level GRU (1 x {DEMO_OPTIONS['hidden']}) for {args.seconds:g} s "
        "on the built-in corpus, the text of Python's help topics:"
    )
    # One thread: measured faster than two for this model on a 2-core machine shared with other
    # work (66k against 32k characters/s), and it cannot fall into the OpenMP spin-wait state
    # that slowed a 2-thread demo process 20x for the rest of its life.
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="rnnkit-demo-") as out:
        run = textgen.train(
            {**DEMO_OPTIONS, "max_time": args.seconds}, out, on_step=_progress_lines()
        )
    s = run.summary
    print(
        f"{s['step']} steps in {s['seconds']:.0f} s ({s['tokens_per_s']:,.0f} characters/s); "
        f"validation loss {s['valid_nats_per_char']:.3f} nats/char "
        f"({s['valid_bits_per_char']:.3f} bits/char)"
    )
    print(f"\nA sample (temperature {DEMO_TEMPERATURE}):\n")
    chars = textgen.sample(
        run.model,
        run.vocab,
        DEMO_PRIME,
        length=DEMO_SAMPLE_LENGTH,
        temperature=DEMO_TEMPERATURE,
        seed=0,
    )
    stream(DEMO_PRIME, chars)
    return 0


def _progress_lines():
    """An on_step callback printing a line every PROGRESS_EVERY seconds, when no progress bar
    shows (stderr is not a terminal)."""
    if sys.stderr.isatty():
        return None
    start = last = time.perf_counter()

    def on_step(step: int, stats: dict) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= PROGRESS_EVERY:
            last = now
            print(f"  {now - start:4.0f} s  step {step:5d}  loss {stats['loss']:.3f} nats/char")

    return on_step


def print_worked_example() -> None:
    rnn = rnnkit.RNN(input_size=1, hidden_size=1)
    head = torch.nn.Linear(1, 1)
    with torch.no_grad():
        rnn.weight_ih_l0.fill_(DEMO_W_XH)
        rnn.weight_hh_l0.fill_(DEMO_W_HH)
        rnn.bias_ih_l0.fill_(DEMO_B_H)
        rnn.bias_hh_l0.fill_(0.0)
        head.weight.fill_(DEMO_W_HY)
        head.bias.fill_(DEMO_B_Y)
        x = torch.tensor(DEMO_INPUTS).reshape(len(DEMO_INPUTS), 1, 1)  # (T, B, I)
        h, _ = rnn(x)  # h_0 defaults to zeros
        y = head(h)

    print("h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h),  y_t = W_hy h_t + b_y")
    print(
        f"W_xh={DEMO_W_XH}  W_hh={DEMO_W_HH}  b_h={DEMO_B_H}  h_0=0  "
        f"W_hy={DEMO_W_HY}  b_y={DEMO_B_Y}"
    )
    print(f"{'t':>2}  {'x_t':>8}  {'h_t':>8}  {'y_t':>8}")
    for t, x_t in enumerate(DEMO_INPUTS):
        print(f"{t + 1:>2}  {x_t:8.5f}  {h[t, 0, 0].item():8.5f}  {y[t, 0, 0].item():8.5f}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rnnkit", description="rnnkit: RNN, LSTM and GRU with a hand-written BPTT."
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    demo_command_parser(subparsers)
    textgen_command_parser(subparsers)
    classify_command_parser(subparsers)
    forecast_command_parser(subparsers)
    translate_command_parser(subparsers)
    lab_command_parser(subparsers)
    speech_command_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # usage errors exit 2 via argparse
    if extra:  # TEXT arguments after an option (`run DIR --beam 1 TEXT`) land here
        if not hasattr(args, "texts") or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.texts = [*args.texts, *extra]
    try:
        # messages name flags, not Python arguments; only training (and large inputs) waits
        # for the C++ loops to be built (Trainer.fit builds them)
        with command_line(), native.no_build():
            return args.func(args) or 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, FloatingPointError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
