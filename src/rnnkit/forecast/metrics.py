"""Forecast error measures: point errors, prediction-interval coverage and the pinball loss.

Every measure averages over all elements (windows, horizon steps and series alike), with p the
prediction, y the truth and e = p - y:

    mse   = mean e^2,   mae = mean |e|,   rmse = sqrt(mse)
    mape  = 100 * mean |e| / |y|               over the elements with |y| > 1e-8
    smape = 100 * mean 2 |e| / (|p| + |y|)     over the elements with |p| + |y| > 0
    coverage = mean [lower <= y <= upper]
    pinball_q = mean max(q (y - p), (q - 1) (y - p)),   0 < q < 1
"""

from __future__ import annotations

import numpy as np

MAPE_FLOOR = 1e-8  # |y| at or below this is left out of mape


def _pair(
    pred_name: str, pred: np.ndarray, truth_name: str, truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64, checked to be non-empty, of one shape and finite."""
    p, y = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if p.shape != y.shape:
        raise ValueError(
            f"{pred_name} and {truth_name} must have one shape, got {p.shape} and {y.shape}"
        )
    if p.size == 0:
        raise ValueError(f"{pred_name} and {truth_name} must not be empty, got shape {p.shape}")
    for name, array in ((pred_name, p), (truth_name, y)):
        if not np.isfinite(array).all():
            raise ValueError(f"{name} must be finite, got NaN or inf")
    return p, y


def _masked_mean(values: np.ndarray, keep: np.ndarray) -> float:
    return float(values[keep].mean()) if keep.any() else float("nan")


def point_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """{"mse", "mae", "rmse", "mape", "smape"} over every element of pred and truth (one shape).

    mape and smape are percentages. mape leaves out the elements with |truth| <= 1e-8 and is
    nan when none is left; smape leaves out the elements with pred = truth = 0 (0/0) and is nan
    when none is left.
    """
    p, y = _pair("pred", pred, "truth", truth)
    abs_err = np.abs(p - y)
    mse = float(np.mean(abs_err**2))
    scale = np.abs(y)
    keep = scale > MAPE_FLOOR
    denom = np.abs(p) + scale
    both = denom > 0
    return {
        "mse": mse,
        "mae": float(abs_err.mean()),
        "rmse": float(np.sqrt(mse)),
        "mape": 100.0 * _masked_mean(abs_err / np.where(keep, scale, 1.0), keep),
        "smape": 100.0 * _masked_mean(2.0 * abs_err / np.where(both, denom, 1.0), both),
    }


def interval_coverage(lower: np.ndarray, upper: np.ndarray, truth: np.ndarray) -> float:
    """The fraction of truth values with lower <= truth <= upper (all three of one shape).

    The bounds may be infinite (an open-ended interval); truth must be finite.
    """
    lo, y = np.asarray(lower, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    if not lo.shape == hi.shape == y.shape:
        raise ValueError(
            f"lower, upper and truth must have one shape, got {lo.shape}, {hi.shape} and {y.shape}"
        )
    if y.size == 0:
        raise ValueError(f"lower, upper and truth must not be empty, got shape {y.shape}")
    if np.isnan(lo).any() or np.isnan(hi).any() or not np.isfinite(y).all():
        raise ValueError("lower and upper must not be NaN and truth must be finite, got NaN or inf")
    crossed = lo > hi
    if crossed.any():
        raise ValueError(
            f"lower must be <= upper everywhere, got lower > upper at {int(crossed.sum())} elements"
        )
    return float(np.mean((lo <= y) & (y <= hi)))


def pinball_loss(pred: np.ndarray, truth: np.ndarray, q: float) -> float:
    """The mean quantile loss of pred as the q-quantile of truth: max(q d, (q - 1) d), d = y - p.

    At q = 0.5 it is half the mean absolute error.
    """
    if isinstance(q, bool) or not isinstance(q, (int, float, np.integer, np.floating)):
        raise ValueError(f"q must be a number in (0, 1), got {q!r}")
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    p, y = _pair("pred", pred, "truth", truth)
    d = y - p
    return float(np.mean(np.maximum(q * d, (q - 1.0) * d)))
