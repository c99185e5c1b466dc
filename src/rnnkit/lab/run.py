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
from rnnkit.train import run as run_skeleton
from rnnkit.train import rundir
from rnnkit.train.config import TrainConfig
from rnnkit.train.options import option, positive_int
from rnnkit.train.run import Parts, TaskRun, Trained

logger = logging.getLogger(__name__)

TASK = "lab"
SOLVED_MSE = 0.01  # the adding problem is solved below this test MSE
SOLVED_COPY_ACCURACY = 0.99  # copy memory: of the 10 symbols copied right


@dataclass
class LabData:
    length: int = option(  # T
        100, "length (adding), delay (copy)", type=positive_int, metavar="T"
    )
    batch: int = option(50, "", type=positive_int, metavar="N")
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
TRAIN_DEFAULTS = {"lr": 1e-3, "eval_every": 250, "seed": 0, "warmup_steps": 0}
MAX_STEPS = 10_000  # a run given neither max_steps nor max_time


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
    run = LabRun(task, options, prepare)
    with tempfile.TemporaryDirectory(prefix="rnnkit-lab-") as scratch:
        run_dir = Path(out) if out is not None else Path(scratch) / "run"
        _, summary = run_skeleton.train(run, run_dir, overwrite=overwrite, on_step=on_step)
    return {**summary, "out": str(out) if out is not None else None}


class LabRun(TaskRun):
    """A LabModel on batches generated afresh each step, scored on a held-out test set
    against the task's memoryless baseline."""

    task = TASK

    def __init__(self, lab_task: str, options: dict, init_hook=None):
        self.lab_task, self.options, self.init_hook = lab_task, options, init_hook

    def prepare(self, previous) -> TrainConfig:
        task, options = self.lab_task, self.options
        unknown = set(options) - {*DATA_KEYS, *MODEL_KEYS, *TRAIN_KEYS}
        if unknown:
            raise ValueError(f"unknown lab options: {sorted(unknown)}")
        self.data = data = LabData(**{k: v for k, v in options.items() if k in DATA_KEYS})
        self.model_options = {k: v for k, v in options.items() if k in MODEL_KEYS}
        if self.model_options.get("init") == "chrono" and self.model_options.get("t_max") is None:
            self.model_options["t_max"] = data.length + (20 if task == "copy" else 0)
        self.metric = "mse" if task == "adding" else "ce"
        train = {"metric": self.metric, **TRAIN_DEFAULTS}
        train.update({k: v for k, v in options.items() if k in TRAIN_KEYS})
        if "max_steps" not in train and "max_time" not in train:
            train["max_steps"] = MAX_STEPS
        if task == "adding":
            train.setdefault("stop_at", SOLVED_MSE / 2)
        self.config = TrainConfig(**train)
        return self.config

    def build(self) -> LabModel:
        model = LabModel(self.lab_task, **self.model_options)
        if self.init_hook is not None:
            self.init_hook(model)
        return model

    def parts(self, model: LabModel) -> Parts:
        generate, T, seed = make(self.lab_task), self.data.length, self.config.seed
        valid = generate(self.data.valid_size, T, torch.Generator().manual_seed(seed + 1_000_003))
        self.test = generate(
            self.data.test_size, T, torch.Generator().manual_seed(seed + 2_000_003)
        )

        def batches(step: int):
            return generate(self.data.batch, T, torch.Generator().manual_seed(seed * 7919 + step))

        run_config = {"lab_task": self.lab_task, "data": asdict(self.data)}
        return Parts(batches, lambda m: score(m, *valid), run_config)

    def describe(self, model: LabModel) -> str:
        c, config = model.config, self.config
        return (
            f"lab {self.lab_task}: T={self.data.length}, {c.layers} x {c.hidden} {c.cell}"
            + (f" ({c.nonlinearity})" if c.cell == "rnn" else "")
            + f", init {c.init}; batch {self.data.batch}, lr {config.lr}, clip {config.clip_norm}"
        )

    def summary(self, trained: Trained) -> dict:
        task, metric, c = self.lab_task, self.metric, trained.model.config
        tested = score(trained.model, *self.test)
        value = tested[metric]
        if task == "adding":
            solved = value < SOLVED_MSE
        else:
            solved = tested["accuracy"] >= SOLVED_COPY_ACCURACY
        return {
            "task": task,
            "length": self.data.length,
            "cell": c.cell,
            "nonlinearity": c.nonlinearity if c.cell == "rnn" else None,
            "init": c.init,
            "hidden": c.hidden,
            f"test_{metric}": value,
            f"baseline_{metric}": baseline(task, self.data.length),
            **({"test_accuracy": tested["accuracy"]} if task == "copy" else {}),
            "solved": bool(solved),
            "steps": trained.result.step,
            "seconds": trained.seconds,
            "stop_reason": trained.result.stop_reason,
        }


def load(path: str | Path) -> LabModel:
    """The LabModel of a lab run directory or checkpoint (best/, else last/), on the CPU."""
    ckpt = rundir.load_task(path, TASK)
    with rundir.usable(ckpt, TASK):
        model = rundir.build_model(ckpt, LabModel)
    return model.eval()
