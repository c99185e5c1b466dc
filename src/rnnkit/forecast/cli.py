"""`rnnkit forecast train | predict | eval | export`: a parser and a command per verb over
`rnnkit.forecast` (train's in `cli_forecast_train`, export's model in `forecast.export`)."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from rnnkit import forecast
from rnnkit.data.files import write_atomically
from rnnkit.export.cli import export_verb
from rnnkit.forecast.cli_train import EXAMPLES, format_backtest, train_command_parser
from rnnkit.forecast.export import build as build_export
from rnnkit.forecast.gaps import GAPS
from rnnkit.forecast.plot import plot_forecast
from rnnkit.train.cli import DIR_HELP, task_parser

GAPS_HELP = "times missing from the series: refuse, fill or keep (default: the run's)"


def _reading_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="FILE.csv",
        help="the series, with the columns the model was trained on (default: the training data)",
    )
    parser.add_argument("--time-column", metavar="NAME", help="(default: the run's)")
    parser.add_argument("--encoding", help="(default: the run's)")
    parser.add_argument(
        "--fill", action="store_true", default=None, help="interpolate missing values"
    )
    parser.add_argument("--gaps", choices=GAPS, help=GAPS_HELP)
    parser.add_argument("--device", default="cpu", help="(default: %(default)s)")


def _read(args, trained: forecast.Trained, split: bool):
    return trained.read(
        args.data,
        split=split,
        time_column=args.time_column,
        encoding=args.encoding,
        fill=args.fill,
        gaps=args.gaps,
    )


# ---- predict


def predict_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "predict",
        help="forecast the next horizon after the last row",
        description="Forecast the --horizon values that follow the last row of the series, "
        "from its last --lookback rows: printed as a table, or written to --output (CSV) and "
        "drawn with --plot (PNG), with the interval when the model forecasts one.",
    )
    parser.add_argument("dir", metavar="DIR", help=DIR_HELP)
    _reading_options(parser)
    parser.add_argument("--output", metavar="FILE.csv", help="write the forecast as a CSV")
    parser.add_argument("--plot", metavar="FILE.png", help="draw history and forecast")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=predict_command)
    return parser


def predict_command(args: argparse.Namespace) -> int:
    trained = forecast.load(args.dir, args.device)
    data = _read(args, trained, split=False)
    p = trained.predict(data)
    header = ["time"]
    for name in p["targets"]:
        header.append(name)
        if p["interval"] is not None:
            header += [f"{name}_lower", f"{name}_upper"]
    rows = []
    for j, t in enumerate(p["times"]):
        row = [str(t).replace("T", " ")]
        for c in range(len(p["targets"])):
            row.append(float(p["point"][j, c]))
            if p["interval"] is not None:
                row += [float(p["interval"][0][j, c]), float(p["interval"][1][j, c])]
        rows.append(row)
    if args.output:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows([[r[0], *(f"{v:.6g}" for v in r[1:])] for r in rows])
        write_atomically(Path(args.output), buffer.getvalue())
    if args.plot:
        _plot(args.plot, trained, data, p)
    if args.json:
        print(json.dumps({"columns": header, "rows": rows}))
    elif not args.output:
        print("\t".join(header))
        for r in rows:
            print("\t".join([r[0], *(f"{v:.4f}" for v in r[1:])]))
    else:
        print(f"wrote the next {len(rows)} steps to {args.output}")
    return 0


def _plot(path: str, trained: forecast.Trained, data, p: dict) -> None:
    n_hist = min(len(data.times), 3 * trained.model.config.horizon + trained.settings.lookback)
    history = data.y_scaler.inverse(data.y[-n_hist:])[:, 0]
    interval = None
    if p["interval"] is not None:
        interval = (p["interval"][0][:, 0], p["interval"][1][:, 0], f"interval {p['interval'][2]}")
    plot_forecast(
        path,
        (data.times[-n_hist:], history),
        (p["times"], p["point"][:, 0]),
        interval=interval,
        title=f"{p['targets'][0]}: the next {len(p['times'])} steps",
    )


# ---- eval


def eval_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "eval",
        help="backtest the model and the baselines on the test rows",
        description="Rolling-origin backtest over the test rows (the run's split and stride): "
        "MSE, MAE, RMSE, MAPE and sMAPE on the scaled and the original scale, for the model "
        "and the naive, seasonal-naive and linear baselines.",
    )
    parser.add_argument("dir", metavar="DIR", help=DIR_HELP)
    _reading_options(parser)
    parser.add_argument(
        "--plot", metavar="FILE.png", help="draw the last test window: history, forecast, truth"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: windows, and for each of model, naive, seasonal_naive, "
        "linear: scaled and original {mse, mae, rmse, mape, smape} (model: coverage)",
    )
    parser.set_defaults(func=eval_command)
    return parser


def eval_command(args: argparse.Namespace) -> int:
    trained = forecast.load(args.dir, args.device)
    data = _read(args, trained, split=True)
    result = trained.evaluate(data)
    if args.plot:
        _plot_last_window(args.plot, trained, data)
    result = {**result, "checkpoint": str(trained.info["path"]), "step": trained.info["step"]}
    if args.json:
        print(json.dumps(result))
    else:
        print(format_backtest(result))
    return 0


def _plot_last_window(path: str, trained: forecast.Trained, data) -> None:
    L, H = trained.settings.lookback, trained.model.config.horizon
    end = data.ends[2]
    head = type(data)(
        times=data.times[: end - H],
        y=data.y[: end - H],
        x=data.x[: end - H],
        f=data.f[: end - H],
        ends=data.ends,
        y_scaler=data.y_scaler,
        x_scaler=data.x_scaler,
        f_names=data.f_names,
    )
    if len(head.times) < L:
        raise ValueError("the series is too short to plot a test window")
    p = trained.predict(head)
    truth = data.y_scaler.inverse(data.y[end - H : end])[:, 0]
    hist = min(len(head.times), L + 2 * H)
    interval = None
    if p["interval"] is not None:
        interval = (p["interval"][0][:, 0], p["interval"][1][:, 0], f"interval {p['interval'][2]}")
    plot_forecast(
        path,
        (head.times[-hist:], data.y_scaler.inverse(head.y[-hist:])[:, 0]),
        (data.times[end - H : end], p["point"][:, 0]),
        interval=interval,
        truth=truth,
        title=f"{p['targets'][0]}: the last test window",
    )


# ---- export


def export_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = export_verb(
        verbs,
        build_export,
        items="test windows",
        help="write the forecaster as ONNX or a torch.export program, with a JSON sidecar",
        description="Write the forecaster as one model file that reads the last lookback "
        "values (batch, lookback, targets), the covariates and calendar features when the "
        "model has them, and returns the forecast (batch, horizon, targets[, outputs]), all in "
        "the data's own units (the run's scalers are inside the model), with dynamic batch and "
        "lookback, and a JSON sidecar beside it naming the columns, the output layout and the "
        "calendar features. Before writing, it runs test windows (of --data, else the run's "
        "series) through the export and through rnnkit and prints the largest difference; an "
        "export that differs is not written.",
        epilog="examples:\n  rnnkit forecast export runs/etth2/h24\n"
        "  rnnkit forecast export runs/etth2/h24 --format pt2",
    )
    parser.add_argument(
        "--data",
        metavar="FILE.csv",
        help="the series whose test rows are held back (default: the run's)",
    )
    parser.add_argument("--time-column", metavar="NAME", help="(default: the run's)")
    parser.add_argument("--encoding", help="(default: the run's)")
    parser.add_argument(
        "--fill", action="store_true", default=None, help="interpolate missing values"
    )
    parser.add_argument("--gaps", choices=GAPS, help=GAPS_HELP)
    return parser


def forecast_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return task_parser(
        subparsers,
        "forecast",
        (
            train_command_parser,
            predict_command_parser,
            eval_command_parser,
            export_command_parser,
        ),
        help="time-series forecasting: train, predict, eval, export",
        description="Train a recurrent forecaster on a CSV of time series, forecast past its "
        "end, and backtest it beside the naive, seasonal-naive and linear baselines.",
        epilog=EXAMPLES,
    )
