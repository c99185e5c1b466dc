"""Tests for forecast/metrics.py against values worked out by hand."""

import math

import numpy as np
import pytest

from rnnkit.forecast.metrics import interval_coverage, pinball_loss, point_metrics


def test_point_metrics_by_hand():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    truth = np.array([[2.0, 2.0], [1.0, 8.0]])  # errors -1, 0, 2, -4
    m = point_metrics(pred, truth)
    assert set(m) == {"mse", "mae", "rmse", "mape", "smape"}
    assert m["mse"] == pytest.approx(21 / 4)
    assert m["mae"] == pytest.approx(7 / 4)
    assert m["rmse"] == pytest.approx(math.sqrt(21 / 4))
    assert m["mape"] == pytest.approx(100 * (1 / 2 + 0 / 2 + 2 / 1 + 4 / 8) / 4)  # 75
    assert m["smape"] == pytest.approx(100 * (2 / 3 + 0 + 4 / 4 + 8 / 12) / 4)
    assert all(isinstance(v, float) for v in m.values())


def test_point_metrics_perfect_on_windows():
    truth = np.arange(1.0, 25.0).reshape(2, 3, 4)  # (W, H, C)
    m = point_metrics(truth.copy(), truth)
    assert m == {"mse": 0.0, "mae": 0.0, "rmse": 0.0, "mape": 0.0, "smape": 0.0}


def test_mape_skips_zero_truth():
    m = point_metrics(np.array([1.0, 3.0]), np.array([0.0, 2.0]))
    assert m["mape"] == pytest.approx(100 * (1 / 2))  # only the second element counts
    assert m["smape"] == pytest.approx(100 * (2 * 1 / 1 + 2 * 1 / 5) / 2)  # both count
    assert m["mae"] == pytest.approx(1.0)
    assert math.isnan(point_metrics(np.array([1.0, 2.0]), np.array([0.0, 1e-9]))["mape"])


def test_smape_skips_zero_over_zero():
    m = point_metrics(np.array([0.0, 1.0]), np.array([0.0, 3.0]))
    assert m["smape"] == pytest.approx(100 * (2 * 2 / 4))  # 100, not 50: 0/0 left out
    assert m["mse"] == pytest.approx(4 / 2)
    assert math.isnan(point_metrics(np.zeros(3), np.zeros(3))["smape"])


def test_point_metrics_errors():
    with pytest.raises(ValueError, match=r"one shape, got \(2, 3\) and \(3, 2\)"):
        point_metrics(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="pred must be finite"):
        point_metrics(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="truth must be finite"):
        point_metrics(np.array([1.0, 2.0]), np.array([np.inf, 2.0]))
    with pytest.raises(ValueError, match="must not be empty"):
        point_metrics(np.zeros(0), np.zeros(0))


def test_interval_coverage():
    lower, upper = np.zeros(4), np.ones(4)
    truth = np.array([0.0, 0.5, 1.0, 1.5])  # the bounds themselves count as covered
    assert interval_coverage(lower, upper, truth) == pytest.approx(0.75)
    assert interval_coverage(lower, upper, -truth) == pytest.approx(0.25)
    assert interval_coverage(np.full(4, -np.inf), upper, truth) == pytest.approx(0.75)
    assert interval_coverage(lower - 10, upper + 10, truth) == 1.0


def test_interval_coverage_errors():
    with pytest.raises(ValueError, match="lower must be <= upper everywhere"):
        interval_coverage(np.array([0.0, 2.0]), np.array([1.0, 1.0]), np.zeros(2))
    with pytest.raises(ValueError, match=r"one shape, got \(2,\), \(3,\) and \(2,\)"):
        interval_coverage(np.zeros(2), np.ones(3), np.zeros(2))
    with pytest.raises(ValueError, match="truth must be finite"):
        interval_coverage(np.zeros(2), np.ones(2), np.array([0.5, np.nan]))
    with pytest.raises(ValueError, match="must not be NaN"):
        interval_coverage(np.array([np.nan, 0.0]), np.ones(2), np.zeros(2))


def test_pinball_by_hand():
    pred, truth = np.zeros(2), np.array([2.0, -1.0])  # d = y - p = 2, -1
    assert pinball_loss(pred, truth, 0.9) == pytest.approx((0.9 * 2 + 0.1 * 1) / 2)
    assert pinball_loss(pred, truth, 0.1) == pytest.approx((0.1 * 2 + 0.9 * 1) / 2)


def test_pinball_median_is_half_mae():
    rng = np.random.default_rng(0)
    pred, truth = rng.normal(size=(5, 3, 2)), rng.normal(size=(5, 3, 2))
    mae = point_metrics(pred, truth)["mae"]
    assert pinball_loss(pred, truth, 0.5) == pytest.approx(mae / 2)


def test_pinball_errors():
    for q in (0.0, 1.0, -0.5, float("nan")):
        with pytest.raises(ValueError, match="q must be in"):
            pinball_loss(np.zeros(2), np.zeros(2), q)
    with pytest.raises(ValueError, match="one shape"):
        pinball_loss(np.zeros(2), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="pred must be finite"):
        pinball_loss(np.array([np.nan, 0.0]), np.zeros(2), 0.5)
