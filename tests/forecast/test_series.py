"""Tests for rnnkit.forecast.series: reading a series, calendar features, splits, scaling,
windows."""

import json

import numpy as np
import pytest

from rnnkit.forecast.series import (
    SCALERS,
    Frame,
    Scaler,
    calendar_features,
    read_series,
    split_points,
    window_starts,
    windows,
)

HEADER = "date,HUFL,name,OT\n"


def write(path, data: str | bytes):
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", newline="")
    else:
        path.write_bytes(data)
    return path


def csv_file(tmp_path, rows: list[str], header: str = HEADER, name: str = "s.csv"):
    return write(tmp_path / name, header + "".join(row + "\n" for row in rows))


def hours(n: int, start: str = "2016-07-01T00:00:00") -> np.ndarray:
    return np.datetime64(start, "s") + np.arange(n) * np.timedelta64(1, "h")


# ---- reading --------------------------------------------------------------------------------


def test_reads_times_and_the_columns_asked_for_in_their_order(tmp_path):
    path = csv_file(
        tmp_path,
        [
            "2016-07-01 00:00:00,1.5,a,10",
            "2016-07-01 01:00:00,2.5,b,11",
            "2016-07-01 02:00:00,3,c,12",
        ],
    )
    frame = read_series(path, columns=["OT", "HUFL"])
    assert isinstance(frame, Frame)
    assert len(frame) == 3 and frame.filled == 0 and frame.source == str(path)
    assert frame.times.dtype == np.dtype("datetime64[s]")
    np.testing.assert_array_equal(frame.times, hours(3))
    assert list(frame.values) == ["OT", "HUFL"]  # the non-numeric 'name' column is ignored
    assert frame.values["HUFL"].dtype == np.float64
    np.testing.assert_array_equal(frame.values["HUFL"], [1.5, 2.5, 3.0])
    matrix = frame.matrix(["HUFL", "OT"])
    assert matrix.shape == (3, 2) and matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, [[1.5, 10], [2.5, 11], [3, 12]])
    assert frame.matrix([]).shape == (3, 0)
    with pytest.raises(ValueError, match=r"without column 'name'; its columns are: OT, HUFL"):
        frame.matrix(["name"])


def test_other_time_column_bom_crlf_spaces_and_blank_lines(tmp_path):
    text = "\ufefftime, x \r\n2016-07-01,1\r\n\r\n2016-07-02, 2 \r\n"
    frame = read_series(write(tmp_path / "s.csv", text), time_column="time", columns=["x"])
    np.testing.assert_array_equal(frame.times, np.array(["2016-07-01", "2016-07-02"], "M8[s]"))
    np.testing.assert_array_equal(frame.values["x"], [1, 2])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016-07-01 05:06:07", "2016-07-01T05:06:07"),
        ("2016-07-01T05:06", "2016-07-01T05:06:00"),
        ("2016-07-01", "2016-07-01T00:00:00"),
        ("2016/07/01 05:06", "2016-07-01T05:06:00"),
        ("2016/7/1 5:06:07", "2016-07-01T05:06:07"),
        ("2016-07-01 05:06:07.000", "2016-07-01T05:06:07"),
        ("2016-07-01T05:06:07Z", "2016-07-01T05:06:07"),
        ("2016-07-01T05:06:07+02:00", "2016-07-01T03:06:07"),  # converted to UTC
        ("2016-07-01 05:06:07 -0530", "2016-07-01T10:36:07"),
    ],
)
def test_time_formats(tmp_path, text, expected):
    zone = text[-1] == "Z" or "+" in text or text.endswith("-0530")
    later = "2016-07-02T00:00:00" + ("Z" if zone else "")
    frame = read_series(csv_file(tmp_path, [f"{text},1", f"{later},2"], "date,x\n"), columns=["x"])
    assert frame.times[0] == np.datetime64(expected, "s")


@pytest.mark.parametrize(
    "text",
    ["07/01/2016", "2016-13-01", "2016-02-30", "2016-07-01 25:00", "yesterday", "2016-07-01 1:2"],
)
def test_an_unreadable_time_names_the_line_and_the_value(tmp_path, text):
    path = csv_file(tmp_path, ["2016-06-30,0", f"{text},1"], "date,x\n")
    with pytest.raises(ValueError, match=rf"line 3: .*{text!r}"):
        read_series(path, columns=["x"])


def test_a_fraction_of_a_second_and_a_missing_time_are_errors(tmp_path):
    path = csv_file(tmp_path, ["2016-07-01 00:00:00.5,1", "2016-07-02,2"], "date,x\n")
    with pytest.raises(ValueError, match=r"line 2: .*fraction of a second"):
        read_series(path, columns=["x"])
    path = csv_file(tmp_path, ["2016-07-01,1", ",2"], "date,x\n")
    with pytest.raises(ValueError, match=r"line 3: no time in column 'date'"):
        read_series(path, columns=["x"])


