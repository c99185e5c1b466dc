"""`rnnkit lab adding | copy | gradients | explode`: why plain RNNs are hard to train, shown.

Each verb is a parser and a command over `rnnkit.lab`; gradients and explode have their own
modules (cli_gradients.py, cli_explode.py).
"""

from __future__ import annotations

import argparse
import json
import logging

from rnnkit.lab import run
from rnnkit.lab.cli_explode import explode_command_parser
from rnnkit.lab.cli_gradients import gradients_command_parser
from rnnkit.lab.model import LabModelConfig
from rnnkit.lab.run import MAX_STEPS, TRAIN_DEFAULTS, LabData
from rnnkit.train.cli import log_to_stderr, training_options
from rnnkit.train.config import TrainConfig
from rnnkit.train.options import add_options, given

EXAMPLES = """examples:
  rnnkit lab adding --cell lstm --length 200            (solved: test MSE < 0.01)
  rnnkit lab adding --cell rnn --nonlinearity relu --init identity --length 100   (IRNN)
  rnnkit lab copy --cell gru --init chrono --length 100
  rnnkit lab gradients --length 200 --plot grads.png    (RNN, LSTM and GRU at initialisation)
  rnnkit lab explode                                    (no clipping diverges; clipping trains)
"""


def _task_parser(verbs, task: str, help: str, description: str) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        task,
        help=help,
        description=description,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(parser.add_argument_group("task"), LabData)
    add_options(parser.add_argument_group("model"), LabModelConfig)
    shown = {"max_steps": f"{MAX_STEPS} when --max-time is not given"}
    training_options(parser, defaults=TRAIN_DEFAULTS, shown=shown)
    output = parser.add_argument_group("output")
    output.add_argument(
        "--out", metavar="DIR", help="keep the run (checkpoints, metrics.csv) in DIR"
    )
    output.add_argument("--force", action="store_true", help="replace a run DIR holds")
    output.add_argument(
        "--json",
        action="store_true",
        help=f"print one JSON object (test_{'mse' if task == 'adding' else 'ce'}, "
        "baseline, solved, steps, seconds, ...)",
    )
    parser.set_defaults(func=task_command, task=task)
    return parser


def task_command(args: argparse.Namespace) -> int:
    options = {**given(args, LabData, LabModelConfig, TrainConfig), "tensorboard": False}
    with log_to_stderr(logging.INFO):
        s = run.train(args.task, options, args.out, overwrite=args.force)
    if args.json:
        print(json.dumps(s))
        return 0
    metric = "mse" if args.task == "adding" else "ce"
    extra = f", {s['test_accuracy']:.1%} of symbols copied" if args.task == "copy" else ""
    print(
        f"{args.task} T={s['length']} {s['cell']} (init {s['init']}): test {metric.upper()} "
        f"{s['test_' + metric]:.4f} against the baseline {s['baseline_' + metric]:.4f}{extra}: "
        f"{'solved' if s['solved'] else 'not solved'}; {s['steps']} steps in {s['seconds']:.0f} s "
        f"({s['stop_reason']})"
    )
    return 0


def lab_command_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "lab",
        help="the gradient lab: long-range tasks, vanishing and exploding gradients",
        description="See why plain RNNs are hard to train: the adding problem and copy "
        "memory against their memoryless baselines, gradient norms over time, and exploding "
        "gradients with and without clipping.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)
    _task_parser(
        verbs,
        "adding",
        "train on the adding problem",
        "Train on the adding problem "
        "(two channels of length T: values in U[0,1] and a marker with one 1 in each "
        "half; the target is the sum of the two marked values). Always answering 1 "
        "scores MSE 1/6 = 0.167; below 0.01 is solved.",
    )
    _task_parser(
        verbs,
        "copy",
        "train on copy memory",
        "Train on copy memory (Arjovsky et "
        "al. 2016): remember 10 symbols of 8 over a delay of T blanks and repeat them "
        "after the delimiter. A memoryless model scores 10 ln 8 / (T + 20) nats per "
        "step; solved is 99 % of the symbols copied right.",
    )
    gradients_command_parser(verbs, EXAMPLES)
    explode_command_parser(verbs, EXAMPLES)
    return parser
