"""`rnnkit forecast train`: its parser and command over `rnnkit.forecast.train`.

Defaults shown in --help come from the dataclasses that own them (ForecastData,
ForecasterConfig, TrainConfig); an option left out is None here and takes that default.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from rnnkit import forecast
from rnnkit.forecast.model import ARCHS, LOSSES, ForecasterConfig
from rnnkit.forecast.run import DEFAULT_EPOCHS, ForecastData
from rnnkit.layers import LAYERS
from rnnkit.train.cli import (
    fraction,
    positive_int,
    run_dir_options,
    run_training,
    training_options,
)

TRAIN_OPTIONS = (  # argparse dests handed to forecast.train when given
    *("path", "time_column", "target", "covariates", "calendar", "fill", "encoding"),
    *("train_end", "valid_end", "test_end", "scaler", "lookback", "horizon", "stride"),
    *("season", "batch"),
    *("arch", "cell", "hidden", "layers", "dropout", "instance_norm", "teacher_forcing", "loss"),
    *("quantiles", "epochs", "lr", "max_steps", "max_time", "eval_every", "seed", "device"),
)
EXAMPLES = """examples:
  rnnkit forecast train --out runs/seattle          (the built-in series: Seattle's weather)
  rnnkit forecast train --data ETTh2.csv --time-column date --target OT --lookback 336 \\
      --horizon 24 --train-end 8640 --valid-end 11520 --test-end 14400 --out runs/etth2
  rnnkit forecast predict runs/etth2 --data ETTh2.csv --output next.csv --plot next.png
  rnnkit forecast eval runs/etth2 --data ETTh2.csv --json
"""
ENDS_HELP = "a row count (8640), a fraction of the rows (0.7) or a timestamp (2017-07-01)"


def _default(cls, name: str):
    return next(f.default for f in fields(cls) if f.name == name)


def columns(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected column names separated by commas, got {text!r}")
    return names


def quantiles(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0 < v < 1 for v in values) or values != sorted(set(values)):
        raise argparse.ArgumentTypeError(
            f"expected increasing probabilities in (0, 1) separated by commas, e.g. "
            f"0.1,0.5,0.9; got {text!r}"
        )
    return values


def train_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "train",
        help="train a recurrent forecaster on a CSV of time series",
        description=(
            "Train a recurrent forecaster that reads --lookback steps and forecasts the next\n"
            "--horizon, on a CSV with a time column. The rows are split in time (train,\n"
            "validation, test); scaling is fitted on the training rows. At the end the best\n"
            "weights are backtested on every test window beside the naive, seasonal-naive and\n"
            "linear baselines. DIR gets best/, last/ and metrics.csv."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        dest="path",
        metavar="FILE.csv",
        help="the series (default: the built-in one, Seattle's daily maximum temperature "
        "2012-2015, from the vega_datasets package)",
    )
    data.add_argument("--time-column", metavar="NAME", help="(default: date)")
    data.add_argument(
        "--target", type=columns, metavar="COL[,COL]", help="the column(s) to forecast"
    )
    data.add_argument(
        "--covariates",
        type=columns,
        metavar="COL[,COL]",
        help="other columns the model reads, observed up to the forecast origin",
    )
    data.add_argument(
        "--calendar",
        action="store_true",
        default=None,
        help="add known-future calendar features (hour, weekday, day of year)",
    )
    data.add_argument(
        "--fill",
        action="store_true",
        default=None,
        help="interpolate missing values in time instead of stopping",
    )
    data.add_argument("--encoding", help="the file's text encoding (default: utf-8)")
    for end, default in (("train", "0.7"), ("valid", "0.8"), ("test", "all rows")):
        data.add_argument(
            f"--{end}-end",
            metavar="END",
            help=f"where the {end} rows end: {ENDS_HELP} (default: {default})",
        )
    data.add_argument(
        "--scaler",
        choices=("standard", "minmax", "none"),
        help="fitted on the training rows (default: standard)",
    )
    for flag, what in (
        ("lookback", "steps the model reads"),
        ("horizon", "steps it forecasts"),
        ("stride", "steps between the backtest's forecast origins"),
    ):
        data.add_argument(
            f"--{flag}",
            type=positive_int,
            metavar="N",
            help=f"{what} (default: {_default(ForecastData, flag)})",
        )
    data.add_argument(
        "--season",
        type=positive_int,
        metavar="N",
        help="the seasonal-naive baseline's period (default: 24 hourly, 7 daily, else 1)",
    )
    data.add_argument(
        "--batch",
        type=positive_int,
        metavar="N",
        help=f"windows per batch (default: {_default(ForecastData, 'batch')})",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--arch",
        choices=ARCHS,
        help="direct: one linear map from the encoder's last state to the whole horizon; "
        "seq2seq: an autoregressive decoder; attention: the decoder attends over the encoder "
        f"states (default: {_default(ForecasterConfig, 'arch')})",
    )
    model.add_argument(
        "--cell", choices=tuple(LAYERS), help=f"(default: {_default(ForecasterConfig, 'cell')})"
    )
    for flag, what in (("hidden", "hidden size"), ("layers", "stacked layers")):
        model.add_argument(
            f"--{flag}",
            type=positive_int,
            metavar="N",
            help=f"{what} (default: {_default(ForecasterConfig, flag)})",
        )
    model.add_argument(
        "--dropout",
        type=fraction,
        metavar="P",
        help=f"(default: {_default(ForecasterConfig, 'dropout')})",
    )
    model.add_argument(
        "--no-instance-norm",
        dest="instance_norm",
        action="store_false",
        default=None,
        help="do not scale each window by its own lookback mean and std",
    )
    model.add_argument(
        "--teacher-forcing",
        action="store_true",
        default=None,
        help="seq2seq/attention: train the decoder on the true previous values rather than "
        "on its own forecasts (faster; the forecasts then drift more)",
    )
    model.add_argument("--loss", choices=LOSSES, help="of point forecasts (default: mse)")
    model.add_argument(
        "--quantiles",
        type=quantiles,
        metavar="Q,Q,...",
        help="forecast these quantiles with the pinball loss (e.g. 0.1,0.5,0.9)",
    )
    model.add_argument(
        "--gaussian",
        action="store_true",
        help="forecast a mean and a standard deviation (Gaussian likelihood)",
    )
    training_options(
        parser,
        DEFAULT_EPOCHS,
        epochs="passes over the training windows (default: {epochs} when neither --max-steps "
        "nor --max-time is given)",
        max_time="stop after this much training, e.g. 90s, 30m (with --epochs: whichever first)",
        lr="peak learning rate (default: {lr})",
        eval_every="validate and save every N steps (default: once an epoch)",
        device="e.g. cpu, cuda (default: cuda when available)",
    )
    run_dir_options(
        parser,
        "print the summary as one JSON object (step, epochs, seconds, best_valid_mse, "
        "test: the backtest of the model and the baselines)",
    )
    parser.set_defaults(func=train_command)
    return parser


def train_command(args: argparse.Namespace) -> int:
    if args.quantiles and args.gaussian:
        raise ValueError("--quantiles and --gaussian are two kinds of forecast: choose one")
    options = {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
    if args.quantiles:
        options["head"] = "quantile"
    elif args.gaussian:
        options["head"] = "gaussian"
    return run_training(forecast.train, options, args, format_summary)


def format_summary(s: dict) -> str:
    lines = [
        f"stopped at step {s['step']} ({s['epochs']:.2f} epochs, {s['stop_reason']}) after "
        f"{s['seconds']:.1f} s of training; lookback {s['lookback']}, horizon {s['horizon']}",
        f"best validation MSE (scaled) {s['best_valid_mse']:.4f}"
        if s["best_valid_mse"] is not None
        else "no validation",
        "",
        format_backtest(s["test"]),
        "",
        f"run directory  {s['out']}  (rnnkit forecast predict {s['out']})",
    ]
    return "\n".join(lines)


def format_backtest(r: dict) -> str:
    """The backtest as a table: one row per forecaster."""
    lines = [
        f"backtest over {r['windows']:,} test windows (MSE, MAE scaled; MAE, RMSE original)",
        f"{'forecaster':<16}{'MSE':>9}{'MAE':>9}{'MAE orig':>12}{'RMSE orig':>12}{'sMAPE %':>9}",
    ]
    for name in ("model", "naive", "seasonal_naive", "linear"):
        s, o = r[name]["scaled"], r[name]["original"]
        lines.append(
            f"{name:<16}{s['mse']:9.4f}{s['mae']:9.4f}{o['mae']:12.4f}{o['rmse']:12.4f}"
            f"{o['smape']:9.2f}"
        )
    for interval, value in r["model"].get("coverage", {}).items():
        lines.append(f"coverage of the model's {interval} interval: {value:.1%}")
    return "\n".join(lines)
