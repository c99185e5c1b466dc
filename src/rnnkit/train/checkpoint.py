"""Save and load one self-contained checkpoint directory: tensors as safetensors, the rest as JSON.

    DIR/model.safetensors      the model's state_dict
    DIR/optimizer.safetensors  the optimizer's tensors (only with an optimizer)
    DIR/extra.safetensors      the tensors inside `extra_state` (only when it holds any)
    DIR/checkpoint.json        format and version, config, vocab, step, metrics, RNG states, the
                               non-tensor rest of the optimizer and extra state, each file's size
                               and SHA-256

Loading never unpickles: tensors come from safetensors, everything else from JSON, where a tensor
is the placeholder {"__tensor__": KEY} and tuples and dicts with non-string keys are spelled out
({"__tuple__": [...]}, {"__items__": [[key, value], ...]}) so they come back as they went in.

A save is atomic. It writes a temporary sibling directory (same file system), fsyncs it, renames
an existing DIR to the backup `.DIR.old`, renames the new one to DIR and only then deletes the
backup. A crash at any point leaves DIR or its backup whole, and `load` falls back to the backup
when DIR is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import Tensor, nn

from rnnkit.train.seeding import rng_state

logger = logging.getLogger(__name__)

FORMAT = "rnnkit-checkpoint"
VERSION = 1
MODEL_FILE, OPTIMIZER_FILE, EXTRA_FILE = (
    "model.safetensors",
    "optimizer.safetensors",
    "extra.safetensors",
)
META_FILE = "checkpoint.json"
MAX_META_BYTES = 1 << 30  # checkpoint.json: config, vocabulary, metrics, RNG and optimizer rest
TENSOR, TUPLE, ITEMS = "__tensor__", "__tuple__", "__items__"


@dataclass
class Checkpoint:
    """Everything one checkpoint directory holds, as `load` returns it."""

    path: Path  # the directory read (the backup when DIR itself was missing)
    step: int
    model_state: dict[str, Tensor]  # for model.load_state_dict
    optimizer_state: dict | None  # for optimizer.load_state_dict; None when saved without one
    config: dict
    vocab: Any  # whatever JSON value was saved (a list of symbols, a dict...) or None
    metrics: dict
    extra_state: Any  # as saved: nested dicts, lists, numbers, strings and tensors
    rng_states: list[dict] = field(default_factory=list)  # one per process (seeding.rng_state())
    version: int = VERSION


def backup_path(path: str | os.PathLike) -> Path:
    """Where `save` parks the previous checkpoint while it renames the new one into place."""
    path = Path(path)
    return path.parent / f".{path.name}.old"


def exists(path: str | os.PathLike) -> bool:
    """Whether `path`, or the backup a crashed save left of it, holds a checkpoint's metadata."""
    return any((p / META_FILE).is_file() for p in (Path(path), backup_path(path)))


def save(
    path: str | os.PathLike,
    model: nn.Module | Mapping[str, Tensor],
    optimizer: torch.optim.Optimizer | None = None,
    *,
    config: dict,
    vocab: Any = None,
    step: int,
    metrics: dict,
    extra_state: Any = None,
    rng_states: list[dict] | None = None,
) -> Path:
    """Write a checkpoint directory at `path` atomically, replacing any checkpoint there.

    `model` is a module (a DistributedDataParallel wrapper is unwrapped) or a state_dict.
    `config`, `vocab` and `metrics` must be JSON values; `extra_state` may also hold tensors.
    `rng_states` defaults to this process's generators, `[seeding.rng_state()]`.
    Refuses (ValueError) to replace a directory that is not a checkpoint.
    """
    path = Path(path)
    _check_destination(path, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    state = _model_state(model)
    files = {MODEL_FILE: save_tensors(_cpu_tensors(dict(state), "model"))}
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "step": step,
        "config": config,
        "vocab": vocab,
        "metrics": metrics,
        "rng": rng_states if rng_states is not None else [rng_state()],
        "model_keys": list(state),  # safetensors sorts its keys; this is the state_dict's order
        "optimizer": _encode_state(
            optimizer.state_dict() if optimizer else None, "optimizer", OPTIMIZER_FILE, files
        ),
        "extra_state": _encode_state(extra_state, "extra_state", EXTRA_FILE, files),
    }
    meta["files"] = {
        n: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()} for n, b in files.items()
    }
    try:
        text = json.dumps(meta, indent=1)
    except TypeError as exc:  # a non-JSON value in config, vocab, metrics or an RNG state
        raise TypeError(f"cannot save checkpoint {path}: {exc}") from exc
    _write_atomically(path, files, text.encode())
    return path


