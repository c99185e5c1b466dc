"""`rnnkit lab adding | copy | gradients | explode`: why plain RNNs are hard to train, shown.

Each verb is a parser and a command over `rnnkit.lab`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math

import torch

from rnnkit.init import SCHEMES
from rnnkit.lab import gradients, run
from rnnkit.lab.plot import plot_gradients
from rnnkit.layers import LAYERS
from rnnkit.train.cli import (
    duration,
    log_to_stderr,
    nonnegative_float,
    positive_float,
    positive_int,
)
from rnnkit.train.loop import NonFiniteError

EXAMPLES = """examples:
  rnnkit lab adding --cell lstm --length 200            (solved: test MSE < 0.01)
  rnnkit lab adding --cell rnn --nonlinearity relu --init identity --length 100   (IRNN)
  rnnkit lab copy --cell gru --init chrono --length 100
  rnnkit lab gradients --length 200 --plot grads.png    (RNN, LSTM and GRU at initialisation)
  rnnkit lab explode                                    (no clipping diverges; clipping trains)
"""


def _model_options(parser: argparse.ArgumentParser, cell_default: str | None = "lstm") -> None:
    group = parser.add_argument_group("model")
    if cell_default is not None:
        group.add_argument(
            "--cell", choices=tuple(LAYERS), default=cell_default, help="(default: %(default)s)"
        )
    group.add_argument(
        "--hidden",
        type=positive_int,
        default=128,
        metavar="N",
        help="hidden units (default: %(default)s)",
    )
    group.add_argument(
        "--layers", type=positive_int, default=1, metavar="N", help="(default: %(default)s)"
    )
    group.add_argument(
        "--nonlinearity",
        choices=("tanh", "relu"),
        default="tanh",
        help="of the Elman RNN (default: %(default)s)",
    )
    group.add_argument(
        "--init",
        choices=SCHEMES,
        default="default",
        help="default: torch.nn's uniform; orthogonal: orthogonal W_hh blocks (LSTM forget "
        "bias 1); identity: IRNN's W_hh = I (use with --cell rnn --nonlinearity relu); "
        "chrono: gate biases for dependencies up to the sequence length (LSTM, GRU) "
        "(default: %(default)s)",
    )


def _task_parser(verbs, task: str, help: str, description: str) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        task,
        help=help,
        description=description,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--length",
        type=positive_int,
        default=100,
        metavar="T",
        help="length (adding), delay (copy) (default: %(default)s)",
    )
    _model_options(parser)
    t = parser.add_argument_group("training")
    t.add_argument(
        "--batch", type=positive_int, default=50, metavar="N", help="(default: %(default)s)"
    )
    t.add_argument(
        "--lr",
        type=positive_float,
        default=1e-3,
        help="Adam's learning rate (default: %(default)s)",
    )
    t.add_argument(
        "--clip",
        type=nonnegative_float,
        default=1.0,
        metavar="NORM",
        help="clip the global gradient norm; 0: off (default: %(default)s)",
    )
    t.add_argument(
        "--max-steps",
        type=positive_int,
        metavar="N",
        help="(default: 10000 when --max-time is not given)",
    )
    t.add_argument("--max-time", type=duration, metavar="TIME", help="e.g. 90s, 10m")
    t.add_argument(
        "--eval-every",
        type=positive_int,
        default=250,
        metavar="N",
        help="validate every N steps (default: %(default)s)",
    )
    t.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    t.add_argument("--out", metavar="DIR", help="keep the run (checkpoints, metrics.csv) in DIR")
    t.add_argument("--force", action="store_true", help="replace a run DIR holds")
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print one JSON object (test_{'mse' if task == 'adding' else 'ce'}, "
        "baseline, solved, steps, seconds, ...)",
    )
    parser.set_defaults(func=task_command, task=task)
    return parser


def task_command(args: argparse.Namespace) -> int:
    options = {
        "length": args.length,
        "batch": args.batch,
        "cell": args.cell,
        "hidden": args.hidden,
        "layers": args.layers,
        "nonlinearity": args.nonlinearity,
        "init": args.init,
        "lr": args.lr,
        "clip_norm": args.clip or None,
        "eval_every": args.eval_every,
        "seed": args.seed,
        "tensorboard": False,
    }
    for key in ("max_steps", "max_time"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
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


# ---- gradients


def gradients_command_parser(verbs) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "gradients",
        help="plot || dL/dh_t || over time for RNN, LSTM and GRU",
        description="The norm of the gradient of the adding problem's loss (taken at the last "
        "step) with respect to each hidden state h_t, read from the BPTT kernels, at "
        "initialisation (or for a trained lab --checkpoint); with the norm of the product of "
        "the step Jacobians and the spectral radius of W_hh. How many orders of magnitude "
        "the gradient loses on its way back from h_T to h_1 is the vanishing gradient.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--cell",
        default="rnn,lstm,gru",
        metavar="CELL[,CELL]",
        help="cells to compare (default: %(default)s)",
    )
    parser.add_argument(
        "--length", type=positive_int, default=200, metavar="T", help="(default: %(default)s)"
    )
    parser.add_argument("--checkpoint", metavar="DIR", help="a trained `rnnkit lab` run instead")
    _model_options(parser, cell_default=None)
    parser.add_argument(
        "--batch", type=positive_int, default=50, metavar="N", help="(default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--plot", metavar="FILE.png", help="write the figure")
    parser.add_argument("--json", action="store_true", help="print one JSON object per cell")
    parser.set_defaults(func=gradients_command)
    return parser


def gradients_command(args: argparse.Namespace) -> int:
    from rnnkit.lab.model import LabModel

    if args.checkpoint:
        models = {"checkpoint": run.load(args.checkpoint)}
    else:
        cells = [c.strip() for c in args.cell.split(",")]
        bad = [c for c in cells if c not in LAYERS]
        if bad or not cells:
            raise ValueError(
                f"--cell takes names from {tuple(LAYERS)} separated by commas, got {args.cell!r}"
            )
        models = {}
        for cell in cells:
            torch.manual_seed(args.seed)
            nl = args.nonlinearity if cell == "rnn" else "tanh"
            t_max = args.length if args.init == "chrono" else None
            models[cell] = LabModel(
                "adding",
                cell=cell,
                hidden=args.hidden,
                layers=args.layers,
                nonlinearity=nl,
                init=args.init,
                t_max=t_max,
            )
    results, curves = {}, {}
    for label, model in models.items():
        c = model.config
        generate = run.make(c.task)
        x, y = generate(args.batch, args.length, torch.Generator().manual_seed(args.seed))
        model.double().train()  # float64: the gradient at t = 1 is often below float32's range
        x = x.double() if x.is_floating_point() else x
        y = y.double() if y.is_floating_point() else y
        norms = gradients.hidden_grad_norms(model, x, y)[0]  # the first layer, (T,)
        if c.task == "adding":
            seq = x[0]
        else:
            seq = torch.nn.functional.one_hot(x[0], 10).double()
        lags, jac = gradients.jacobian_norms(model.rnn, seq)
        ratio = float(norms[-1] / norms[0]) if norms[0] > 0 else math.inf
        name = label if label != "checkpoint" else f"{c.cell} ({args.checkpoint})"
        results[name] = {
            "cell": c.cell,
            "init": c.init,
            "length": args.length,
            "grad_norm_first": float(norms[0]),
            "grad_norm_last": float(norms[-1]),
            "orders_of_magnitude": math.log10(ratio) if ratio > 0 else math.inf,
            "jacobian_norm_at_lag_T": float(jac[-1]) if len(jac) else None,
            "spectral_radius": gradients.spectral_radius(model.rnn),
        }
        curves[name] = {"grad": norms.detach().numpy(), "jacobian": (lags.numpy(), jac.numpy())}
    if args.plot:
        plot_gradients(
            args.plot, curves, title=f"adding problem, T = {args.length}, init {args.init}"
        )
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"|| dL/dh_t ||, loss at t = T = {args.length} (adding problem, batch {args.batch})")
    header = f"{'cell':<12}{'at t=T':>11}{'at t=1':>11}{'orders lost':>13}{'|ds_T/ds_0|':>13}"
    print(f"{header}  spectral radius of W_hh")
    for name, r in results.items():
        radius = ", ".join(f"{k} {v:.2f}" for k, v in r["spectral_radius"].items())
        jac = r["jacobian_norm_at_lag_T"]
        jac = jac if jac is not None else float("nan")
        print(
            f"{name:<12}{r['grad_norm_last']:11.3g}{r['grad_norm_first']:11.3g}"
            f"{r['orders_of_magnitude']:13.1f}{jac:13.3g}  {radius}"
        )
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


# ---- explode


def explode_command_parser(verbs) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "explode",
        help="exploding gradients: training without and with clipping, side by side",
        description="An Elman RNN whose W_hh is scaled past spectral radius 1 trains on the "
        "adding problem twice with plain SGD: without gradient clipping the gradient norm "
        "explodes and the non-finite guard stops the run, naming the step; with clipping the "
        "same model trains.",
        epilog=EXAMPLES,
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
    outcome = {}
    for name, clip in (("no_clipping", None), ("clipping", args.clip)):
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

        def record(step, stats, losses=losses):
            losses.append((step, stats["loss"], stats["grad_norm"]))

        with log_to_stderr(logging.WARNING):
            try:
                s = run.train("adding", options, prepare=scale, on_step=record)
                outcome[name] = {"diverged": False, "test_mse": s["test_mse"], "message": None}
            except NonFiniteError as exc:
                outcome[name] = {"diverged": True, "test_mse": None, "message": str(exc)}
        outcome[name]["steps"] = len(losses)
        outcome[name]["curve"] = losses
    if args.json:
        print(json.dumps({"radius": args.radius, **outcome}))
        return 0
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
    gradients_command_parser(verbs)
    explode_command_parser(verbs)
    return parser
