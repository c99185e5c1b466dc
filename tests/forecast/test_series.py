"""Tests for rnnkit.forecast.series: reading a series from a CSV."""

import numpy as np
import pytest

from rnnkit.forecast.series import Frame, read_series

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
