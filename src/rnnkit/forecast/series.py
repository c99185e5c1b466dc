"""Reading a time series: a CSV's timestamps and the numeric columns asked for, as a Frame.

    N: rows (time steps)

Every bad input is a ValueError (FileNotFoundError for a missing file) whose one-line message
names the file and, where there is one, the line: "line N" is the line of the file, counting
the header as line 1. Times with a zone (Z, +02:00) are converted to UTC; times without one
are kept as they are, and a file may not mix the two.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.files import text_encoding
from rnnkit.forecast.times import parse_time
from rnnkit.train.options import encoding_example, spelled

MISSING = frozenset({"", "na", "nan", "null", "none"})  # compared stripped and lowercased


@dataclass
class Frame:
    """A CSV's timestamps and the numeric columns asked for."""

    times: np.ndarray  # (N,) datetime64[s], strictly increasing
    values: dict[str, np.ndarray]  # column name -> (N,) float64, in the order asked
    source: str  # the path, for messages
    filled: int = 0  # missing values filled by interpolation (fill=True)

    def __post_init__(self) -> None:
        for name, column in self.values.items():
            if len(column) != len(self.times):
                raise ValueError(
                    f"{self.source}: column {name!r} has {len(column)} values for "
                    f"{len(self.times)} times; give one value per time"
                )

    def __len__(self) -> int:
        return len(self.times)

    def matrix(self, names: Sequence[str]) -> np.ndarray:
        """(N, len(names)) float64: the named columns side by side ((N, 0) for no names)."""
        if isinstance(names, str):
            raise ValueError(f"names must be a list of column names; write [{names!r}]")
        for name in names:
            if name not in self.values:
                raise ValueError(
                    f"{self.source} was read without column {name!r}; its columns are: "
                    f"{', '.join(self.values)}; name one of them or read it with that column"
                )
        if not names:
            return np.empty((len(self), 0), dtype=np.float64)
        return np.stack([self.values[name] for name in names], axis=1).astype(np.float64)


def read_series(
    path: str | os.PathLike,
    *,
    time_column: str = "date",
    columns: Sequence[str],
    fill: bool = False,
    encoding: str = "utf-8",
) -> Frame:
    """The times and the numeric `columns` of the CSV at `path` (with a header line).

    Other columns of the file are ignored, whatever they hold. Times must strictly increase
    (no duplicates, sorted). A missing value (an empty cell, NA, NaN, null or None, in any case)
    is an error unless fill=True, which interpolates it linearly in time; a gap at either end
    takes the nearest value. At least 2 rows.
    """
    wanted = _check_columns(columns, time_column)
    path = Path(path)
    header, records = _records(path, encoding)
    index = {name: i for i, name in enumerate(header)}
    for name in [time_column, *wanted]:
        if name not in index:
            raise ValueError(
                f"{path} has no column {name!r}; its columns are: {', '.join(header)}; "
                "name one of them instead"
            )
        if header.count(name) > 1:
            raise ValueError(f"{path} has two columns named {name!r}; rename one of them")
    lines, times, cells = _parse_rows(path, header, records, index, time_column, wanted)
    _check_order(path, lines, times)
    values, missing = _numbers(path, lines, cells, wanted)
    filled = 0
    if missing:
        if not fill:
            raise ValueError(_missing_message(path, missing))
        filled = _fill(path, times, values)
    return Frame(times.astype("datetime64[s]"), values, str(path), filled)


def _check_columns(columns: Sequence[str], time_column: str) -> list[str]:
    if isinstance(columns, str):
        raise ValueError(f"columns must be a list of column names; write columns=[{columns!r}]")
    wanted = list(columns)
    if not wanted:
        raise ValueError("no columns asked for; name the numeric columns to read, e.g. ['OT']")
    for name in wanted:
        if wanted.count(name) > 1:
            raise ValueError(f"column {name!r} is asked for twice; name each column once")
    if time_column in wanted:
        raise ValueError(f"{time_column!r} is the time column; leave it out of the numeric columns")
    return wanted


def _records(path: Path, encoding: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line, fields)]) of the non-blank records of the CSV at `path`."""
    text = _decode(path, encoding)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records = []
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ValueError(
                f"{path}, line {line}: not valid CSV ({exc}); check the quotes of this row"
            ) from None
        if row:
            records.append((line, row))
    if not records:
        raise ValueError(f"{path} is empty; give a CSV with a header line and rows of data")
    header = [name.strip() for name in records[0][1]]
    if len(records) == 1:
        raise ValueError(f"{path} has a header but no rows; add one row per time below it")
    if len(records) < 3:
        raise ValueError(f"{path} has 1 row; a series needs at least 2, give more rows")
    return header, records[1:]


def _decode(path: Path, encoding: str) -> str:
    """The file as text without a byte-order mark; errors name the line and what to do."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; check the path of the series")
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file; give a CSV file")
    raw = path.read_bytes()
    try:
        text = raw.decode(text_encoding(raw, encoding))
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}; try 'utf-8' or 'latin-1'") from None
    except UnicodeDecodeError as exc:
        if b"\0" in raw:
            raise ValueError(f"{path} looks binary (it holds NUL bytes); give a CSV file") from None
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{path}, line {line}: byte 0x{raw[exc.start]:02x} (offset {exc.start}) is not valid "
            f"{encoding}; pass the file's encoding, e.g. {encoding_example()}"
        ) from None
    if "\0" in text:
        raise ValueError(f"{path} looks binary (it holds NUL characters); give a CSV file")
    return text.removeprefix("\ufeff")


