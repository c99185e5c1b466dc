"""The `rnnkit` command line: argument parsing, subcommand dispatch and error reporting.

Each subcommand NAME has a ``NAME_command_parser(subparsers)`` that registers it and a
``NAME_command(args)`` that runs it; ``main`` dispatches through ``args.func(args)``.
Expected failures raised by a command (``ValueError``, ``TypeError``, ``OSError``) become a
single ``error: <message>`` line on stderr and exit status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

import torch

import rnnkit

# The founding notes' worked example: a scalar Elman RNN followed by a linear output.
DEMO_W_XH, DEMO_W_HH, DEMO_B_H = 0.5, 0.3, 0.1
DEMO_W_HY, DEMO_B_Y = 0.4, 0.2
DEMO_INPUTS = (1.0, 2.0, 3.0)


def _version() -> str:
    try:
        return metadata.version("rnnkit")
    except metadata.PackageNotFoundError:
        return getattr(rnnkit, "__version__", "unknown")


def demo_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="run the worked example: a scalar Elman RNN on x = [1, 2, 3]",
        description="Compute the founding notes' worked example with rnnkit.RNN and print "
        "h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h) and y_t = W_hy h_t + b_y for each step.",
    )
    parser.set_defaults(func=demo_command)
    return parser


def demo_command(args: argparse.Namespace) -> int:
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
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit", description="rnnkit: RNN, LSTM and GRU with a hand-written BPTT."
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    demo_command_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # usage errors exit 2 via argparse
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as exc:  # FileNotFoundError is an OSError
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
