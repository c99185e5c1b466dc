"""checkpoint.json: the names of a checkpoint's files, and the metadata checked entry by entry
before anything in it is used (a damaged or hostile file is one ValueError naming it)."""

from __future__ import annotations

import json
from pathlib import Path

FORMAT = "rnnkit-checkpoint"
VERSION = 1
MODEL_FILE, OPTIMIZER_FILE, EXTRA_FILE = (
    "model.safetensors",
    "optimizer.safetensors",
    "extra.safetensors",
)
META_FILE = "checkpoint.json"
MAX_META_BYTES = 1 << 30  # checkpoint.json: config, vocabulary, metrics, RNG and optimizer rest


def read_meta(file: Path) -> dict:
    """The metadata in `file` (checkpoint.json), checked entry by entry: ValueError naming the
    file and what is wrong with it. Nothing in it is used before it passes."""
    try:
        if file.stat().st_size > MAX_META_BYTES:
            raise ValueError(
                f"{file} is {file.stat().st_size:,} bytes, more than any checkpoint's metadata "
                f"({MAX_META_BYTES:,} at most)"
            )
        meta = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{file.parent} is not a readable rnnkit checkpoint: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{file} is corrupt: it is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(
            f"{file.parent} is not an rnnkit checkpoint ({file} has no format {FORMAT!r})"
        )
    version = meta.get("version")
    if not is_int(version) or not 1 <= version <= VERSION:
        raise ValueError(
            f"{file} has checkpoint format version {version!r}; "
            f"this rnnkit reads {'version 1' if VERSION == 1 else f'versions 1 to {VERSION}'}"
        )
    for key, kind, what in _META_ENTRIES:
        if key not in meta:
            raise ValueError(f"{file} is damaged: it has no {key!r} ({what})")
        if kind is not None and not isinstance(meta[key], kind):
            raise ValueError(
                f"{file} is damaged: {key!r} ({what}) is a {type(meta[key]).__name__}, "
                f"not a {kind.__name__ if isinstance(kind, type) else kind[0].__name__}"
            )
    if not is_int(meta["step"]) or meta["step"] < 0:
        raise ValueError(f"{file} is damaged: 'step' must be an int >= 0, got {meta['step']!r}")
    check_files(meta["files"], file)
    keys = meta.get("model_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{file} is damaged: 'model_keys' is not a list of names")
    return meta


# The entries of checkpoint.json: (key, JSON type or None for any value, what it is).
_META_ENTRIES = (
    ("files", dict, "the size and SHA-256 of each tensor file"),
    ("step", None, "the step it was saved at"),
    ("config", dict, "what rebuilds the model"),
    ("vocab", None, "what reads and writes the model's data"),
    ("metrics", dict, "the last metrics"),
    ("rng", list, "the random generators' states"),
    ("optimizer", (dict, type(None)), "the optimizer's state"),
    ("extra_state", None, "the trainer's state"),
)


def check_files(files: dict, file: Path) -> None:
    """Each entry names one of the tensor files with its size and SHA-256."""
    if MODEL_FILE not in files:
        raise ValueError(f"{file} is damaged: its 'files' do not list {MODEL_FILE}")
    for name, info in files.items():
        if name not in (MODEL_FILE, OPTIMIZER_FILE, EXTRA_FILE):
            raise ValueError(f"{file} is damaged: 'files' lists {name!r}, not a checkpoint file")
        ok = (
            isinstance(info, dict)
            and is_int(info.get("bytes"))
            and info["bytes"] >= 0
            and isinstance(info.get("sha256"), str)
            and len(info["sha256"]) == 64
        )
        if not ok:
            raise ValueError(
                f"{file} is damaged: 'files' has no size and SHA-256 for {name}, got {info!r:.80}"
            )


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
