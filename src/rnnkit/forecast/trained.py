"""A trained forecaster read back from its checkpoint: the forecast past the end of a series,
and the backtest of the model and the baselines on a series' test rows."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from rnnkit.forecast.backtest import backtest, forecast, intervals, point
from rnnkit.forecast.model import Forecaster
from rnnkit.forecast.run import TASK, ForecastData, prepare
from rnnkit.forecast.times import calendar_features
from rnnkit.forecast.windows import Prepared, window_starts
from rnnkit.train import rundir


@dataclass
class Trained:
    """A trained model with its data settings and scalers."""

    model: Forecaster  # in eval mode
    settings: ForecastData  # as trained (path: the training data)
    scalers: dict  # {"y": Scaler dict, "x": Scaler dict or None}
    calendar: list[str]  # the calendar features' names
    season: int
    info: dict  # {"path", "step", "config", "metrics"}

    def read(self, path: str | None, split: bool = True, **reading) -> Prepared:
        """The series at `path` (None: the training data) as this model reads it: its columns,
        calendar features and scalers; `reading` overrides time_column, encoding, fill."""
        settings = ForecastData(
            **{
                **{f.name: getattr(self.settings, f.name) for f in fields(ForecastData)},
                **({"path": path} if path is not None else {}),
                **{k: v for k, v in reading.items() if v is not None},
            }
        )
        return prepare(settings, self.scalers, split=split, calendar=self.calendar)

    def predict(self, data: Prepared) -> dict:
        """The next H values after the last row of `data`, on the original scale:
        {"times" (H,), "point" (H, C), "output" (model output), "interval": (lower, upper,
        name) or None, "targets": names}."""
        L, H = self.settings.lookback, self.model.config.horizon
        n = len(data.times)
        if n < L:
            raise ValueError(f"the series has {n} rows; the model reads the last {L} (lookback)")
        step = np.median(np.diff(data.times[-min(n, 1000) :]).astype("timedelta64[s]"))
        future = data.times[-1] + step * np.arange(1, H + 1)  # (H,)
        f = data.f
        if f.shape[1]:
            ahead = calendar_features(future, data.f_names)[0]
            f = np.concatenate([f, ahead.astype(np.float64)])
        else:
            f = np.empty((n + H, 0))
        extended = Prepared(
            times=np.concatenate([data.times, future]),
            y=np.concatenate([data.y, np.zeros((H, data.y.shape[1]))]),  # unknown, never read
            x=np.concatenate([data.x, np.zeros((H, data.x.shape[1]))]),
            f=f,
            ends=data.ends,
            y_scaler=data.y_scaler,
            x_scaler=data.x_scaler,
            f_names=data.f_names,
        )
        output = forecast(self.model, extended, np.array([n]), L)[0]  # (H, C[, Q])
        inverse = data.y_scaler.inverse
        bounds = intervals(self.model, output[None])
        return {
            "times": future,
            "targets": list(self.settings.target),
            "point": inverse(point(self.model, output[None])[0]),  # (H, C)
            "interval": None
            if bounds is None
            else (inverse(bounds[0][0]), inverse(bounds[1][0]), bounds[2]),
        }

    def evaluate(self, data: Prepared) -> dict:
        """`backtest` over the test rows of `data` (the run's split, stride)."""
        L, H = self.settings.lookback, self.model.config.horizon
        try:
            starts = window_starts(data.ends[1], data.ends[2], L, H, self.settings.stride)
        except ValueError as exc:
            raise ValueError(f"the test rows: {exc}") from None
        return backtest(self.model, data, starts, L, self.season)


def load(path: str | Path, device: str | torch.device = "cpu") -> Trained:
    """The forecaster in a checkpoint or a run directory (its best/, else its last/)."""
    ckpt = rundir.load_task(path, TASK)
    with rundir.usable(ckpt, TASK):
        data = dict(ckpt.config["data"])
        season = data.pop("season")
        data.pop("ends", None)
        settings = ForecastData(**data)
        model = rundir.build_model(ckpt, Forecaster)
        scalers = ckpt.vocab["scalers"]
        calendar = list(ckpt.vocab.get("calendar", []))
    model.to(device).eval()
    info = rundir.info(ckpt)
    return Trained(model, settings, scalers, calendar, season, info)
