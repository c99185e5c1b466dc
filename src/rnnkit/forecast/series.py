"""Time series for forecasting: reading a CSV of timestamped numeric columns, calendar features,
the chronological split, per-column scaling and the lookback/horizon windows.

Windows follow the Informer convention: the window whose first target row is t takes its inputs
from rows [t - lookback, t) and its targets from rows [t, t + horizon). A split [start, end)
owns the windows whose targets lie in it, so validation and test windows read their inputs
from the end of the previous split, and training windows (start 0) begin at t = lookback.

    N: rows (time steps), C: columns, W: windows, L: lookback, H: horizon

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
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np

SCALERS = ("standard", "minmax", "none")
MISSING = frozenset({"", "na", "nan", "null", "none"})  # compared stripped and lowercased
DEFAULT_ENDS = (0.7, 0.8, 1.0)  # train_end, valid_end, test_end as fractions of the rows

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_TIME = re.compile(
    r"(\d{4})([-/])(\d{1,2})\2(\d{1,2})"  # date: YYYY-MM-DD or YYYY/MM/DD
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"  # optional time: HH:MM[:SS[.fff]]
    r" ?(Z|[+-]\d{2}(?::?\d{2})?)?)?",  # optional zone after the time
    re.IGNORECASE,
)
_TIME_FORMS = "YYYY-MM-DD[ HH:MM[:SS]] (ISO 8601, 'T' or a space) or YYYY/MM/DD[ HH:MM[:SS]]"
_INT = re.compile(r"[+-]?\d+")


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


def calendar_features(
    times: np.ndarray, names: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """((N, K) float32, names): sin/cos pairs of the hour of day, day of week and day of year.

    Known in advance for any future time. Hour of day is fractional (minutes count; period 24),
    day of week counts from Monday (period 7), day of year from 1 January (period 365.25).
    With `names` None a pair is included only when its quantity varies over `times` (daily
    data has no hour pair); given `names` (those chosen on the training rows), exactly those.
    """
    seconds = np.asarray(times).astype("datetime64[s]").astype(np.int64)
    days = np.floor_divide(seconds, 86400)
    year_start = days.astype("datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]")
    quantities = (
        ("hour", (seconds - days * 86400) / 3600.0, 24.0),
        ("dayofweek", (days + 3) % 7, 7.0),  # 1970-01-01 was a Thursday (3, Monday is 0)
        ("dayofyear", days - year_start.astype(np.int64), 365.25),
    )
    known = [f"{q[0]}_{part}" for q in quantities for part in ("sin", "cos")]
    if names is not None and not set(names) <= set(known):
        raise ValueError(f"calendar features must be among {known}, got {list(names)}")
    columns, chosen = [], []
    for name, value, period in quantities:
        if names is None:
            wanted = value.size and np.any(value != value[0])
        else:
            wanted = f"{name}_sin" in names
        if wanted:
            angle = 2 * np.pi * np.asarray(value, dtype=np.float64) / period
            columns += [np.sin(angle), np.cos(angle)]
            chosen += [f"{name}_sin", f"{name}_cos"]
    if not columns:
        return np.empty((len(seconds), 0), dtype=np.float32), chosen
    return np.stack(columns, axis=1).astype(np.float32), chosen


def split_points(
    times: np.ndarray, train_end=None, valid_end=None, test_end=None
) -> tuple[int, int, int]:
    """(train_end, valid_end, test_end): the exclusive row ends of a chronological split.

    Each end is None (the default fraction 0.7, 0.8 or 1.0 of the rows), an int row count, a
    float fraction in (0, 1] (rounded to rows), a timestamp (the first row at or after it), or
    any of those as a string from a command line ("8640", "0.7", "2017-07-01"). The ends must
    satisfy 0 < train_end < valid_end < test_end <= N.
    """
    times = np.asarray(times).astype("datetime64[s]")
    specs = (("train_end", train_end), ("valid_end", valid_end), ("test_end", test_end))
    ends = [
        _resolve_end(name, DEFAULT_ENDS[i] if spec is None else spec, times)
        for i, (name, spec) in enumerate(specs)
    ]
    n = len(times)
    train, valid, test = ends
    if not 0 < train < valid < test <= n:
        raise ValueError(
            f"split ends train_end={train}, valid_end={valid}, test_end={test} of {n} rows; "
            f"they must satisfy 0 < train_end < valid_end < test_end <= {n}, so that each "
            "split has rows: move them apart"
        )
    return train, valid, test


class Scaler:
    """Per-column scaling fitted on the training rows only: standard (x - mean) / std, minmax
    (x - min) / (max - min), none."""

    def __init__(self, kind: str = "standard"):
        if kind not in SCALERS:
            raise ValueError(f"unknown scaler {kind!r}; give one of {', '.join(SCALERS)}")
        self.kind = kind
        self.shift: np.ndarray | None = None  # (C,) float64, subtracted
        self.scale: np.ndarray | None = None  # (C,) float64, divided by; never 0

    def __repr__(self) -> str:
        columns = "unfitted" if self.shift is None else f"{len(self.shift)} columns"
        return f"Scaler({self.kind!r}, {columns})"

    def fit(self, x: np.ndarray) -> Scaler:
        """Fit on x (N, C), N >= 1: the population std (ddof=0); a constant column gets scale 1."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"fit needs x of shape (N, C) with N >= 1 rows, got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("fit got NaN or infinite values; fill or drop them first")
        if self.kind == "standard":
            shift, scale = x.mean(axis=0), x.std(axis=0)
        elif self.kind == "minmax":
            shift, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
        else:
            shift, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        constant = np.ptp(x, axis=0) == 0
        self.shift, self.scale = shift, np.where(constant, 1.0, scale)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(x - shift) / scale for x of any shape (..., C); float32 stays float32."""
        x, dtype = self._check(x, "transform")
        return ((x - self.shift) / self.scale).astype(dtype, copy=False)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """x * scale + shift for x of any shape (..., C): scaled values back to the data's units."""
        x, dtype = self._check(x, "inverse")
        return (x * self.scale + self.shift).astype(dtype, copy=False)

    def to_dict(self) -> dict:
        """{"kind", "shift", "scale"} with lists of floats: JSON-able."""
        if self.shift is None:
            raise ValueError("the scaler is not fitted; call fit(x) on the training rows first")
        return {"kind": self.kind, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        if not isinstance(d, dict) or not {"kind", "shift", "scale"} <= set(d):
            raise ValueError("a scaler dict needs the keys 'kind', 'shift' and 'scale'")
        scaler = cls(d["kind"])
        shift = np.asarray(d["shift"], dtype=np.float64)
        scale = np.asarray(d["scale"], dtype=np.float64)
        if shift.ndim != 1 or shift.shape != scale.shape:
            raise ValueError(
                f"a scaler dict needs 'shift' and 'scale' lists of one length, got "
                f"{shift.shape} and {scale.shape}"
            )
        if not (np.isfinite(shift).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("a scaler dict needs finite shifts and positive finite scales")
        scaler.shift, scaler.scale = shift, scale
        return scaler

    def _check(self, x: np.ndarray, what: str) -> tuple[np.ndarray, np.dtype]:
        if self.shift is None:
            raise ValueError(f"{what} before fit; call fit(x) on the training rows first")
        x = np.asarray(x)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
        if x.ndim == 0 or x.shape[-1] != len(self.shift):
            raise ValueError(
                f"{what} needs x of shape (..., {len(self.shift)}) like the fitted data, "
                f"got {x.shape}"
            )
        return x.astype(np.float64, copy=False), dtype


def window_starts(start: int, end: int, lookback: int, horizon: int, stride: int = 1) -> np.ndarray:
    """(W,) int64: every t, a stride apart, whose targets [t, t + horizon) lie in [start, end)
    and whose inputs [t - lookback, t) start at row 0 or later; the first is max(start, lookback).
    """
    for name, value, least in (
        ("start", start, 0),
        ("end", end, 0),
        ("lookback", lookback, 1),
        ("horizon", horizon, 1),
        ("stride", stride, 1),
    ):
        _check_int(name, value, least)
    if end < start:
        raise ValueError(f"rows [{start}, {end}) end before they start; give start <= end")
    first = max(start, lookback)
    if first + horizon > end:
        raise ValueError(
            f"rows [{start}, {end}) hold no window of lookback {lookback} + horizon {horizon} "
            f"(need at least {first + horizon - start} rows from row {start}, there are "
            f"{end - start}); shorten the lookback or horizon, or give the split more rows"
        )
    return np.arange(first, end - horizon + 1, stride, dtype=np.int64)


def windows(
    x: np.ndarray, starts: np.ndarray, lookback: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """(past (W, L, C), future (W, H, C)): rows [t - L, t) and [t, t + H) of x (N, C) per t."""
    x = np.asarray(x)
    starts = np.asarray(starts)
    _check_int("lookback", lookback, 1)
    _check_int("horizon", horizon, 1)
    if x.ndim != 2:
        raise ValueError(f"windows needs x of shape (N, C), got {x.shape}")
    if starts.ndim != 1 or not np.issubdtype(starts.dtype, np.integer):
        raise ValueError(
            f"starts must be a 1-D array of row indices (from window_starts), got "
            f"{starts.dtype} of shape {starts.shape}"
        )
    if starts.size and (starts.min() < lookback or starts.max() + horizon > len(x)):
        raise ValueError(
            f"starts {starts.min()}..{starts.max()} reach outside the {len(x)} rows of x with "
            f"lookback {lookback} and horizon {horizon}; take them from window_starts"
        )
    past = x[starts[:, None] + np.arange(-lookback, 0)]
    future = x[starts[:, None] + np.arange(horizon)]
    return past, future


# ---- reading --------------------------------------------------------------------------------


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
        text = raw.decode(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}; try 'utf-8' or 'latin-1'") from None
    except UnicodeDecodeError as exc:
        if b"\0" in raw:
            raise ValueError(f"{path} looks binary (it holds NUL bytes); give a CSV file") from None
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{path}, line {line}: byte 0x{raw[exc.start]:02x} (offset {exc.start}) is not valid "
            f"{encoding}; pass the file's encoding, e.g. encoding='latin-1' (--encoding latin-1)"
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
        value, zoned = _parse_time(row[time_i], where, time_column)
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


def _parse_time(text: str, where: str, column: str) -> tuple[int, bool]:
    """(seconds since 1970-01-01, whether a zone was given); a zoned time is taken to UTC."""
    value = text.strip()
    if not value:
        raise ValueError(f"{where}: no time in column {column!r}; give every row a time")
    match = _TIME.fullmatch(value)
    if match is None:
        raise ValueError(f"{where}: cannot read the time {value!r}; write it as {_TIME_FORMS}")
    year, _, month, day, hour, minute, second, fraction, zone = match.groups()
    if fraction and int(fraction):
        raise ValueError(
            f"{where}: the time {value!r} has a fraction of a second; round times to seconds"
        )
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
        clock = datetime(2000, 1, 1, int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError as exc:
        raise ValueError(f"{where}: the time {value!r} is not a real time ({exc})") from None
    seconds = days * 86400 + clock.hour * 3600 + clock.minute * 60 + clock.second
    return seconds - _zone_offset(zone), zone is not None


def _zone_offset(zone: str | None) -> int:
    """Seconds east of UTC of "Z", "+02", "+0200" or "-05:30"; 0 for none."""
    if zone is None or zone.upper() == "Z":
        return 0
    digits = zone[1:].replace(":", "")
    offset = int(digits[:2]) * 3600 + int(digits[2:] or 0) * 60
    return -offset if zone[0] == "-" else offset


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
        "fill=True (--fill) to interpolate them in time"
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


def _check_int(name: str, value, least: int) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be >= {least}, got {value}")


# ---- split ----------------------------------------------------------------------------------


def _resolve_end(name: str, spec, times: np.ndarray) -> int:
    """One split end as a row count: see split_points."""
    n = len(times)
    if isinstance(spec, str):
        spec = _parse_spec(name, spec)
    if isinstance(spec, (bool, np.bool_)):
        raise ValueError(f"{name} must be rows, a fraction or a time, got {spec!r}")
    if isinstance(spec, (int, np.integer)):
        if not 0 < spec <= n:
            raise ValueError(
                f"{name}={spec} rows is outside 1..{n}; give a row count within the series"
            )
        return int(spec)
    if isinstance(spec, (float, np.floating)):
        if not 0 < spec <= 1:
            raise ValueError(
                f"{name}={spec} is not a fraction in (0, 1]; give e.g. 0.7, or rows as an int"
            )
        return int(round(spec * n))
    if isinstance(spec, (np.datetime64, date)):
        return int(np.searchsorted(times, np.datetime64(spec, "s"), side="left"))
    raise ValueError(f"{name} must be rows (int), a fraction (float) or a time (str), got {spec!r}")


def _parse_spec(name: str, text: str) -> int | float | np.datetime64:
    """A command-line split end: "8640" rows, "0.7" a fraction, otherwise a time."""
    value = text.strip()
    if _INT.fullmatch(value):
        return int(value)
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
    try:
        seconds, _ = _parse_time(value, name, name)
    except ValueError:
        raise ValueError(
            f"{name}={text!r} is not rows, a fraction or a time; give e.g. 8640, 0.7 or "
            f"2017-07-01 (times as {_TIME_FORMS})"
        ) from None
    return np.datetime64(seconds, "s")
