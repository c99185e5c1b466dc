"""The command-line value types of forecast's options (ForecastData, ForecasterConfig): each
rejects a bad value as one error line, like those of rnnkit.train.options."""

from __future__ import annotations

import argparse

ENDS_HELP = "a row count (8640), a fraction of the rows (0.7) or a timestamp (2017-07-01)"


def columns(text: str) -> list[str]:
    """Column names separated by commas: 'OT' or 'HUFL,HULL'."""
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected column names separated by commas, got {text!r}")
    return names


def quantiles(text: str) -> list[float]:
    """Increasing probabilities in (0, 1) separated by commas: '0.1,0.5,0.9'."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0 < v < 1 for v in values) or values != sorted(set(values)):
        raise argparse.ArgumentTypeError(
            f"expected increasing probabilities in (0, 1) separated by commas, e.g. "
            f"0.1,0.5,0.9; got {text!r}"
        )
    return values
