"""Gaps in a series' time index: times missing from a series sampled at a regular step (a
100-hour hole in hourly data). A window across a gap joins values that are not neighbours in
time, so a gap is refused unless the user chooses (`--gaps`): "fill" puts the missing times
back, their values interpolated linearly in time; "keep" trains on the rows as they are.

    N: rows, M: rows after filling

The regular step is the median step between rows; a step longer than GAP_RATIO times it is a
gap. Calendar months (28-31 days) and years stay regular; a business-day series (weekends
missing) has gaps by this rule and wants --gaps keep.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

GAPS = ("refuse", "fill", "keep")
GAP_RATIO = 1.5  # a step longer than this many regular steps leaves at least one time out


def regular_step(seconds: np.ndarray) -> int:
    """The median step between the times (N,) in seconds; 0 for fewer than 2 times."""
    if len(seconds) < 2:
        return 0
    return int(np.median(np.diff(seconds)))


def find_gaps(seconds: np.ndarray) -> np.ndarray:
    """The indices i whose step to row i + 1 is a gap (longer than GAP_RATIO regular steps)."""
    step = regular_step(seconds)
    if step <= 0:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(np.diff(seconds) > GAP_RATIO * step)


def handle_gaps(
    path, lines: np.ndarray, seconds: np.ndarray, values: dict[str, np.ndarray], gaps: str
) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """(times (M,), values, times filled) of a series by the choice `gaps` (one of GAPS):
    "refuse" raises ValueError naming the first gap and --gaps, "fill" inserts the missing
    times, "keep" changes nothing."""
    if gaps not in GAPS:
        raise ValueError(f"gaps must be one of {', '.join(GAPS)}, got {gaps!r}")
    found = find_gaps(seconds)
    if not found.size or gaps == "keep":
        return seconds, values, 0
    step = regular_step(seconds)
    if gaps == "refuse":
        raise ValueError(_message(path, lines, seconds, found, step))
    times = _filled_times(seconds, found, step)
    at, old = times.astype(np.float64), seconds.astype(np.float64)
    filled = {name: np.interp(at, old, column) for name, column in values.items()}
    added = len(times) - len(seconds)
    logger.warning(
        "%s: %d missing times filled in %d gap(s), their values interpolated linearly in time "
        "(--gaps fill)",
        path,
        added,
        found.size,
    )
    return times, filled, added


def _filled_times(seconds: np.ndarray, found: np.ndarray, step: int) -> np.ndarray:
    """The times with each gap cut into steps as near the regular one as whole steps allow."""
    pieces, start = [], 0
    for i in found:
        pieces.append(seconds[start : i + 1])
        span = int(seconds[i + 1] - seconds[i])
        n = max(1, round(span / step))  # steps across the gap
        pieces.append(seconds[i] + (np.arange(1, n, dtype=np.int64) * span) // n)
        start = i + 1
    pieces.append(seconds[start:])
    return np.concatenate(pieces)


def _message(path, lines, seconds, found, step) -> str:
    i = int(found[0])
    span = int(seconds[i + 1] - seconds[i])
    missing = max(1, round(span / step)) - 1
    more = f" ({found.size} gaps in all)" if found.size > 1 else ""
    return (
        f"{path}: the times jump from {_time(seconds[i])} (line {lines[i]}) to "
        f"{_time(seconds[i + 1])} (line {lines[i + 1]}), about {missing} missing "
        f"step{'s' if missing != 1 else ''} of {_duration(step)}{more}; pass --gaps fill to "
        "interpolate the missing times, or --gaps keep to use the rows as they are"
    )


def _time(s) -> str:
    return str(np.datetime64(int(s), "s")).replace("T", " ")


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}" if n != 1 else f"1 {unit}"
    return f"{seconds} s"
