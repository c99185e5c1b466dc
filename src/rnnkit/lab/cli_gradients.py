"""`rnnkit lab gradients`: || dL/dh_t || over time for RNN, LSTM and GRU, at initialisation
or for a trained lab checkpoint."""

from __future__ import annotations

import argparse
import json
import math

import torch

from rnnkit.lab import gradients, run
from rnnkit.lab.model import LabModel, LabModelConfig
from rnnkit.lab.plot import plot_gradients
from rnnkit.layers import LAYERS
from rnnkit.train.options import add_options, positive_int, resolved


def gradients_command_parser(verbs, epilog: str) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "gradients",
        help="plot || dL/dh_t || over time for RNN, LSTM and GRU",
        description="The norm of the gradient of the adding problem's loss (taken at the last "
        "step) with respect to each hidden state h_t, read from the BPTT kernels, at "
        "initialisation (or for a trained lab --checkpoint); with the norm of the product of "
        "the step Jacobians and the spectral radius of W_hh. How many orders of magnitude "
        "the gradient loses on its way back from h_T to h_1 is the vanishing gradient.",
        epilog=epilog,
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
    add_options(parser.add_argument_group("model"), LabModelConfig, skip=("cell",))
    parser.add_argument(
        "--batch", type=positive_int, default=50, metavar="N", help="(default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--plot", metavar="FILE.png", help="write the figure")
    parser.add_argument("--json", action="store_true", help="print one JSON object per cell")
    parser.set_defaults(func=gradients_command)
    return parser


def gradients_command(args: argparse.Namespace) -> int:
    results, curves = {}, {}
    for label, model in _models(args).items():
        name = label if label != "checkpoint" else f"{model.config.cell} ({args.checkpoint})"
        results[name], curves[name] = _measure(model, args)
    if args.plot:
        init = resolved(args, LabModelConfig)["init"]
        plot_gradients(args.plot, curves, title=f"adding problem, T = {args.length}, init {init}")
    if args.json:
        print(json.dumps(results))
        return 0
    _print_table(results, args)
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


def _models(args: argparse.Namespace) -> dict[str, LabModel]:
    """{cell: a LabModel at initialisation} for each of --cell, or the --checkpoint's."""
    if args.checkpoint:
        return {"checkpoint": run.load(args.checkpoint)}
    cells = [c.strip() for c in args.cell.split(",")]
    bad = [c for c in cells if c not in LAYERS]
    if bad or not cells:
        raise ValueError(
            f"--cell takes names from {tuple(LAYERS)} separated by commas, got {args.cell!r}"
        )
    options = resolved(args, LabModelConfig)
    models = {}
    for cell in cells:
        torch.manual_seed(args.seed)
        nl = options["nonlinearity"] if cell == "rnn" else "tanh"
        t_max = args.length if options["init"] == "chrono" else None
        models[cell] = LabModel(
            "adding", **{**options, "cell": cell, "nonlinearity": nl, "t_max": t_max}
        )
    return models


def _measure(model: LabModel, args: argparse.Namespace) -> tuple[dict, dict]:
    """(the numbers of one model, its curves): ||dL/dh_t|| in float64 over the first layer,
    and the norms of the products of step Jacobians by lag."""
    c = model.config
    generate = run.make(c.task)
    x, y = generate(args.batch, args.length, torch.Generator().manual_seed(args.seed))
    model.double().train()  # float64: the gradient at t = 1 is often below float32's range
    x = x.double() if x.is_floating_point() else x
    y = y.double() if y.is_floating_point() else y
    norms = gradients.hidden_grad_norms(model, x, y)[0]  # the first layer, (T,)
    seq = x[0] if c.task == "adding" else torch.nn.functional.one_hot(x[0], 10).double()
    lags, jac = gradients.jacobian_norms(model.rnn, seq)
    ratio = float(norms[-1] / norms[0]) if norms[0] > 0 else math.inf
    numbers = {
        "cell": c.cell,
        "init": c.init,
        "length": args.length,
        "grad_norm_first": float(norms[0]),
        "grad_norm_last": float(norms[-1]),
        "orders_of_magnitude": math.log10(ratio) if ratio > 0 else math.inf,
        "jacobian_norm_at_lag_T": float(jac[-1]) if len(jac) else None,
        "spectral_radius": gradients.spectral_radius(model.rnn),
    }
    return numbers, {"grad": norms.detach().numpy(), "jacobian": (lags.numpy(), jac.numpy())}


def _print_table(results: dict, args: argparse.Namespace) -> None:
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
