"""Training a forecast run: its data settings (ForecastData), the series read, split and scaled
(`prepare`), and the training loop over a Forecaster (`train`), with a backtest on the test
rows at the end."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from torch import nn

from rnnkit.forecast.backtest import backtest, forecast, point
from rnnkit.forecast.builtin import BUILTIN, builtin_path
from rnnkit.forecast.model import Forecaster, ForecasterConfig
from rnnkit.forecast.series import (
    Scaler,
    calendar_features,
    read_series,
    split_points,
    window_starts,
)
from rnnkit.forecast.windows import Prepared, WindowBatches
from rnnkit.train import checkpoint, distributed, rundir
from rnnkit.train.config import TrainConfig, epochs_budget, split_options
from rnnkit.train.loop import Trainer
from rnnkit.train.seeding import seed_everything

logger = logging.getLogger(__name__)

TASK = "forecast"
DEFAULT_EPOCHS = 10  # a run given no epochs, max_steps or max_time


@dataclass
class ForecastData:
    """Which series a run reads, how it is split and scaled, and its windows."""

    path: str | None = None  # a CSV; None: the built-in series (builtin.py)
    time_column: str | None = None  # None: "date" (the built-in series': its own)
    target: list[str] = field(default_factory=list)  # the series to forecast; [] only built-in
    covariates: list[str] = field(default_factory=list)  # observed up to the forecast origin
    calendar: bool = False  # add known-future calendar features derived from the timestamps
    fill: bool = False  # interpolate missing values instead of refusing them
    encoding: str = "utf-8"
    train_end: str | None = None  # rows, a fraction or a timestamp (split_points); None: 0.7
    valid_end: str | None = None  # None: 0.8
    test_end: str | None = None  # None: all the rows
    scaler: str = "standard"  # "standard" | "minmax" | "none", fitted on the training rows
    lookback: int = 96  # L: steps the model reads
    horizon: int = 24  # H: steps it forecasts
    stride: int = 1  # between the origins of the backtest windows
    season: int | None = None  # seasonal naive's period; None: 24 hourly, 7 daily, else 1
    batch: int = 64  # windows per batch, over all processes together

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
    data, model, train = split_options(options, "forecast", DATA_KEYS, MODEL_KEYS, TRAIN_KEYS)
    train = {"metric": "mse", **train}
    epochs = epochs_budget(options.get("epochs"), train, DEFAULT_EPOCHS)
    return ForecastData(**data), model, TrainConfig(**train), epochs


def train(
    options: dict,
    out: str | Path,
    *,
    overwrite: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> Run:
    """Train a Forecaster on `options` (the fields of ForecastData, ForecasterConfig and
    TrainConfig, and `epochs`) into the run directory `out`, then backtest the best weights on
    the test rows (summary["test"]: the model and the baselines)."""
    out = Path(out)
    distributed.setup()
    rundir.check_out(out, overwrite)
    settings, model_options, config, epochs = plan(options)
    if settings.path is not None:
        settings.path = str(Path(settings.path).resolve())
    data = prepare(settings)
    L, H = settings.lookback, settings.horizon
    train_end, valid_end, test_end = data.ends
    batches = WindowBatches(
        data, _starts("training", 0, train_end, L, H), L, H, settings.batch, config.seed
    )
    valid_starts = _starts("validation", train_end, valid_end, L, H)
    test_starts = _starts("test", valid_end, test_end, L, H, settings.stride)
    if epochs is not None:
        config.max_steps = epochs * len(batches)
    if "eval_every" not in options:
        config.eval_every = len(batches)  # once an epoch
    seed_everything(config.seed)
    model = Forecaster(
        data.y.shape[1],
        H,
        past_features=data.x.shape[1],
        future_features=data.f.shape[1],
        **model_options,
    )
    if config.device is None:
        model.to(distributed.device())
    season = season_of(settings, data.times)
    run_config = {
        "task": TASK,
        "model": model.config.to_dict(),
        "data": {**asdict(settings), "season": season, "ends": list(data.ends)},
    }
    scalers = {
        "y": data.y_scaler.to_dict(),
        "x": data.x_scaler.to_dict() if data.x_scaler else None,
    }
    trainer = Trainer(
        model,
        batches,
        config,
        out,
        valid_fn=_valid_fn(data, valid_starts, L, H),
        run_config=run_config,
        vocab={"scalers": scalers, "calendar": data.f_names},
        on_step=on_step,
        overwrite=overwrite,
    )
    _log_start(model, settings, data, len(batches), epochs, len(valid_starts), len(test_starts))
    result = trainer.fit()
    distributed.barrier()  # process 0 has written OUT/best
    if result.best_path is not None:
        model.load_state_dict(checkpoint.load(result.best_path).model_state)
    model.eval()
    summary = {
        "out": str(out),
        "step": result.step,
        "epochs": result.step / len(batches),
        "stop_reason": result.stop_reason,
        "seconds": trainer.elapsed,
        "train_loss": result.metrics.get("train/loss"),
        "best_valid_mse": result.best,
        "lookback": L,
        "horizon": H,
        "test": backtest(model, data, test_starts, L, season),
    }
    return Run(model, data, settings, summary)


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


def _log_start(model, settings, data, steps, epochs, n_valid, n_test) -> None:
    if not distributed.is_main():
        return
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    source = settings.path or BUILTIN["name"]
    logger.info(
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