def test_mixing_zoned_and_plain_times_is_an_error(tmp_path):
    path = csv_file(tmp_path, ["2016-07-01 00:00,1", "2016-07-01 01:00+02:00,2"], "date,x\n")
    with pytest.raises(ValueError, match=r"line 3 gives a time zone but line 2 does not"):
        read_series(path, columns=["x"])


def test_an_unknown_column_lists_the_real_ones(tmp_path):
    path = csv_file(tmp_path, ["2016-07-01,1,a,2", "2016-07-02,3,b,4"])
    with pytest.raises(
        ValueError, match=r"has no column 'LULL'; its columns are: date, HUFL, name, OT"
    ):
        read_series(path, columns=["OT", "LULL"])
    with pytest.raises(ValueError, match=r"has no column 'time'; its columns are: date, HUFL"):
        read_series(path, time_column="time", columns=["OT"])


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ("OT", r"write columns=\['OT'\]"),
        ([], "no columns"),
        (["OT", "OT"], "twice"),
        (["date"], "time column"),
    ],
)
def test_bad_column_lists(tmp_path, columns, message):
    path = csv_file(tmp_path, ["2016-07-01,1,a,2", "2016-07-02,3,b,4"])
    with pytest.raises(ValueError, match=message):
        read_series(path, columns=columns)


def test_missing_values_are_listed_with_their_lines_and_counted(tmp_path):
    rows = [f"2016-07-01 {h:02d}:00,{v},x,1" for h, v in enumerate(["", "NA", "1", "nan", "NULL"])]
    rows += ["2016-07-01 05:00,none,x,", "2016-07-01 06:00,NaN,x,2"]
    path = csv_file(tmp_path, rows)
    with pytest.raises(ValueError) as info:
        read_series(path, columns=["HUFL", "OT"])
    message = str(info.value)
    assert "\n" not in message
    assert (
        "7 missing value(s): 'HUFL' line 2, 'HUFL' line 3, 'HUFL' line 5, 'HUFL' line 6, "
        in message
    )
    assert "'HUFL' line 7 and 2 more" in message
    assert "fill=True (--fill)" in message


def test_fill_interpolates_linearly_in_time_and_takes_the_nearest_value_at_the_ends(tmp_path):
    rows = [
        "2016-07-01 00:00,,1",  # leading gap: nearest value 10
        "2016-07-01 01:00,10,2",
        "2016-07-01 02:00,NaN,",  # 1/3 of the way from 10 (01:00) to 40 (04:00)
        "2016-07-01 04:00,40,4",  # the gap before it is 2 hours: interpolation is in time
        "2016-07-01 05:00,na,5",  # trailing gap: nearest value 40
    ]
    frame = read_series(csv_file(tmp_path, rows, "date,a,b\n"), columns=["a", "b"], fill=True)
    np.testing.assert_allclose(frame.values["a"], [10, 10, 20, 40, 40])
    # 02:00 is 1/3 of the way from (01:00, 2) to (04:00, 4): 8/3, where by row it would be 3
    np.testing.assert_allclose(frame.values["b"], [1, 2, 8 / 3, 4, 5])
    assert frame.filled == 4


def test_fill_needs_a_value_in_each_column(tmp_path):
    path = csv_file(tmp_path, ["2016-07-01,,1", "2016-07-02,NA,2"], "date,a,b\n")
    with pytest.raises(ValueError, match=r"column 'a' has no values at all"):
        read_series(path, columns=["a", "b"], fill=True)


@pytest.mark.parametrize("cell", ["abc", "1,5", "inf", "--3"])
def test_a_non_numeric_cell_names_the_line_column_and_value(tmp_path, cell):
    path = csv_file(tmp_path, ["2016-07-01,1,a,2", f'2016-07-02,3,b,"{cell}"'])
    with pytest.raises(ValueError, match=rf"line 3: column 'OT' holds {cell!r}, not a"):
        read_series(path, columns=["HUFL", "OT"])


def test_a_non_numeric_cell_in_an_ignored_column_is_fine(tmp_path):
    path = csv_file(tmp_path, ["2016-07-01,1,a,oops", "2016-07-02,3,b,"])
    assert len(read_series(path, columns=["HUFL"])) == 2


def test_duplicate_times_name_both_lines(tmp_path):
    rows = ["2016-07-01 00:00,1", "2016-07-01 01:00,2", "2016-07-01T01:00:00,3"]
    with pytest.raises(ValueError, match=r"lines 3 and 4 have the same time 2016-07-01T01:00:00"):
        read_series(csv_file(tmp_path, rows, "date,x\n"), columns=["x"])


