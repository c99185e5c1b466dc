"""The chronological split of a series: the row ends of its training, validation and test
parts, each given as rows, a fraction of the rows or a time.

    N: rows (time steps)
"""

from __future__ import annotations

import math
import re
from datetime import date

import numpy as np

from rnnkit.forecast.times import TIME_FORMS, parse_time
from rnnkit.train.options import spelled

DEFAULT_ENDS = (0.7, 0.8, 1.0)  # train_end, valid_end, test_end as fractions of the rows

_INT = re.compile(r"[+-]?\d+")


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
                f"{_given(name, spec)} rows is outside 1..{n}; give a row count within the series"
            )
        return int(spec)
    if isinstance(spec, (float, np.floating)):
        if not 0 < spec <= 1:
            raise ValueError(
                f"{_given(name, spec)} is not a fraction in (0, 1]; give e.g. 0.7, or rows (an int)"
            )
        return int(round(spec * n))
    if isinstance(spec, (np.datetime64, date)):
        return int(np.searchsorted(times, np.datetime64(spec, "s"), side="left"))
    raise ValueError(f"{name} must be rows (int), a fraction (float) or a time (str), got {spec!r}")


def _given(name: str, value) -> str:
    """`name=value` as the message names it: --train-end VALUE on the command line."""
    return spelled(f"{name}={value}", f"--{name.replace('_', '-')} {value}")


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
        seconds, _ = parse_time(value, name, name)
    except ValueError:
        raise ValueError(
            f"{_given(name, repr(text))} is not rows, a fraction or a time; give e.g. 8640, 0.7 or "
            f"2017-07-01 (times as {TIME_FORMS})"
        ) from None
    return np.datetime64(seconds, "s")
