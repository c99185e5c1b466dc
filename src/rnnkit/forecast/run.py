"""Training a forecast run: its data settings (ForecastData), the series read, split and scaled
(`prepare`), and the training loop over a Forecaster (`train`), with a backtest on the test
rows at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from torch import nn

from rnnkit.forecast.backtest import backtest, forecast, point
from rnnkit.forecast.builtin import BUILTIN, builtin_path
from rnnkit.forecast.gaps import GAPS
from rnnkit.forecast.model import Forecaster, ForecasterConfig
from rnnkit.forecast.options import ENDS_HELP, columns
from rnnkit.forecast.scaler import SCALERS, Scaler
from rnnkit.forecast.series import read_series
from rnnkit.forecast.split import DEFAULT_ENDS, split_points
from rnnkit.forecast.times import calendar_features
from rnnkit.forecast.windows import Prepared, WindowBatches, window_starts
from rnnkit.train import run as run_skeleton
from rnnkit.train.config import TrainConfig, plan_by_epochs
from rnnkit.train.options import option, positive_int
from rnnkit.train.run import Parts, TaskRun, Trained

TASK = "forecast"
DEFAULT_EPOCHS = 10  # a run given no epochs, max_steps or max_time
TRAIN_DEFAULTS = {"metric": "mse"}  # where forecast's TrainConfig differs from the dataclass's


@dataclass
class ForecastData:
    """Which series a run reads, how it is split and scaled, and its windows."""

    path: str | None = option(  # a CSV; None: the built-in series (builtin.py)
        None,
        "the series",
        flag="--data",
        metavar="FILE.csv",
        shown="the built-in one, Seattle's daily maximum temperature 2012-2015, from the "
        "vega_datasets package",
    )
    time_column: str | None = option(  # None: the built-in series' own, else "date"
        None, "", metavar="NAME", shown="date"
    )
    target: list[str] = option(  # the series to forecast; [] only for the built-in one
        help="the column(s) to forecast", factory=list, type=columns, metavar="COL[,COL]"
    )
    covariates: list[str] = option(
        help="other columns the model reads, observed up to the forecast origin",
        factory=list,
        type=columns,
        metavar="COL[,COL]",
    )
    calendar: bool = option(  # derived from the timestamps
        False,
        "add known-future calendar features (hour, weekday, day of year)",
        action="store_true",
    )
    fill: bool = option(  # instead of refusing them
        False, "interpolate missing values in time instead of stopping", action="store_true"
    )
    gaps: str = option(  # gaps in the time index (forecast/gaps.py)
        "refuse",
        "times missing from a regular series: refuse (stop, naming the first gap), fill "
        "(put them back, values interpolated in time) or keep (use the rows as they are)",
        choices=GAPS,
    )
    encoding: str = option("utf-8", "the file's text encoding")
    train_end: str | None = option(  # rows, a fraction or a timestamp (split_points)
        None,
        f"where the train rows end: {ENDS_HELP}",
        metavar="END",
        shown=str(DEFAULT_ENDS[0]),
    )
    valid_end: str | None = option(
        None,
        f"where the valid rows end: {ENDS_HELP}",
        metavar="END",
        shown=str(DEFAULT_ENDS[1]),
    )
    test_end: str | None = option(
        None, f"where the test rows end: {ENDS_HELP}", metavar="END", shown="all rows"
    )
    scaler: str = option("standard", "fitted on the training rows", choices=SCALERS)
    lookback: int = option(96, "steps the model reads", type=positive_int, metavar="N")  # L
    horizon: int = option(24, "steps it forecasts", type=positive_int, metavar="N")  # H
    stride: int = option(
        1, "steps between the backtest's forecast origins", type=positive_int, metavar="N"
    )
    season: int | None = option(
        None,
        "the seasonal-naive baseline's period",
        type=positive_int,
        metavar="N",
        shown="24 hourly, 7 daily, else 1",
    )
    batch: int = option(  # over all processes together
        64, "windows per batch", type=positive_int, metavar="N"
    )

    def __post_init__(self):
        self.target, self.covariates = list(self.target), list(self.covariates)
        if self.path is None:
            self.time_column = self.time_column or BUILTIN["time_column"]
            self.target = self.target or list(BUILTIN["target"])
        self.time_column = self.time_column or "date"
        if not self.target:
            raise ValueError("name the column(s) to forecast (target=[...]; --target OT)")
        overlap = set(self.target) & set(self.covariates)
        if overlap:
            raise ValueError(f"{sorted(overlap)} is both a target and a covariate; pick one")
        for key in ("lookback", "horizon", "stride", "batch"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")


DATA_KEYS = tuple(f.name for f in fields(ForecastData))
FROM_DATA = ("targets", "horizon", "past_features", "future_features")
MODEL_KEYS = tuple(f.name for f in fields(ForecasterConfig) if f.name not in FROM_DATA)
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))


@dataclass
class Run:
    """What `train` returns: the model (best weights when validated), its data, a summary."""

    model: Forecaster
    data: Prepared
    settings: ForecastData
    summary: dict


def prepare(
    settings: ForecastData,
    scalers: dict | None = None,
    split: bool = True,
    calendar: list[str] | None = None,
) -> Prepared:
    """Read, split and scale the series; `scalers` and `calendar` (the feature names, from a
    checkpoint) instead of fitting new ones on the training rows; split=False (forecasting
    past the end) puts every row in all three splits."""
    path = builtin_path() if settings.path is None else settings.path
    frame = read_series(
        path,
        time_column=settings.time_column,
        columns=[*settings.target, *settings.covariates],
        fill=settings.fill,
        encoding=settings.encoding,
        gaps=settings.gaps,
    )
    n = len(frame)
    ends = (n, n, n)
    if split:
        ends = split_points(frame.times, settings.train_end, settings.valid_end, settings.test_end)
    y, x = frame.matrix(settings.target), frame.matrix(settings.covariates)  # (N, C), (N, P)
    if scalers is None:
        y_scaler = Scaler(settings.scaler).fit(y[: ends[0]])
        x_scaler = Scaler(settings.scaler).fit(x[: ends[0]]) if x.shape[1] else None
    else:
        y_scaler = Scaler.from_dict(scalers["y"])
        x_scaler = Scaler.from_dict(scalers["x"]) if scalers.get("x") else None
    f, f_names = np.empty((n, 0)), []
    if settings.calendar:
        if calendar is None:  # the pairs that vary over the training rows
            calendar = calendar_features(frame.times[: ends[0]])[1]
        f, f_names = calendar_features(frame.times, calendar)
    return Prepared(
        times=frame.times,
        y=y_scaler.transform(y),
        x=x_scaler.transform(x) if x_scaler else x,
        f=f.astype(np.float64),
        ends=ends,
        y_scaler=y_scaler,
        x_scaler=x_scaler,
        f_names=f_names,
    )


def season_of(settings: ForecastData, times: np.ndarray) -> int:
    """The seasonal-naive period: as given, else 24 for hourly data, 7 for daily, else 1."""
    if settings.season is not None:
        return settings.season
    step = np.median(np.diff(times[:1000]).astype("timedelta64[s]").astype(np.int64))
    return {3600: 24, 86400: 7}.get(int(step), 1)


def plan(options: dict) -> tuple[ForecastData, dict, TrainConfig, int | None]:
    """(data settings, model options, training config, epochs) from flat `options`."""
    keys = (DATA_KEYS, MODEL_KEYS, TRAIN_KEYS)
    return plan_by_epochs(options, "forecast", ForecastData, keys, TRAIN_DEFAULTS, DEFAULT_EPOCHS)


def train(options: dict, out: str | Path, **how) -> Run:
    """Train a Forecaster on `options` (the fields of ForecastData, ForecasterConfig and
    TrainConfig, and `epochs`) into the run directory `out`, then backtest the best weights on
    the test rows (summary["test"]: the model and the baselines). `resume` continues the run
    in `out` from out/last (train/resume.py); `overwrite` replaces a run there.
    `how`: resume, overwrite and on_step, as train/run.py's `train` takes them."""
    run = ForecastRun(options)
    model, summary = run_skeleton.train(run, out, **how)
    return Run(model, run.data, run.settings, summary)