def _check_destination(path: Path, step) -> None:
    """Refuse a `path` that holds something other than a checkpoint, and a bad step."""
    if path.exists() and not (path / META_FILE).is_file():
        if not path.is_dir() or any(path.iterdir()):
            raise ValueError(f"refusing to replace {path}: it exists and is not a checkpoint")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")


def _model_state(model: nn.Module | Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    """The state_dict of a module (of the module inside a DistributedDataParallel wrapper)."""
    if isinstance(model, nn.Module):
        model = getattr(model, "module", model) if _is_ddp(model) else model
        return model.state_dict()
    return model


def _encode_state(obj: Any, key: str, name: str, files: dict[str, bytes]):
    """`obj` as JSON with its tensors as placeholders; the tensors, when there are any, go to
    files[name] as safetensors. None stays None."""
    if obj is None:
        return None
    tensors = {}
    encoded = _encode(obj, tensors, key)
    if tensors:
        files[name] = save_tensors(_cpu_tensors(tensors, key))
    return encoded


def _write_atomically(path: Path, files: dict[str, bytes], meta: bytes) -> None:
    """Write the files and then the metadata into a temporary sibling, fsync it and swap it in
    for `path` (see the module docstring)."""
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()  # not tempfile.mkdtemp: that makes it private (0700), and it becomes DIR
    try:
        for name, data in files.items():
            _write(tmp / name, data)
        _write(tmp / META_FILE, meta)  # last: a directory with it is complete
        _fsync_dir(tmp)
        _swap_into_place(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful swap


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read the checkpoint directory at `path`, putting its tensors on `map_location`.

    Raises ValueError naming the path when it is not a checkpoint or a file is corrupt.
    """
    path = Path(path)
    source = path
    if not (path / META_FILE).is_file():
        backup = backup_path(path)
        if not (backup / META_FILE).is_file():
            raise ValueError(f"{path} is not an rnnkit checkpoint (no {META_FILE})")
        logger.warning(
            "%s is missing; loading the backup %s left by an interrupted save", path, backup
        )
        source = backup
    meta = _read_meta(source / META_FILE)
    device = str(torch.device(map_location))
    tensors = {
        name: _read_tensors(source, name, info, device) for name, info in meta["files"].items()
    }
    try:
        optimizer_state = _decode(meta["optimizer"], tensors.get(OPTIMIZER_FILE, {}))
        extra_state = _decode(meta["extra_state"], tensors.get(EXTRA_FILE, {}))
    except KeyError as exc:
        raise ValueError(f"{source} is corrupt: tensor {exc} is missing") from exc
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{source / META_FILE} is damaged: a malformed state ({exc})") from None
    model_state = tensors[MODEL_FILE]
    if sorted(meta.get("model_keys", [])) == sorted(model_state):
        model_state = {k: model_state[k] for k in meta["model_keys"]}
    return Checkpoint(
        path=source,
        step=meta["step"],
        model_state=model_state,
        optimizer_state=optimizer_state,
        config=meta["config"],
        vocab=meta["vocab"],
        metrics=meta["metrics"],
        extra_state=extra_state,
        rng_states=meta["rng"],
        version=meta["version"],
    )


def _read_meta(file: Path) -> dict:
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
    if not _is_int(version) or not 1 <= version <= VERSION:
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
    if not _is_int(meta["step"]) or meta["step"] < 0:
        raise ValueError(f"{file} is damaged: 'step' must be an int >= 0, got {meta['step']!r}")
    _check_files(meta["files"], file)
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


def _check_files(files: dict, file: Path) -> None:
    """Each entry names one of the tensor files with its size and SHA-256."""
    if MODEL_FILE not in files:
        raise ValueError(f"{file} is damaged: its 'files' do not list {MODEL_FILE}")
    for name, info in files.items():
        if name not in (MODEL_FILE, OPTIMIZER_FILE, EXTRA_FILE):
            raise ValueError(f"{file} is damaged: 'files' lists {name!r}, not a checkpoint file")
        ok = (
            isinstance(info, dict)
            and _is_int(info.get("bytes"))
            and info["bytes"] >= 0
            and isinstance(info.get("sha256"), str)
            and len(info["sha256"]) == 64
        )
        if not ok:
            raise ValueError(
                f"{file} is damaged: 'files' has no size and SHA-256 for {name}, got {info!r:.80}"
            )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_tensors(source: Path, name: str, info: dict, device: str) -> dict[str, Tensor]:
    file = source / name
    try:
        size = file.stat().st_size  # first: a file of another size is not read at all
        data = file.read_bytes() if size == info["bytes"] else b""
    except OSError as exc:
        raise ValueError(f"{source} is corrupt: cannot read {name}: {exc}") from None
    if size != info["bytes"]:
        raise ValueError(
            f"{file} is corrupt (truncated or edited): it has {size} bytes, not the "
            f"{info['bytes']} bytes recorded in {META_FILE}"
        )
    if len(data) != size or hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise ValueError(
            f"{file} is corrupt (edited): its {size} bytes have a different SHA-256 than the "
            f"one recorded in {META_FILE}"
        )
    try:
        tensors = load_tensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{file} is corrupt: {exc}") from None
    return {k: v.to(device) for k, v in tensors.items()}


def _is_ddp(model: nn.Module) -> bool:
    return isinstance(model, torch.nn.parallel.DistributedDataParallel)


def _cpu_tensors(tensors: dict[str, Any], what: str) -> dict[str, Tensor]:
    """Detached contiguous CPU tensors, each owning its memory (safetensors refuses sharing)."""
    out, seen = {}, set()
    for key, t in tensors.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"{what} entry {key!r} is a {type(t).__name__}, not a tensor")
        t = t.detach().cpu()
        storage = t.untyped_storage()
        whole = t.is_contiguous() and storage.nbytes() == t.numel() * t.element_size()
        if t.numel() and (not whole or storage.data_ptr() in seen):  # tied weights, views
            t = t.clone(memory_format=torch.contiguous_format)
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def _encode(obj: Any, tensors: dict[str, Tensor], key: str) -> Any:
    """A JSON value standing for `obj`; its tensors go into `tensors` under dotted keys."""
    if isinstance(obj, Tensor):
        if key in tensors:
            raise ValueError(f"two entries of the state map to the tensor key {key!r}")
        tensors[key] = obj
        return {TENSOR: key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {TUPLE: [_encode(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and k not in (TENSOR, TUPLE, ITEMS) for k in obj):
            return {k: _encode(v, tensors, f"{key}.{k}") for k, v in obj.items()}
        return {
            ITEMS: [
                [_encode(k, {}, key), _encode(v, tensors, f"{key}.{k}")] for k, v in obj.items()
            ]
        }
    raise TypeError(
        f"cannot store a {type(obj).__name__} at {key!r} in a checkpoint: "
        "use tensors, numbers, strings, None, lists, tuples and dicts"
    )


def _decode(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if TENSOR in obj:
        return tensors[obj[TENSOR]]
    if TUPLE in obj:
        return tuple(_decode(v, tensors) for v in obj[TUPLE])
    if ITEMS in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj[ITEMS]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _write(file: Path, data: bytes) -> None:
    with open(file, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in `directory` durable (POSIX; elsewhere a no-op)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_into_place(new: Path, path: Path) -> None:
    """Rename `new` to `path`, keeping the old checkpoint as a backup until the new one is there."""
    backup = backup_path(path)
    if path.exists():
        if backup.exists():  # stale: `path` is whole, so the save that left it got past its swap
            shutil.rmtree(backup)
        os.rename(path, backup)
    # With `path` missing, an existing backup is the last good checkpoint: keep it until now.
    try:
        os.rename(new, path)
    except BaseException:
        if not path.exists() and backup.exists():
            os.rename(backup, path)  # put the old checkpoint back where it was
        raise
    _fsync_dir(path.parent)
    shutil.rmtree(backup, ignore_errors=True)


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary directories that saves killed before their rename left next to `path`."""
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