def test_unsorted_times_name_the_line(tmp_path):
    rows = ["2016-07-01,1", "2016-07-03,2", "2016-07-02,3"]
    with pytest.raises(
        ValueError, match=r"line 4: the time 2016-07-02.* line 3; sort the file by time"
    ):
        read_series(csv_file(tmp_path, rows, "date,x\n"), columns=["x"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("date,x\n", "a header but no rows"),
        ("date,x\n2016-07-01,1\n", "has 1 row; a series needs at least 2"),
    ],
)
def test_empty_and_short_files(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_series(write(tmp_path / "s.csv", text), columns=["x"])


def test_a_short_row_and_a_missing_file(tmp_path):
    path = csv_file(tmp_path, ["2016-07-01,1,a,2", "2016-07-02,3"])
    with pytest.raises(ValueError, match=r"line 3: 2 fields where the header has 4"):
        read_series(path, columns=["HUFL"])
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_series(tmp_path / "nope.csv", columns=["x"])


def test_bad_encoding_names_the_line_and_suggests_latin_1(tmp_path):
    data = "date,x,note\n2016-07-01,1,ok\n2016-07-02,2,caf\u00e9\n".encode("latin-1")
    path = write(tmp_path / "s.csv", data)
    with pytest.raises(ValueError, match=r"line 3: byte 0xe9 .*encoding='latin-1' \(--encoding"):
        read_series(path, columns=["x"])
    assert len(read_series(path, columns=["x"], encoding="latin-1")) == 2
    with pytest.raises(ValueError, match="unknown encoding"):
        read_series(path, columns=["x"], encoding="klingon")


# ---- calendar features ----------------------------------------------------------------------


def test_calendar_features_of_hourly_data_have_all_three_pairs():
    times = hours(24 * 8, "2016-07-01T00:00:00")  # a Friday, day 182 (0-based) of a leap year
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


# ---- splits ---------------------------------------------------------------------------------


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


# ---- scaling --------------------------------------------------------------------------------


X = np.array([[1.0, 10.0, 5.0], [2.0, 20.0, 5.0], [3.0, 60.0, 5.0]])


def test_standard_scaler_uses_the_population_std():
    scaler = Scaler().fit(X)
    np.testing.assert_allclose(scaler.shift, [2, 30, 5])
    np.testing.assert_allclose(scaler.scale, [np.sqrt(2 / 3), np.sqrt(1400 / 3), 1])
    scaled = scaler.transform(X)
    np.testing.assert_allclose(scaled[:, 0], [-np.sqrt(1.5), 0, np.sqrt(1.5)])
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled[:, :2].std(axis=0), 1)
    np.testing.assert_array_equal(scaled[:, 2], 0)  # a constant column: scale 1


def test_minmax_and_none_scalers():
    minmax = Scaler("minmax").fit(X)
    np.testing.assert_allclose(minmax.transform(X), [[0, 0, 0], [0.5, 0.2, 0], [1, 1, 0]])
    none = Scaler("none").fit(X)
    np.testing.assert_array_equal(none.transform(X), X)
    assert SCALERS == ("standard", "minmax", "none")
    with pytest.raises(ValueError, match="unknown scaler 'robust'; give one of standard, minmax"):
        Scaler("robust")


def test_a_constant_column_of_inexact_floats_gets_scale_1():
    x = np.full((7, 1), 0.1)
    scaler = Scaler().fit(x)
    assert scaler.scale[0] == 1.0
    np.testing.assert_allclose(scaler.transform(x), 0, atol=1e-15)


@pytest.mark.parametrize("kind", SCALERS)
def test_scaler_round_trips_any_shape_and_keeps_float32(kind):
    scaler = Scaler(kind).fit(X)
    batch = np.random.default_rng(0).normal(size=(4, 5, 3)) * 20
    np.testing.assert_allclose(scaler.inverse(scaler.transform(batch)), batch)
    assert scaler.transform(batch.astype(np.float32)).dtype == np.float32
    assert scaler.inverse(np.zeros((2, 3), np.float32)).dtype == np.float32


def test_scaler_dict_round_trips_through_json():
    scaler = Scaler("minmax").fit(X)
    again = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert again.kind == "minmax"
    np.testing.assert_array_equal(again.transform(X), scaler.transform(X))
    with pytest.raises(ValueError, match="needs the keys"):
        Scaler.from_dict({"kind": "standard"})
    with pytest.raises(ValueError, match="positive finite scales"):
        Scaler.from_dict({"kind": "standard", "shift": [0.0], "scale": [0.0]})


def test_scaler_fitted_on_the_training_rows_ignores_the_test_rows():
    series = np.arange(20, dtype=np.float64).reshape(10, 2)
    other = series.copy()
    other[7:] *= 1000  # the test rows change
    a, b = Scaler().fit(series[:7]), Scaler().fit(other[:7])
    np.testing.assert_array_equal(a.to_dict()["shift"], b.to_dict()["shift"])
    np.testing.assert_array_equal(a.to_dict()["scale"], b.to_dict()["scale"])
    np.testing.assert_allclose(a.shift, series[:7].mean(axis=0))
    assert not np.allclose(a.shift, series.mean(axis=0))


def test_scaler_errors():
    with pytest.raises(ValueError, match="transform before fit"):
        Scaler().transform(X)
    with pytest.raises(ValueError, match="not fitted"):
        Scaler().to_dict()
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        Scaler().fit(X).transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        Scaler().fit(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        Scaler().fit(np.array([[1.0], [np.nan]]))


# ---- windows --------------------------------------------------------------------------------


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
