"""Timestamps of a series: reading one written as text (a zone is taken to UTC) and the
calendar features of a time, known in advance for any future time.

    N: times, K: calendar features
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime

import numpy as np

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_TIME = re.compile(
    r"(\d{4})([-/])(\d{1,2})\2(\d{1,2})"  # date: YYYY-MM-DD or YYYY/MM/DD
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"  # optional time: HH:MM[:SS[.fff]]
    r" ?(Z|[+-]\d{2}(?::?\d{2})?)?)?",  # optional zone after the time
    re.IGNORECASE,
)
TIME_FORMS = "YYYY-MM-DD[ HH:MM[:SS]] (ISO 8601, 'T' or a space) or YYYY/MM/DD[ HH:MM[:SS]]"


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


def parse_time(text: str, where: str, column: str) -> tuple[int, bool]:
    """(seconds since 1970-01-01, whether a zone was given); a zoned time is taken to UTC."""
    value = text.strip()
    if not value:
        raise ValueError(f"{where}: no time in column {column!r}; give every row a time")
    match = _TIME.fullmatch(value)
    if match is None:
        raise ValueError(f"{where}: cannot read the time {value!r}; write it as {TIME_FORMS}")
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
