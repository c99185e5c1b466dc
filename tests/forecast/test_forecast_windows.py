"""Tests for rnnkit.forecast.windows: window starts and the windows of an array."""

import numpy as np
import pytest

from rnnkit.forecast.windows import window_starts, windows


def test_window_starts_on_the_informer_etth2_split():
    lookback, horizon = 336, 24
    train = window_starts(0, 8640, lookback, horizon)
    valid = window_starts(8640, 11520, lookback, horizon)
    test = window_starts(11520, 14400, lookback, horizon)
    assert train.dtype == np.int64
    assert (len(train), len(valid), len(test)) == (8281, 2857, 2857)  # Informer's dataset sizes
    assert (train[0], train[-1]) == (336, 8616)
    assert (valid[0], valid[-1]) == (8640, 11496)
    assert (test[0], test[-1]) == (11520, 14376)
    assert train.max() + horizon <= 8640  # no training target reaches the validation rows
    assert valid[0] - lookback == 8304  # validation inputs reach back into the training rows
    np.testing.assert_array_equal(np.diff(test), 1)
    strided = window_starts(0, 8640, lookback, horizon, stride=24)
    assert (len(strided), strided[0], strided[-1]) == (346, 336, 8616)


def test_window_starts_errors():
    with pytest.raises(
        ValueError, match=r"rows \[8640, 8660\) hold no window of lookback 336 \+ horizon 24 "
    ):
        window_starts(8640, 8660, 336, 24)
    with pytest.raises(ValueError, match=r"need at least 360 rows from row 0, there are 359"):
        window_starts(0, 359, 336, 24)
    assert len(window_starts(0, 360, 336, 24)) == 1
    for bad in (
        {"lookback": 0},
        {"horizon": -1},
        {"stride": 0},
        {"stride": 1.0},
        {"horizon": True},
    ):
        args = {"lookback": 4, "horizon": 2, "stride": 1} | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            window_starts(0, 100, **args)
    with pytest.raises(ValueError, match="end before they start"):
        window_starts(50, 40, 4, 2)


def test_windows_gather_the_rows_before_and_from_each_start():
    x = np.arange(20, dtype=np.float64).reshape(10, 2)  # row r is [2r, 2r + 1]
    starts = window_starts(0, 10, lookback=3, horizon=2, stride=2)
    np.testing.assert_array_equal(starts, [3, 5, 7])
    past, future = windows(x, starts, 3, 2)
    assert past.shape == (3, 3, 2) and future.shape == (3, 2, 2)
    np.testing.assert_array_equal(past[0], x[0:3])
    np.testing.assert_array_equal(future[0], x[3:5])
    np.testing.assert_array_equal(past[2], [[8, 9], [10, 11], [12, 13]])
    np.testing.assert_array_equal(future[2], [[14, 15], [16, 17]])
    empty_past, empty_future = windows(x, np.array([], np.int64), 3, 2)
    assert empty_past.shape == (0, 3, 2) and empty_future.shape == (0, 2, 2)


def test_windows_errors():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="reach outside the 10 rows"):
        windows(x, np.array([2, 5]), 3, 2)
    with pytest.raises(ValueError, match="reach outside the 10 rows"):
        windows(x, np.array([3, 9]), 3, 2)
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        windows(np.zeros(10), np.array([3]), 3, 2)
    with pytest.raises(ValueError, match="1-D array of row indices"):
        windows(x, np.array([3.0]), 3, 2)
