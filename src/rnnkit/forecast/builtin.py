"""The built-in series a forecast runs on when given no data: Seattle's daily weather
2012-2015 (`seattle-weather.csv` of the vega_datasets package, an optional extra), read from
the installed package's files without importing it (its import needs pandas)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BUILTIN = {
    "name": "the built-in series (Seattle's daily maximum temperature 2012-2015, vega_datasets)",
    "time_column": "date",
    "target": ("temp_max",),
}
FILE = ("_data", "seattle-weather.csv")


def builtin_path() -> Path:
    """The CSV's path inside the installed vega_datasets, or an error saying how to get it."""
    spec = importlib.util.find_spec("vega_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "the built-in series comes with the vega_datasets package: "
            "pip install 'rnnkit[forecast]' (or give --data FILE.csv)"
        )
    path = Path(next(iter(spec.submodule_search_locations)), *FILE)
    if not path.exists():
        raise ValueError(f"{path} is missing from the installed vega_datasets; reinstall it")
    return path
