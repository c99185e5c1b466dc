"""Tests for forecast/baselines.py: exact forecasts on a hand-made series, and a linear map
recovered from data that is exactly linear."""

import numpy as np
import pytest

from rnnkit.forecast.baselines import BASELINES, LinearBaseline, naive, seasonal_naive


def windows(series: np.ndarray, L: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    """(past (W, L, C), future (W, H, C)) from series (T, C), every start, stride 1."""
    W = len(series) - L - H + 1
    past = np.stack([series[w : w + L] for w in range(W)])
    future = np.stack([series[w + L : w + L + H] for w in range(W)])
    return past, future


@pytest.fixture
def tiny():
    """y = 1..12 and its squares as two series; lookback 4, horizon 3 -> 6 windows."""
    y = np.arange(1.0, 13.0)
    return windows(np.stack([y, y**2], axis=1), 4, 3)


def test_names():
    assert BASELINES == ("naive", "seasonal_naive", "linear")


def test_windows_helper(tiny):
    past, future = tiny
    assert past.shape == (6, 4, 2) and future.shape == (6, 3, 2)
    assert past[2, :, 0].tolist() == [3, 4, 5, 6] and future[2, :, 1].tolist() == [49, 64, 81]


def test_naive_exact(tiny):
    past, _ = tiny
    out = naive(past, 3)
    assert out.shape == (6, 3, 2) and out.dtype == np.float64
    assert out[0, :, 0].tolist() == [4, 4, 4]
    assert out[5, :, 0].tolist() == [9, 9, 9]
    assert out[5, :, 1].tolist() == [81, 81, 81]
    assert out[:, 0, 0].tolist() == [4, 5, 6, 7, 8, 9]


def test_seasonal_naive_exact(tiny):
    past, _ = tiny
    two = seasonal_naive(past, 3, season=2)  # window [1, 2, 3, 4] -> [3, 4, 3]
    assert two.shape == (6, 3, 2)
    assert two[0, :, 0].tolist() == [3, 4, 3]
    assert two[5, :, 0].tolist() == [8, 9, 8]
    assert two[5, :, 1].tolist() == [64, 81, 64]
    four = seasonal_naive(past, 3, season=4)  # the whole window is one season
    assert four[0, :, 0].tolist() == [1, 2, 3]
    assert four[3, :, 1].tolist() == [16, 25, 36]
    np.testing.assert_array_equal(seasonal_naive(past, 3, season=1), naive(past, 3))


def test_seasonal_naive_wraps_past_the_season(tiny):
    past, _ = tiny
    out = seasonal_naive(past, 7, season=3)  # window [1, 2, 3, 4]: last season [2, 3, 4]
    assert out.shape == (6, 7, 2)
    assert out[0, :, 0].tolist() == [2, 3, 4, 2, 3, 4, 2]
    assert out[1, :, 1].tolist() == [9, 16, 25, 9, 16, 25, 9]
    assert seasonal_naive(past, 5, season=2)[0, :, 0].tolist() == [3, 4, 3, 4, 3]


def test_seasonal_naive_bad_season(tiny):
    past, _ = tiny
    with pytest.raises(ValueError, match="season must be at most the lookback L=4, got 5"):
        seasonal_naive(past, 3, season=5)
    with pytest.raises(ValueError, match="season must be a positive integer, got 0"):
        seasonal_naive(past, 3, season=0)


def test_bad_horizon_and_shape(tiny):
    past, _ = tiny
    with pytest.raises(ValueError, match="horizon must be a positive integer, got 0"):
        naive(past, 0)
    with pytest.raises(ValueError, match="horizon must be a positive integer, got 2.0"):
        seasonal_naive(past, 2.0, season=2)
    with pytest.raises(ValueError, match=r"past must be a non-empty \(W, steps, C\) array"):
        naive(past[:, :, 0], 3)


def test_linear_recovers_straight_lines():
    t = np.arange(200.0)
    series = np.stack([0.5 * t + 3.0, -2.0 * t + 1.0], axis=1)
    past, future = windows(series[:120], 6, 4)
    model = LinearBaseline(ridge=1e-10).fit(past, future)
    assert model.A.shape == (2, 4, 6) and model.b.shape == (2, 4)
    np.testing.assert_allclose(model.predict(past), future, atol=1e-6)
    later_past, later_future = windows(series[120:], 6, 4)  # never seen, further along
    np.testing.assert_allclose(model.predict(later_past), later_future, atol=1e-6)


def test_linear_recovers_sines_with_offset():
    t = np.arange(600.0)
    y = 1.5 * np.sin(0.3 * t) + 0.5 * np.cos(0.7 * t + 1.0) + 2.0  # order-4 recurrence + const
    series = np.stack([y, np.sin(0.05 * t)], axis=1)
    past, future = windows(series[:400], 8, 5)
    model = LinearBaseline(ridge=1e-12).fit(past, future)
    test_past, test_future = windows(series[400:], 8, 5)
    np.testing.assert_allclose(model.predict(test_past), test_future, atol=1e-6)
    assert np.abs(naive(test_past, 5) - test_future).max() > 0.1  # the task is not trivial


def test_linear_recovers_a_and_b_exactly():
    rng = np.random.default_rng(0)
    W, L, H = 50, 5, 3
    A_true, b_true = rng.normal(size=(H, L)), rng.normal(size=H)
    past = rng.normal(size=(W, L, 1))
    future = (past[:, :, 0] @ A_true.T + b_true)[:, :, None]
    model = LinearBaseline(ridge=0.0).fit(past, future)
    np.testing.assert_allclose(model.A[0], A_true, atol=1e-10)
    np.testing.assert_allclose(model.b[0], b_true, atol=1e-10)


def test_ridge_shrinks_a_but_not_b():
    rng = np.random.default_rng(1)
    past, future = rng.normal(size=(40, 6, 2)), rng.normal(3.0, 1.0, size=(40, 4, 2))
    model = LinearBaseline(ridge=1e9).fit(past, future)
    assert np.abs(model.A).max() < 1e-6
    np.testing.assert_allclose(model.b, future.mean(axis=0).T, atol=1e-6)
    assert np.abs(LinearBaseline(ridge=1e-3).fit(past, future).A).max() > 1e-3


def test_linear_constant_series():
    past, future = np.full((10, 4, 1), 2.0), np.full((10, 3, 1), 5.0)
    model = LinearBaseline().fit(past, future)
    np.testing.assert_allclose(model.predict(past), future, atol=1e-12)


def test_linear_errors(tiny):
    past, future = tiny
    with pytest.raises(ValueError, match="must be fitted before predict"):
        LinearBaseline().predict(past)
    model = LinearBaseline().fit(past, future)
    with pytest.raises(ValueError, match=r"\(W, L=4, C=2\) as fitted, got \(6, 3, 2\)"):
        model.predict(past[:, 1:, :])
    with pytest.raises(ValueError, match=r"\(W, L=4, C=2\) as fitted, got \(6, 4, 1\)"):
        model.predict(past[:, :, :1])
    with pytest.raises(ValueError, match=r"future must be \(W=6, H, C=2\)"):
        LinearBaseline().fit(past, future[:5])
    with pytest.raises(ValueError, match=r"future must be \(W=6, H, C=2\)"):
        LinearBaseline().fit(past, future[:, :, :1])
    bad = past.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="past must be finite"):
        LinearBaseline().fit(bad, future)
    with pytest.raises(ValueError, match="ridge must be a finite number >= 0, got -1"):
        LinearBaseline(ridge=-1.0)
