"""What a resumed run takes from the checkpoint it continues (OUT/last), for every task.

A run resumed with --resume is the run that was stopped, continued: the Trainer restores the
weights, the optimizer, the schedule, the early-stopping state, every process's RNGs and the
carried state (train/loop.py); the data order is the step itself (train/batches.py). Here:

- `options`: the run's options are the checkpoint's. Its data and model options and its seed
  are kept, and one given again with another value is refused (ValueError naming it); a data
  file may move (`moves`), the data read is checked instead. The training options are the
  checkpoint's too unless given; a new budget (max_steps, max_time, epochs) replaces the old
  one whole, as the new total.
- `check_data`: what the resumed run read (the "data" of its config and its vocabulary) must
  be what the stopped run read, or the rest of the run would train on other data.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from typing import Any

BUDGET_KEYS = ("max_steps", "max_time", "epochs")
KEPT = "a resumed run keeps its seed, data and model options"


def saved_fields(cls, saved: dict, skip: tuple = ()) -> dict:
    """{name: value} of the fields of the dataclass `cls` (but `skip`) from the JSON `saved`,
    a field absent from it (a checkpoint older than the field) at its default."""
    values = {}
    for f in fields(cls):
        if f.name in skip:
            continue
        if f.name in saved:
            values[f.name] = saved[f.name]
        elif f.default is not MISSING:
            values[f.name] = f.default
        elif f.default_factory is not MISSING:
            values[f.name] = f.default_factory()
    return values


def options(given: dict, kept: dict, train: dict, *, moves: tuple = ()) -> dict:
    """The flat options of a resumed run: the `kept` options (data and model, from the
    checkpoint's config) and its TrainConfig `train`, under the command line's `given` ones.
    A kept option or the seed given with another value is refused, but the files in `moves`."""
    for key, value in given.items():
        before = train.get("seed") if key == "seed" else kept.get(key, value)
        if key not in moves and _json(value) != _json(before):
            raise ValueError(
                f"{key}={_show(value)} differs from the run being resumed "
                f"({key}={_show(before)}): {KEPT}"
            )
    base = {**train, "device": None}  # the device may change: CPU/GPU checkpoints are the same
    if any(given.get(k) is not None for k in BUDGET_KEYS):
        for key in BUDGET_KEYS:
            base.pop(key, None)
    return {**kept, **base, **given}


def check_data(saved_config: dict, saved_vocab: Any, data: dict, vocab: Any, moves=()) -> None:
    """Refuse (ValueError) to resume on data other than the run's: `data` (the "data" of the
    resumed run's config, its files in `moves` left out) and `vocab` must be the checkpoint's."""
    before = {k: v for k, v in saved_config.get("data", {}).items() if k not in moves}
    now = {k: v for k, v in data.items() if k not in moves}
    files = ", ".join(str(data[k]) for k in moves if data.get(k) is not None) or "the data"
    for key in sorted(set(before) | set(now)):
        if _json(before.get(key)) != _json(now.get(key)):
            raise ValueError(
                f"{files} is not the data the run being resumed was trained on "
                f"({key}: {_show(before.get(key))} then, {_show(now.get(key))} now)"
            )
    if _json(saved_vocab) != _json(vocab):
        raise ValueError(
            f"{files} is not the data the run being resumed was trained on "
            "(the vocabulary or scaling fitted on it differs)"
        )


def _json(value: Any) -> Any:
    """`value` as it reads back from a checkpoint's JSON (tuples become lists...)."""
    return json.loads(json.dumps(value))


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
