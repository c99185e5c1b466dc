"""Damaged checkpoints for the fault tests: each `DAMAGES` entry edits a good checkpoint
directory in place the way a crash, a bad copy or a hostile hand would, and says what the
`error:` line must name."""

from __future__ import annotations

import json
from pathlib import Path

META, MODEL = "checkpoint.json", "model.safetensors"


def _edit_meta(change):
    def damage(ckpt: Path) -> None:
        meta = json.loads((ckpt / META).read_text())
        change(meta)
        (ckpt / META).write_text(json.dumps(meta))

    return damage


def _set(path: tuple, value):
    def change(meta: dict) -> None:
        *parents, last = path
        for key in parents:
            meta = meta[key]
        meta[last] = value

    return _edit_meta(change)


def _drop(key: str):
    return _edit_meta(lambda meta: meta.pop(key))


def _truncate(ckpt: Path) -> None:
    data = (ckpt / MODEL).read_bytes()
    (ckpt / MODEL).write_bytes(data[: len(data) // 2])


def _flip_byte(ckpt: Path) -> None:
    data = bytearray((ckpt / MODEL).read_bytes())
    data[-1] ^= 0xFF
    (ckpt / MODEL).write_bytes(bytes(data))


def _write(text: str):
    def damage(ckpt: Path) -> None:
        (ckpt / META).write_text(text)

    return damage


def _reshape_weights(ckpt: Path) -> None:
    """model.safetensors replaced by one of other shapes, its size and SHA-256 recorded, so
    only the comparison with the config can catch it."""
    import hashlib

    from safetensors.torch import load, save

    tensors = load((ckpt / MODEL).read_bytes())
    name = next(k for k, v in tensors.items() if v.dim() == 2)
    tensors[name] = tensors[name][:, :-1].contiguous()
    data = save(tensors)
    (ckpt / MODEL).write_bytes(data)
    meta = json.loads((ckpt / META).read_text())
    meta["files"][MODEL] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (ckpt / META).write_text(json.dumps(meta))


# name -> (damage, what the error line must contain)
DAMAGES = {
    "truncated_weights": (_truncate, MODEL),
    "edited_weights": (_flip_byte, MODEL),
    "weights_of_other_shapes": (_reshape_weights, "does not fit"),
    "meta_not_json": (_write("{this is not json"), META),
    "meta_empty": (_write(""), META),
    "meta_a_list": (_write("[1, 2]"), "not an rnnkit checkpoint"),
    "meta_deeply_nested": (_write("[" * 100_000 + "]" * 100_000), META),
    "no_files": (_drop("files"), "'files'"),
    "no_step": (_drop("step"), "'step'"),
    "no_vocab": (_drop("vocab"), "'vocab'"),
    "step_negative": (_set(("step",), -3), "'step'"),
    "files_outside": (
        _set(("files",), {"../../etc/passwd": {"bytes": 1, "sha256": "0" * 64}}),
        META,
    ),
    "unknown_task": (_set(("config", "task"), "poetry"), "'poetry'"),
    "unknown_version": (_set(("version",), 99), "version 99"),
    "layers_1e9": (_set(("config", "model", "layers"), 1e9), "layers"),
    "layers_10_9": (_set(("config", "model", "layers"), 10**9), "layers"),
    "hidden_10_9": (_set(("config", "model", "hidden"), 10**9), "hidden"),
    "hidden_negative": (_set(("config", "model", "hidden"), -16), "hidden"),
    "hidden_float": (_set(("config", "model", "hidden"), 16.5), "hidden"),
    "hidden_string": (_set(("config", "model", "hidden"), "16"), "hidden"),
    "hidden_other": (_set(("config", "model", "hidden"), 32), "does not fit"),
    "no_model_config": (_edit_meta(lambda m: m["config"].pop("model")), META),
}

# Damages only a resumed run meets (OUT/last's optimizer and trainer state).
RESUME_DAMAGES = {
    "no_trainer_state": (_drop("extra_state"), "'extra_state'"),
    "trainer_state_empty": (_set(("extra_state", "trainer"), {}), "cannot be resumed"),
    "no_optimizer_state": (_set(("optimizer",), None), "cannot be resumed"),
    "rng_state_damaged": (_set(("rng",), [{"torch": 5}]), "cannot be resumed"),
}
