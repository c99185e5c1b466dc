"""Rolling-origin evaluation: the model and the three baselines forecast every window of a
split, scored on the scaled and the original scale, with the coverage of the model's intervals.

The baselines see exactly the model's windows: naive and seasonal naive read the scaled
lookback; the linear one is fitted on the training windows (stride 1) of the same series.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rnnkit.forecast.baselines import LinearBaseline, naive, seasonal_naive
from rnnkit.forecast.metrics import interval_coverage, point_metrics
from rnnkit.forecast.windows import Prepared, window_starts

EVAL_BATCH = 256  # windows per forward pass
Z80 = 1.2815515655446004  # the standard normal's 0.9 quantile: a central 80 % interval


@torch.no_grad()
def forecast(model: nn.Module, data: Prepared, starts: np.ndarray, lookback: int) -> np.ndarray:
    """The model's raw output for every window (first target rows `starts`), float64: (W, H, C)
    for a point head, (W, H, C, Q) for quantiles, (W, H, C, 2) (mean, std) for a Gaussian."""
    model = getattr(model, "module", model)
    was_training = model.training
    device = next(model.parameters()).device
    horizon = model.config.horizon
    model.eval()
    outs = []
    try:
        for k in range(0, len(starts), EVAL_BATCH):
            inputs, _ = data.gather(starts[k : k + EVAL_BATCH], lookback, horizon)
            out, _ = model(tuple(t.to(device) for t in inputs))
            outs.append(out.double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs).numpy()


def intervals(model: nn.Module, output: np.ndarray) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(lower, upper, name) of the model's widest central interval, or None for a point head:
    the outermost quantiles, or the Gaussian's mean -/+ 1.28 std (80 %)."""
    c = model.config
    if c.head == "quantile" and len(c.quantiles) >= 2:
        return output[..., 0], output[..., -1], f"{c.quantiles[0]:g}-{c.quantiles[-1]:g}"
    if c.head == "gaussian":
        mean, std = output[..., 0], output[..., 1]
        return mean - Z80 * std, mean + Z80 * std, "0.1-0.9"
    return None


def point(model: nn.Module, output: np.ndarray) -> np.ndarray:
    """(W, H, C): model.point on a numpy output."""
    return model.point(torch.from_numpy(output)).numpy()


def backtest(
    model: nn.Module,
    data: Prepared,
    starts: np.ndarray,
    lookback: int,
    season: int,
) -> dict:
    """{"windows": W, "model" | "naive" | "seasonal_naive" | "linear": {"scaled": metrics,
    "original": metrics}}; the model's entry also has "coverage" {interval: fraction} when it
    forecasts intervals. Metrics: mse, mae, rmse, mape, smape (metrics.point_metrics)."""
    horizon = model.config.horizon
    inputs, future = data.gather(starts, lookback, horizon)
    past, truth = inputs[0].double().numpy(), future.double().numpy()  # (W, L, C), (W, H, C)
    output = forecast(model, data, starts, lookback)
    train_starts = _train_starts(data, lookback, horizon)
    linear = LinearBaseline().fit(*_past_future(data, train_starts, lookback, horizon))
    preds = {
        "model": point(model, output),
        "naive": naive(past, horizon),
        "seasonal_naive": seasonal_naive(past, horizon, season),
        "linear": linear.predict(past),
    }
    result = {"windows": len(starts)}
    for name, pred in preds.items():
        result[name] = {
            "scaled": point_metrics(pred, truth),
            "original": point_metrics(data.y_scaler.inverse(pred), data.y_scaler.inverse(truth)),
        }
    bounds = intervals(model, output)
    if bounds is not None:
        lower, upper, name = bounds
        result["model"]["coverage"] = {name: interval_coverage(lower, upper, truth)}
    return result


def _train_starts(data: Prepared, lookback: int, horizon: int) -> np.ndarray:
    return window_starts(0, data.ends[0], lookback, horizon)


def _past_future(data: Prepared, starts: np.ndarray, lookback: int, horizon: int):
    inputs, future = data.gather(starts, lookback, horizon)
    return inputs[0].double().numpy(), future.double().numpy()
