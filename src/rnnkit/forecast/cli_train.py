"""`rnnkit forecast train`: its parser and command over `rnnkit.forecast.train`.

The options come from the dataclasses that declare them (ForecastData, ForecasterConfig,
TrainConfig); an option left out is None here and takes that default, or with --resume the run's
own (train/resume.py).
"""

from __future__ import annotations

import argparse

from rnnkit import forecast
from rnnkit.forecast.model import ForecasterConfig
from rnnkit.forecast.run import DEFAULT_EPOCHS, TRAIN_DEFAULTS, ForecastData
from rnnkit.train.cli import run_training, stopped, train_verb
from rnnkit.train.config import EpochBudget, TrainConfig
from rnnkit.train.options import given

EXAMPLES = """examples:
  rnnkit forecast train --out runs/seattle          (the built-in series: Seattle's weather)
  rnnkit forecast train --data ETTh2.csv --time-column date --target OT --lookback 336 \\
      --horizon 24 --train-end 8640 --valid-end 11520 --test-end 14400 --out runs/etth2
  rnnkit forecast predict runs/etth2 --data ETTh2.csv --output next.csv --plot next.png
  rnnkit forecast eval runs/etth2 --data ETTh2.csv --json
"""


def train_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser, groups = train_verb(
        verbs,
        {"data": (ForecastData,), "model": (ForecasterConfig,)},
        train_command,
        epochs=DEFAULT_EPOCHS,
        defaults=TRAIN_DEFAULTS,
        json_help="print the summary as one JSON object (step, epochs, seconds, best_valid_mse, "
        "test: the backtest of the model and the baselines)",
        help="train a recurrent forecaster on a CSV of time series",
        description=(
            "Train a recurrent forecaster that reads --lookback steps and forecasts the next\n"
            "--horizon, on a CSV with a time column. The rows are split in time (train,\n"
            "validation, test); scaling is fitted on the training rows. At the end the best\n"
            "weights are backtested on every test window beside the naive, seasonal-naive and\n"
            "linear baselines. DIR gets best/, last/ and metrics.csv."
        ),
        epilog=EXAMPLES,
    )
    groups["model"].add_argument(  # with --quantiles, sets ForecasterConfig.head
        "--gaussian",
        action="store_true",
        help="forecast a mean and a standard deviation (Gaussian likelihood)",
    )
    return parser


def train_command(args: argparse.Namespace) -> int:
    if args.quantiles and args.gaussian:
        raise ValueError("--quantiles and --gaussian are two kinds of forecast: choose one")
    options = given(args, ForecastData, ForecasterConfig, TrainConfig, EpochBudget)
    if args.quantiles:
        options["head"] = "quantile"
    elif args.gaussian:
        options["head"] = "gaussian"
    return run_training(forecast.train, options, args, format_summary)


def format_summary(s: dict) -> str:
    lines = [
        f"{stopped(s)}; lookback {s['lookback']}, horizon {s['horizon']}",
        f"best validation MSE (scaled) {s['best_valid_mse']:.4f}"
        if s["best_valid_mse"] is not None
        else "no validation",
        "",
        format_backtest(s["test"]) if s["test"] else "no backtest: the run was interrupted",
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
