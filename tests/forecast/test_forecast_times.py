"""Tests for rnnkit.forecast.times: calendar features (times are read in test_series.py)."""

import numpy as np

from rnnkit.forecast.times import calendar_features


def test_calendar_features_of_hourly_data_have_all_three_pairs():
    times = np.datetime64("2016-07-01T00:00:00", "s") + np.arange(24 * 8) * np.timedelta64(1, "h")
    # a Friday, day 182 (0-based) of a leap year
    features, names = calendar_features(times)
    assert names == [
        "hour_sin",
        "hour_cos",
        "dayofweek_sin",
        "dayofweek_cos",
        "dayofyear_sin",
        "dayofyear_cos",
    ]
    assert features.shape == (len(times), 6) and features.dtype == np.float32
    angle = 2 * np.pi * np.array([6 / 24, 4 / 7, 182 / 365.25])
    expected = np.stack([np.sin(angle), np.cos(angle)], axis=1).ravel()
    np.testing.assert_allclose(features[6], expected, atol=1e-6)
    np.testing.assert_allclose(features[:, 0] ** 2 + features[:, 1] ** 2, 1, atol=1e-6)


def test_calendar_features_of_daily_data_have_no_hour_pair():
    times = np.datetime64("2016-01-01", "s") + np.arange(30) * np.timedelta64(1, "D")
    features, names = calendar_features(times)
    assert names == ["dayofweek_sin", "dayofweek_cos", "dayofyear_sin", "dayofyear_cos"]
    assert features.shape == (30, 4)
    np.testing.assert_allclose(features[0, 2:], [0, 1], atol=1e-7)  # 1 January: day 0


def test_calendar_features_of_weekly_data_have_only_the_day_of_year():
    times = np.datetime64("2016-01-04", "s") + np.arange(10) * np.timedelta64(7, "D")
    assert calendar_features(times)[1] == ["dayofyear_sin", "dayofyear_cos"]
    features, names = calendar_features(times[:1])
    assert features.shape == (1, 0) and names == []
