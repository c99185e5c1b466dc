"""Training a LabModel on a generated long-range task with the task-agnostic Trainer, and
scoring it on a held-out test set against the task's memoryless baseline.

Batches are generated afresh from a generator seeded by (seed, step), so a run is repeatable
and resumable; validation and test sets are fixed, drawn from their own seeds.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from rnnkit.lab.model import LabModel, LabModelConfig, accuracy_of_copy
from rnnkit.lab.tasks import ADDING_BASELINE_MSE, adding_problem, copy_baseline_ce, copy_memory
from rnnkit.train import checkpoint, rundir
from rnnkit.train.config import TrainConfig
from rnnkit.train.loop import Trainer
from rnnkit.train.seeding import seed_everything

logger = logging.getLogger(__name__)

TASK = "lab"
SOLVED_MSE = 0.01  # the adding problem is solved below this test MSE
SOLVED_COPY_ACCURACY = 0.99  # copy memory: of the 10 symbols copied right


@dataclass
class LabData:
    length: int = 100  # T: the adding problem's length, copy memory's delay
    batch: int = 50
    valid_size: int = 500
    test_size: int = 1000

    def __post_init__(self):
        for key in ("length", "batch", "valid_size", "test_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")


DATA_KEYS = tuple(f.name for f in fields(LabData))
MODEL_KEYS = tuple(f.name for f in fields(LabModelConfig) if f.name != "task")
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))


def make(task: str):
    """The generator of `task`: (n, length, generator) -> (inputs, targets)."""
    return {"adding": adding_problem, "copy": copy_memory}[task]


def baseline(task: str, length: int) -> float:
    return ADDING_BASELINE_MSE if task == "adding" else copy_baseline_ce(length)


def score(model: LabModel, inputs, targets) -> dict:
    """{"mse"} for adding; {"ce", "accuracy"} for copy, on a whole set (no grad)."""
    model.eval()
    with torch.no_grad():
        out, loss = model(inputs, targets)
    if model.config.task == "adding":
        return {"mse": float(loss)}
    return {"ce": float(loss), "accuracy": accuracy_of_copy(out, targets)}


def train(
    task: str,
    options: dict,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    prepare: Callable[[LabModel], None] | None = None,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train a LabModel on `task` ("adding" | "copy"); options: the fields of LabData,
    LabModelConfig (but task) and TrainConfig. `out`: the run directory (None: a temporary
    one, removed after). `prepare(model)` runs on the initialised model before training;
    `on_step(step, stats)` after each update.
    Returns the summary: test metric, baseline, solved, steps, seconds, stop reason."""
    unknown = set(options) - {*DATA_KEYS, *MODEL_KEYS, *TRAIN_KEYS}
    if unknown:
        raise ValueError(f"unknown lab options: {sorted(unknown)}")
    data = LabData(**{k: v for k, v in options.items() if k in DATA_KEYS})
    model_options = {k: v for k, v in options.items() if k in MODEL_KEYS}
    if model_options.get("init") == "chrono" and model_options.get("t_max") is None:
        model_options["t_max"] = data.length + (20 if task == "copy" else 0)
    metric = "mse" if task == "adding" else "ce"
    train_options = {"metric": metric, "eval_every": 250, "lr": 1e-3, "warmup_steps": 0}
    train_options.update({k: v for k, v in options.items() if k in TRAIN_KEYS})
    if "max_steps" not in train_options and "max_time" not in train_options:
        train_options["max_steps"] = 10_000
    if task == "adding":
        train_options.setdefault("stop_at", SOLVED_MSE / 2)
    config = TrainConfig(**train_options)
    seed_everything(config.seed)
    model = LabModel(task, **model_options)
    if prepare is not None:
        prepare(model)
    generate, T = make(task), data.length
    valid = generate(data.valid_size, T, torch.Generator().manual_seed(config.seed + 1_000_003))
    test = generate(data.test_size, T, torch.Generator().manual_seed(config.seed + 2_000_003))

    def batches(step: int):
        return generate(data.batch, T, torch.Generator().manual_seed(config.seed * 7919 + step))

    with tempfile.TemporaryDirectory(prefix="rnnkit-lab-") as scratch:
        run_dir = Path(out) if out is not None else Path(scratch) / "run"
        trainer = Trainer(
            model,
            batches,
            config,
            run_dir,
            valid_fn=lambda m: score(m, *valid),
            run_config={
                "task": TASK,
                "lab_task": task,
                "model": model.config.to_dict(),
                "data": asdict(data),
            },  # fmt: skip
            overwrite=overwrite,
            on_step=on_step,
        )
        c = model.config
        logger.info(
            f"lab {task}: T={T}, {c.layers} x {c.hidden} {c.cell}"
            + (f" ({c.nonlinearity})" if c.cell == "rnn" else "")
            + f", init {c.init}; batch {data.batch}, lr {config.lr}, clip {config.clip_norm}"
        )
        result = trainer.fit()
        if result.best_path is not None:
            model.load_state_dict(checkpoint.load(result.best_path).model_state)
        tested = score(model, *test)
    base = baseline(task, T)
    value = tested[metric]
    solved = value < SOLVED_MSE if task == "adding" else tested["accuracy"] >= SOLVED_COPY_ACCURACY
    return {
        "task": task,
        "length": T,
        "cell": c.cell,
        "nonlinearity": c.nonlinearity if c.cell == "rnn" else None,
        "init": c.init,
        "hidden": c.hidden,
        f"test_{metric}": value,
        f"baseline_{metric}": base,
        **({"test_accuracy": tested["accuracy"]} if task == "copy" else {}),
        "solved": bool(solved),
        "steps": result.step,
        "seconds": trainer.elapsed,
        "stop_reason": result.stop_reason,
        "out": str(out) if out is not None else None,
    }


def load(path: str | Path) -> LabModel:
    """The LabModel of a lab run directory or checkpoint (best/, else last/), on the CPU."""
    ckpt = checkpoint.load(rundir.find_checkpoint(path), map_location="cpu")
    cfg = ckpt.config if isinstance(ckpt.config, dict) else {}
    if cfg.get("task") != TASK:
        raise ValueError(f"{ckpt.path} is not a lab checkpoint (its task is {cfg.get('task')!r})")
    model = LabModel.from_config(cfg["model"])
    model.load_state_dict(ckpt.model_state)
    return model.eval()