class ForecastRun(TaskRun):
    """A Forecaster over the windows of a series split in time, validated by the MSE of its
    point forecasts; the best weights are backtested beside the baselines at the end."""

    task = TASK
    data_fields, model_fields, from_data = ForecastData, ForecasterConfig, FROM_DATA
    resumable = True
    moves = ("path",)

    def prepare(self, previous) -> TrainConfig:
        self.settings, self.model_options, config, self.epochs = plan(self.options)
        settings = self.settings
        if settings.path is not None:
            settings.path = str(Path(settings.path).resolve())
        self.data = data = prepare(settings)
        L, H = settings.lookback, settings.horizon
        train_end, valid_end, test_end = data.ends
        starts = _starts("training", 0, train_end, L, H)
        self.batches = WindowBatches(data, starts, L, H, settings.batch, config.seed)
        self.valid_starts = _starts("validation", train_end, valid_end, L, H)
        self.test_starts = _starts("test", valid_end, test_end, L, H, settings.stride)
        if self.epochs is not None:
            config.max_steps = self.epochs * len(self.batches)
        if "eval_every" not in self.options:
            config.eval_every = len(self.batches)  # once an epoch
        _check_season(season_of(settings, data.times), L)  # the backtest's, before training
        return config

    def build(self) -> Forecaster:
        data = self.data
        return Forecaster(
            data.y.shape[1],
            self.settings.horizon,
            past_features=data.x.shape[1],
            future_features=data.f.shape[1],
            **self.model_options,
        )

    def parts(self, model: Forecaster) -> Parts:
        data, settings = self.data, self.settings
        self.season = season_of(settings, data.times)
        scalers = {
            "y": data.y_scaler.to_dict(),
            "x": data.x_scaler.to_dict() if data.x_scaler else None,
        }
        return Parts(
            self.batches,
            _valid_fn(data, self.valid_starts, settings.lookback, settings.horizon),
            {"data": {**asdict(settings), "season": self.season, "ends": list(data.ends)}},
            vocab={"scalers": scalers, "calendar": data.f_names},
        )

    def describe(self, model: Forecaster) -> str:
        counts = (len(self.batches), len(self.valid_starts), len(self.test_starts))
        return _describe(model, self.settings, self.data, self.epochs, *counts)

    def summary(self, trained: Trained) -> dict:
        result, model, L = trained.result, trained.model.eval(), self.settings.lookback
        return {
            "out": str(trained.out),
            "step": result.step,
            "epochs": result.step / len(self.batches),
            "stop_reason": result.stop_reason,
            "seconds": trained.seconds,
            "train_loss": result.metrics.get("train/loss"),
            "best_valid_mse": result.best,
            "lookback": L,
            "horizon": self.settings.horizon,
            "test": None
            if trained.interrupted  # a cut-short model is not backtested
            else backtest(model, self.data, self.test_starts, L, self.season),
        }


