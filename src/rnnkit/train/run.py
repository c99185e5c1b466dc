"""The run skeleton every task's `train` shares: a task supplies its data, model and metrics
(a `TaskRun`), `train` does the rest in one order:

    1. join the process group (under torchrun), once
    2. check the run directory: refuse one holding another run, or find the run to resume
       (then the run's options are its checkpoint's, see train/resume.py)
    3. task.prepare: check every option, read the data              (nothing written yet)
    4. seed, then task.build: the model, the same initial weights in every process; the
       disk must hold its checkpoints
    5. place the model on its device, hand it to the Trainer with the task's batches and
       validation (a resumed run: on the same data as before), log the task's one-line
       description, fit (a resumed run: from its checkpoint's step, weights, optimizer, RNGs)
    6. load the best weights (when validated), then task.summary
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from rnnkit.train import checkpoint, distributed, preflight, rundir
from rnnkit.train import resume as resuming
from rnnkit.train.config import TrainConfig
from rnnkit.train.loop import Trainer, TrainResult
from rnnkit.train.resume import saved_fields
from rnnkit.train.seeding import seed_everything

logger = logging.getLogger(__name__)


@dataclass
class Parts:
    """What the Trainer takes from a task besides the model and the TrainConfig."""

    batches: Any  # batches(step) -> (inputs, targets), or an object with that call
    valid_fn: Callable[[nn.Module], dict] | None  # None: no validation
    run_config: dict  # the checkpoint config besides "task" and "model" (e.g. "data")
    vocab: Any = None  # what inference needs to read and write text (JSON-able)
    hooks: dict = field(default_factory=dict)  # get_state / set_state of a carried state
    on_step: Callable[[int, dict], None] | None = None  # the task's own, before the caller's
    # on_step sets what follows the step (a ratio scheduled by step): a resumed run calls it
    # once with the step it starts from


@dataclass
class Trained:
    """What `train` hands `TaskRun.summary`."""

    out: Path
    model: nn.Module  # the best weights when the run validated and `best_weights`
    result: TrainResult
    seconds: float  # of training in all, resumed sessions included
    previous: checkpoint.Checkpoint | None  # the checkpoint a resumed run started from

    @property
    def interrupted(self) -> bool:
        """Stopped by SIGINT/SIGTERM: the model is cut short, so no test figures are made."""
        return self.result.stop_reason == "signal"


class TaskRun:
    """One task's part of a training run. A subclass keeps what `prepare` read on `self`."""

    task: str  # the "task" of the checkpoint's config
    resumable = False  # whether the task's train takes resume=True (then it defines `kept`)
    moves: tuple[str, ...] = ()  # kept options naming files that may move when resumed
    data_fields: type | None = None  # the data options' dataclass (the default `kept`)
    model_fields: type | None = None  # the model config's dataclass (the default `kept`)
    from_data: tuple[str, ...] = ()  # model config fields the data decides, not options
    best_weights = True  # load the best checkpoint's weights after training

    def __init__(self, options: dict):
        self.options = options  # flat: the fields of the task's option dataclasses

    def kept(self, previous: checkpoint.Checkpoint) -> dict:
        """The data and model options, flat, of the run saved in `previous` (its out/last):
        what a resumed run takes from it and may not change."""
        config = previous.config
        return {
            **saved_fields(self.data_fields, config["data"]),
            **saved_fields(self.model_fields, config["model"], skip=self.from_data),
        }

    def prepare(self, previous: checkpoint.Checkpoint | None) -> TrainConfig:
        """Check the options and read the data; the TrainConfig of the run."""
        raise NotImplementedError

    def build(self) -> nn.Module:
        """The model, built after seeding (a `config.to_dict()` describes it)."""
        raise NotImplementedError

    def parts(self, model: nn.Module) -> Parts:
        raise NotImplementedError

    def describe(self, model: nn.Module) -> str:
        """The log line that opens the run."""
        raise NotImplementedError

    def summary(self, trained: Trained) -> dict:
        raise NotImplementedError


def train(
    run: TaskRun,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> tuple[nn.Module, dict]:
    """Train `run`'s model into the run directory `out`: (model, summary). `resume` continues
    the run in `out` from out/last; `overwrite` replaces another run held there. Everything
    the user gave is checked before anything is written; under torchrun every process calls
    this and only process 0 writes."""
    out = Path(out)
    distributed.setup()
    # a directory a run has written (its lock file is there) may be being written now: locked
    # before it is read, so that such a run is refused and OUT/last is never read mid-save
    early = (out / rundir.LOCK_FILE).exists() and distributed.is_main()
    with rundir.writer(out) if early else contextlib.nullcontext():
        return _train(run, out, resume, overwrite, on_step)


def _train(run: TaskRun, out: Path, resume: bool, overwrite: bool, on_step) -> tuple:
    """`train` in a run directory nobody else writes (or none yet)."""
    previous = rundir.previous(
        out, run.task, resume=resume, overwrite=overwrite, resumable=run.resumable
    )
    if previous is not None:
        saved = previous.config
        with rundir.usable(previous, run.task):
            kept, train_config = run.kept(previous), saved["train"]
        run.options = resuming.options(run.options, kept, train_config, moves=run.moves)
    config = run.prepare(previous)
    if previous is not None:  # its weights fit the model before it is built for real
        rundir.check_model(previous, run.build)
    seed_everything(config.seed)  # the same initial weights in every process
    model = run.build()
    if distributed.is_main():
        preflight.room_for_checkpoint(out, model)  # before a step is trained
    if config.device is None:
        model.to(distributed.device())
    parts = run.parts(model)
    run_config = {"task": run.task, "model": model.config.to_dict(), **parts.run_config}
    if previous is not None:
        data = parts.run_config.get("data", {})
        resuming.check_data(previous.config, previous.vocab, data, parts.vocab, run.moves)
    trainer = Trainer(
        model,
        parts.batches,
        config,
        out,
        valid_fn=parts.valid_fn,
        run_config=run_config,
        vocab=parts.vocab,
        on_step=_chain(parts.on_step, on_step),
        overwrite=overwrite,
        **parts.hooks,
    )
    if previous is not None and parts.on_step is not None:
        parts.on_step(previous.step, {})  # what the task sets per step, as it was
    if getattr(run, "epochs", None):  # max_steps is the epochs' steps: reaching it is "epochs"
        trainer.steps_reason = "epochs"
    with rundir.writer(out, distributed.is_main()):  # one writer, before a word is printed
        if distributed.is_main():
            logger.info(run.describe(model))
        result = trainer.fit(resume=out / rundir.LAST if resume else None)
    if run.best_weights:
        distributed.barrier()  # process 0 has written OUT/best
        if result.best_path is not None:
            model.load_state_dict(checkpoint.load(result.best_path).model_state)
    return model, run.summary(Trained(out, model, result, trainer.elapsed, previous))


def absolute_paths(settings, keys: tuple[str, ...]) -> None:
    """The file options `keys` of the dataclass `settings` made absolute, as the checkpoint
    keeps them (a resumed run finds its files from any working directory)."""
    for key in keys:
        if getattr(settings, key) is not None:
            setattr(settings, key, str(Path(getattr(settings, key)).resolve()))


def _chain(first, then):
    if first is None or then is None:
        return first or then

    def both(step: int, metrics: dict) -> None:
        first(step, metrics)
        then(step, metrics)

    return both
