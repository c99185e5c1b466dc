"""`rnnkit lab explode`: exploding gradients, training without and with clipping."""

from __future__ import annotations

import argparse
import json
import logging

from rnnkit.lab import gradients, run
from rnnkit.train.cli import log_to_stderr
from rnnkit.train.loop import NonFiniteError
from rnnkit.train.options import positive_float, positive_int


def explode_command_parser(verbs, epilog: str) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "explode",
        help="exploding gradients: training without and with clipping, side by side",
        description="An Elman RNN whose W_hh is scaled past spectral radius 1 trains on the "
        "adding problem twice with plain SGD: without gradient clipping the gradient norm "
        "explodes and the non-finite guard stops the run, naming the step; with clipping the "
        "same model trains.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--radius",
        type=positive_float,
        default=1.5,
        help="spectral radius of W_hh (default: %(default)s)",
    )
    parser.add_argument(
        "--nonlinearity", choices=("tanh", "relu"), default="relu", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--length", type=positive_int, default=50, metavar="T", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--hidden", type=positive_int, default=64, metavar="N", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--lr", type=positive_float, default=0.01, help="SGD's learning rate (default: %(default)s)"
    )
    parser.add_argument(
        "--clip", type=positive_float, default=1.0, metavar="NORM", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--steps", type=positive_int, default=300, metavar="N", help="(default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=explode_command)
    return parser


def explode_command(args: argparse.Namespace) -> int:
    outcome = {
        name: _train(args, clip) for name, clip in (("no_clipping", None), ("clipping", args.clip))
    }
    if args.json:
        print(json.dumps({"radius": args.radius, **outcome}))
        return 0
    _print_curves(outcome, args)
    return 0


def _train(args: argparse.Namespace, clip: float | None) -> dict:
    """One run on the adding problem with plain SGD, W_hh scaled to spectral radius --radius:
    whether it diverged (the non-finite guard's message), its test MSE and its curve."""
    losses: list[tuple[int, float, float]] = []
    options = {
        "cell": "rnn",
        "nonlinearity": args.nonlinearity,
        "hidden": args.hidden,
        "length": args.length,
        "optimizer": "sgd",
        "momentum": 0.0,
        "lr": args.lr,
        "clip_norm": clip,
        "max_steps": args.steps,
        "eval_every": args.steps,
        "stop_at": None,
        "seed": args.seed,
        "tensorboard": False,
        "progress": False,
    }

    def scale(model):
        gradients.scale_spectral_radius_(model.rnn, args.radius)

    def record(step, stats):
        losses.append((step, stats["loss"], stats["grad_norm"]))

    with log_to_stderr(logging.WARNING):
        try:
            s = run.train("adding", options, prepare=scale, on_step=record)
            outcome = {"diverged": False, "test_mse": s["test_mse"], "message": None}
        except NonFiniteError as exc:
            outcome = {"diverged": True, "test_mse": None, "message": str(exc)}
    return {**outcome, "steps": len(losses), "curve": losses}


def _print_curves(outcome: dict, args: argparse.Namespace) -> None:
    print(
        f"Elman RNN ({args.nonlinearity}), W_hh at spectral radius {args.radius}, "
        f"adding problem T={args.length}, SGD lr {args.lr}"
    )
    clipped, norm = f"loss, clip {args.clip}", "grad norm"
    print(f"{'step':>6}  {'loss, no clipping':>18}  {norm:>10}  {clipped:>18}  {norm:>10}")
    a, b = outcome["no_clipping"]["curve"], outcome["clipping"]["curve"]
    show = sorted(
        {1, 2, 3, 5, 10, 25, 50, 100, 200, 300, 500, 1000, args.steps}
        & set(range(1, args.steps + 1))
    )
    for step in show:
        left = (
            f"{a[step - 1][1]:18.4g}  {a[step - 1][2]:10.3g}"
            if step <= len(a)
            else f"{'(stopped)':>18}  {'':>10}"
        )
        right = (
            f"{b[step - 1][1]:18.4g}  {b[step - 1][2]:10.3g}"
            if step <= len(b)
            else f"{'(stopped)':>18}  {'':>10}"
        )
        print(f"{step:6d}  {left}  {right}")
    for name in ("no_clipping", "clipping"):
        o = outcome[name]
        what = (
            f"stopped: {o['message']}"
            if o["diverged"]
            else f"trained {o['steps']} steps, test MSE {o['test_mse']:.4f} (baseline 0.1667)"
        )
        print(f"{name.replace('_', ' ')}: {what}")