def _check_season(season: int, L: int) -> None:
    if season > L:
        raise ValueError(
            f"the seasonal-naive baseline's period is {season} steps, longer than the lookback "
            f"({L}) it reads; give --lookback {season} or more, or --season {L} or less"
        )


def _starts(name: str, start: int, end: int, L: int, H: int, stride: int = 1) -> np.ndarray:
    try:
        return window_starts(start, end, L, H, stride)
    except ValueError as exc:
        raise ValueError(f"the {name} rows: {exc}") from None


def _valid_fn(data: Prepared, starts: np.ndarray, L: int, H: int) -> Callable[[nn.Module], dict]:
    """MSE and MAE of the point forecast on the scaled validation windows."""
    truth = data.gather(starts, L, H)[1].double().numpy()  # (W, H, C)

    def valid(model: nn.Module) -> dict:
        module = getattr(model, "module", model)
        diff = point(module, forecast(module, data, starts, L)) - truth
        return {"mse": float((diff**2).mean()), "mae": float(np.abs(diff).mean())}

    return valid


def _describe(model, settings, data, epochs, steps, n_valid, n_test) -> str:
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    source = settings.path or BUILTIN["name"]
    return (
        f"forecast: {c.arch} {c.layers} x {c.hidden} {c.cell}, {c.head} head "
        f"({params / 1e6:.2f}M parameters); {source}: {len(data.times):,} rows, target "
        f"{', '.join(settings.target)}"
        + (f", covariates {', '.join(settings.covariates)}" if settings.covariates else "")
        + f"; lookback {settings.lookback}, horizon {settings.horizon}; rows "
        f"[0, {data.ends[0]}) train, [{data.ends[0]}, {data.ends[1]}) validate "
        f"({n_valid:,} windows), [{data.ends[1]}, {data.ends[2]}) test ({n_test:,} windows); "
        f"{steps} steps per epoch of batch {settings.batch}"
        + (f", {epochs} epochs" if epochs else "")
    )
