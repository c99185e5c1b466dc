"""The packages of the optional `speech` extra (soundfile, librosa, soxr), imported on first
use so that the rest of rnnkit works without them; a missing one is one clear error."""

from __future__ import annotations

import importlib
from types import ModuleType


def need(name: str) -> ModuleType:
    """The module `name`, or OSError saying how to install the extra (the CLI prints it as one
    `error:` line)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise OSError(
            f"speech needs the {name} package ({exc}); "
            "install the extra: pip install 'rnnkit[speech]'"
        ) from None