def _parse_rows(
    path: Path,
    header: list[str],
    records: list[tuple[int, list[str]]],
    index: dict[str, int],
    time_column: str,
    wanted: list[str],
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """(lines (N,), seconds (N,) int64, cells: per wanted column its N raw strings)."""
    width = len(header)
    time_i = index[time_column]
    picks = [index[name] for name in wanted]
    lines, seconds = [], []
    cells: list[list[str]] = [[] for _ in wanted]
    zoned_line = naive_line = None
    for line, row in records:
        if len(row) < width or any(field.strip() for field in row[width:]):
            raise ValueError(
                f"{path}, line {line}: {len(row)} fields where the header has {width}; fix the row"
            )
        where = f"{path}, line {line}"
        value, zoned = parse_time(row[time_i], where, time_column)
        if zoned:
            zoned_line = zoned_line or line
        else:
            naive_line = naive_line or line
        if zoned_line and naive_line:
            raise ValueError(
                f"{path}: line {zoned_line} gives a time zone but line {naive_line} does not; "
                "give every time with a zone or none"
            )
        lines.append(line)
        seconds.append(value)
        for column, i in zip(cells, picks):
            column.append(row[i])
    return np.array(lines, dtype=np.int64), np.array(seconds, dtype=np.int64), cells


def _check_order(path: Path, lines: np.ndarray, seconds: np.ndarray) -> None:
    steps = np.diff(seconds)
    bad = np.flatnonzero(steps <= 0)
    if not bad.size:
        return
    i = bad[0]
    before = np.datetime64(int(seconds[i]), "s")
    if steps[i] == 0:
        raise ValueError(
            f"{path}: lines {lines[i]} and {lines[i + 1]} have the same time {before}; "
            "keep one row per time"
        )
    raise ValueError(
        f"{path}, line {lines[i + 1]}: the time {np.datetime64(int(seconds[i + 1]), 's')} comes "
        f"before {before} on line {lines[i]}; sort the file by time"
    )


def _numbers(
    path: Path, lines: np.ndarray, cells: list[list[str]], wanted: list[str]
) -> tuple[dict[str, np.ndarray], list[tuple[int, str]]]:
    """(name -> (N,) float64 with NaN where missing, [(line, name)] of the missing cells)."""
    values = {}
    missing = []
    for name, column in zip(wanted, cells):
        numbers = np.empty(len(column), dtype=np.float64)
        for i, cell in enumerate(column):
            numbers[i] = _number(cell, path, lines[i], name)
        values[name] = numbers
        missing += [(int(lines[i]), name) for i in np.flatnonzero(np.isnan(numbers))]
    missing.sort()
    return values, missing


def _number(cell: str, path: Path, line: int, name: str) -> float:
    """The cell as a float; NaN when it is missing."""
    text = cell.strip()
    if text.lower() in MISSING:
        return math.nan
    try:
        number = float(text)
    except ValueError:
        raise ValueError(
            f"{path}, line {line}: column {name!r} holds {cell!r}, not a number; "
            "fix the cell or leave it empty to mark it missing"
        ) from None
    if math.isinf(number):
        raise ValueError(
            f"{path}, line {line}: column {name!r} holds {cell!r}, not a finite number; "
            "fix the cell or leave it empty to mark it missing"
        )
    return number


def _missing_message(path: Path, missing: list[tuple[int, str]]) -> str:
    shown = ", ".join(f"{name!r} line {line}" for line, name in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return (
        f"{path}: {len(missing)} missing value(s): {shown}{more}; fill them in, or pass "
        f"{spelled('fill=True (--fill)', '--fill')} to interpolate them in time"
    )


def _fill(path: Path, seconds: np.ndarray, values: dict[str, np.ndarray]) -> int:
    """Fill each column's NaNs in place by linear interpolation in time; the count filled."""
    at = seconds.astype(np.float64)
    filled = 0
    for name, column in values.items():
        gaps = np.isnan(column)
        if gaps.all():
            raise ValueError(
                f"{path}: column {name!r} has no values at all; give it some or leave it out"
            )
        if gaps.any():
            column[gaps] = np.interp(at[gaps], at[~gaps], column[~gaps])
            filled += int(gaps.sum())
    return filled
