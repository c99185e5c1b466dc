"""Tests for rnnkit.forecast.split: the chronological split ends."""

import numpy as np
import pytest

from rnnkit.forecast.split import split_points


def hours(n: int, start: str = "2016-07-01T00:00:00") -> np.ndarray:
    return np.datetime64(start, "s") + np.arange(n) * np.timedelta64(1, "h")


def test_split_defaults_are_70_80_100_percent():
    assert split_points(hours(100)) == (70, 80, 100)
    assert split_points(hours(17420)) == (12194, 13936, 17420)


def test_split_ends_as_rows_fractions_times_and_strings():
    times = hours(100)
    assert split_points(times, 50, 60, 90) == (50, 60, 90)
    assert split_points(times, np.int64(50), 0.6, 1.0) == (50, 60, 100)
    assert split_points(times, 0.333, 0.5, 0.9) == (33, 50, 90)
    assert split_points(times, "50", " 0.6 ", "1.0") == (50, 60, 100)
    # times: the first row at or after them; a date string, an ISO string, between two rows
    assert split_points(times, "2016-07-02", "2016-07-03T00:00:00", "2016-07-04 00:30") == (
        24,
        48,
        73,
    )
    assert split_points(times, np.datetime64("2016-07-02"), "0.5", 90) == (24, 50, 90)


def test_split_a_time_after_the_last_row_means_the_end():
    times = hours(100)
    assert split_points(times, 10, 20, "2030-01-01") == (10, 20, 100)
    assert split_points(times, np.datetime64("2016-07-02"), 30, None) == (24, 30, 100)


@pytest.mark.parametrize(
    ("ends", "message"),
    [
        ((80, 70, 100), "train_end=80, valid_end=70, test_end=100 of 100 rows"),
        ((70, 70, 100), "train_end=70, valid_end=70"),
        ((70, 80, 80), "valid_end=80, test_end=80"),  # no test rows
        (("2016-07-01", 80, 100), "train_end=0,"),  # before the first row: no training rows
        ((0, 80, 100), r"train_end=0 rows is outside 1\.\.100"),
        ((70, 80, 101), r"test_end=101 rows is outside"),
        ((70, 80, 1.5), r"test_end=1.5 is not a fraction in \(0, 1\]"),
        ((0.0, 80, 100), r"train_end=0.0 is not a fraction"),
        ((True, 80, 100), "train_end must be"),
        (([70], 80, 100), "train_end must be"),
        (("soon", 80, 100), r"train_end='soon' is not rows, a fraction or a time"),
        (("", 80, 100), r"train_end='' is not rows"),
    ],
)
def test_bad_split_ends(ends, message):
    with pytest.raises(ValueError, match=message):
        split_points(hours(100), *ends)
