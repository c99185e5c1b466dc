"""The task-agnostic training loop, for every model with `output, loss = model(inputs, targets)`.

Data. `batches(step)` returns batch number `step` = 0, 1, 2, ... as (inputs, targets) or
(inputs, targets, n_tokens); under DistributedDataParallel, this process's share of it
(`distributed.shard`, `batches.DatasetBatches`). The trainer asks by number, so a run resumed at
step k continues with batch k. Inputs and targets are tensors or tuples, lists and dicts of them,
moved to the training device; n_tokens (default: targets.numel()) feeds tokens/s. A `batches`
object with state_dict()/load_state_dict() has that state checkpointed too.

Carried state. What a task keeps from one batch to the next, such as the hidden state truncated
BPTT carries, is checkpointed through `get_state() -> obj` (tensors allowed) and `set_state(obj)`.
Validation runs between a get and a set, and under its own torch RNG, so it disturbs neither
(train/validation.py).

Output (train/rundir.py). OUT/last: the checkpoint to resume from, saved every
`checkpoint_every` steps and when training stops; OUT/best: the weights with the best
validation metric; OUT/metrics.csv and OUT/tb (train/runlog.py). Only the main process writes.

Stopping. At max_steps, max_time, early stopping, or SIGINT/SIGTERM: the current step finishes,
OUT/last is saved, and `fit` returns; a second signal interrupts at once. A non-finite loss or
gradient norm raises NonFiniteError naming the step, before the update and without saving.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.bptt import native
from rnnkit.train import checkpoint, distributed, rundir
from rnnkit.train.averaging import averaged
from rnnkit.train.batches import to_device, unpack
from rnnkit.train.config import TrainConfig
from rnnkit.train.devices import check_device
from rnnkit.train.interrupts import stop_requests
from rnnkit.train.numeric_modes import numeric_modes
from rnnkit.train.progress import format_metrics, progress_bar, time_left
from rnnkit.train.runlog import MetricsLog, NullLog, Window
from rnnkit.train.seeding import rng_state, seed_everything, set_rng_state
from rnnkit.train.validation import improves, run_validation

logger = logging.getLogger(__name__)
STOP_REASONS = ("max_steps", "epochs", "max_time", "early_stopping", "target", "signal")


class NonFiniteError(FloatingPointError):
    """The loss or the gradient norm became NaN or infinite; nothing was saved after it."""


@dataclass
class TrainResult:
    step: int  # updates done in all, resumed ones included
    stop_reason: str  # one of STOP_REASONS ("epochs": max_steps, set by an epoch budget)
    best: float | None  # the best value of config.metric; None without validation
    metrics: dict[str, float]  # the last train and validation metrics, named as in metrics.csv
    last: Path | None  # OUT/last
    best_path: Path | None  # OUT/best, when validation ran


class Trainer:
    """Trains `model` on `batches(step)`, validating with `valid_fn(model) -> {name: value}`."""

    def __init__(
        self,
        model: nn.Module,
        batches: Callable[[int], Any],
        config: TrainConfig,
        out_dir: str | Path,
        *,
        valid_fn: Callable[[nn.Module], dict[str, float] | float] | None = None,
        run_config: dict | None = None,  # saved beside config.train: what rebuilds the model
        vocab: Any = None,  # saved in every checkpoint (JSON value)
        get_state: Callable[[], Any] | None = None,  # carried state, see the module docstring
        set_state: Callable[[Any], None] | None = None,
        on_step: Callable[[int, dict], None] | None = None,  # called after each update
        overwrite: bool = False,  # start afresh in an OUT that holds another run
    ):
        if (get_state is None) != (set_state is None):
            raise ValueError("get_state and set_state come together: pass both or neither")
        config = replace(config, warmup_steps=config.warmup())  # fixed from here on, resumed too
        self.cfg, self.batches, self.valid_fn, self.on_step = config, batches, valid_fn, on_step
        self.get_state, self.set_state, self.overwrite = get_state, set_state, overwrite
        self.run_config, self.vocab, self.out = dict(run_config or {}), vocab, Path(out_dir)
        distributed.setup()
        self.main = distributed.is_main()
        self.device = _pick_device(model, config)
        self.module = model.to(self.device)
        self.model = self.module
        if distributed.is_distributed():
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
        self.optimizer = config.make_optimizer(self.module)
        self.average = averaged(self.module, config.ema)  # None without --ema
        self.schedule = config.make_schedule()
        self.step, self.elapsed, self.best, self.bad_evals = 0, 0.0, None, 0
        self.best_loss: float | None = None  # the validation loss at the best metric
        self.metrics: dict[str, float] = {}
        self._early_stop = False
        self._reached = False  # the validation metric reached config.stop_at
        self._saved_step: int | None = None
        self.steps_reason = "max_steps"  # the stop reason at max_steps ("epochs" for --epochs)

    def fit(self, resume: str | Path | None = None) -> TrainResult:
        """Train until a stop condition; `resume`: a checkpoint directory (OUT/last) to continue.
        The run directory has one writer while this runs (rundir.writer)."""
        with rundir.writer(self.out, self.main):
            return self._fit(resume)

    def _fit(self, resume: str | Path | None) -> TrainResult:
        rundir.prepare(
            self.out, resume=resume is not None, overwrite=self.overwrite, main=self.main
        )
        distributed.barrier()  # the others wait until OUT exists
        if resume is not None:
            self._restore(checkpoint.load(resume, map_location=self.device))
            if self.main:
                logger.info("resuming from step %d (%s)", self.step, resume)
        else:
            seed_everything(self.cfg.seed + distributed.rank())
        if torch.device(self.device).type == "cpu":
            native.load()  # a first build of the C++ time loops is not charged to --max-time
        log = NullLog()
        if self.main:
            resume_step = self.step if resume is not None else None
            log = MetricsLog(self.out, resume_step=resume_step, tensorboard=self.cfg.tensorboard)
        with (
            log,
            stop_requests() as requests,
            progress_bar(self.cfg, self.main, self.step) as bar,
            numeric_modes(self.cfg),
        ):
            reason = self._loop(log, requests, bar)
        return TrainResult(
            step=self.step,
            stop_reason=reason,
            best=self.best,
            metrics=dict(self.metrics),
            last=self.out / rundir.LAST if self._saved_step is not None else None,
            best_path=self.out / rundir.BEST if self.best is not None else None,
        )

    def _loop(self, log, requests: list, bar) -> str:
        cfg, window = self.cfg, Window()
        started = time.perf_counter() - self.elapsed  # elapsed time carries over a resume
        reason = self._stop_reason(requests)
        while reason is None:
            t0 = time.perf_counter()
            stats = self._update()
            self.step += 1
            self.elapsed = time.perf_counter() - started
            window.add(stats, time.perf_counter() - t0)
            bar.update(1)
            if self.step % cfg.log_every == 0:
                self._log_train(log, bar, window)
                window = Window()
            evaluated = self.valid_fn is not None and self.step % cfg.eval_every == 0
            if evaluated:
                self._validate(log)
            if self.on_step is not None:
                self.on_step(self.step, stats)
            reason = self._stop_reason(requests)
            if reason in ("max_steps", "epochs", "max_time") and self.valid_fn and not evaluated:
                self._validate(log)  # the final model is always evaluated
            if reason is not None and window.steps:
                self._log_train(log, bar, window)  # the last, partial window
            every = cfg.checkpoint_every or cfg.eval_every
            if reason is not None or self.step % every == 0:
                log.flush()  # first: a process killed after the save has every row up to it
                self._save_last()
        logger.info("stopped at step %d: %s", self.step, reason)
        return reason

    def _update(self) -> dict:
        """One optimizer step on batch `self.step`; the statistics are over all processes."""
        inputs, targets, n_tokens = unpack(self.batches(self.step), self.step)
        inputs, targets = to_device(inputs, self.device), to_device(targets, self.device)
        lr = self.schedule.lr(self.step, self.elapsed)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        _, loss = self.model(inputs, targets)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise TypeError(
                f"the model must return (output, loss) with a scalar loss, got {loss!r}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.cfg.clip_norm or math.inf  # with inf the gradient is scaled by exactly 1
        norm = nn.utils.clip_grad_norm_(self.module.parameters(), clip)
        tokens = torch.as_tensor(n_tokens, dtype=torch.float32, device=loss.device)
        totals = torch.stack([loss.detach().float().reshape(()), tokens.reshape(())])
        totals = distributed.all_reduce_sum(totals)
        loss_sum, tokens, norm = torch.cat([totals, norm.detach().float().view(1)]).tolist()
        loss_value = loss_sum / distributed.world_size()
        if not (math.isfinite(loss_value) and math.isfinite(norm)):
            raise NonFiniteError(self._nonfinite_message(loss_value, norm))
        self.optimizer.step()
        if self.average is not None:
            self.average.update_parameters(self.module)
        return {
            "loss": loss_value,
            "lr": lr,
            "grad_norm": norm,
            "clipped": norm > clip,
            "tokens": tokens,
        }

    def _nonfinite_message(self, loss: float, norm: float) -> str:
        kept = (
            f"the last good checkpoint ({self.out / rundir.LAST}, step {self._saved_step}) "
            "is untouched"
            if self._saved_step is not None
            else "no checkpoint was saved"
        )
        return (
            f"non-finite loss ({loss}) or gradient norm ({norm}) at step {self.step + 1} "
            f"(batch {self.step}); stopped before updating the weights, {kept}"
        )

    def _validate(self, log) -> None:
        cfg = self.cfg
        metrics = run_validation(
            self._validated(),
            self.valid_fn,
            cfg.metric,
            self.device,
            self.get_state,
            self.set_state,
        )
        named = {f"valid/{k}": v for k, v in metrics.items()}
        self.metrics.update(named)
        log.write(self.step, self.elapsed, named)
        logger.info("step %d: %s", self.step, format_metrics(named))
        value = metrics[cfg.metric]
        self._reached = cfg.stop_at is not None and value <= cfg.stop_at
        self.schedule.observe(value)
        if improves(value, metrics.get("loss"), self.best, self.best_loss):
            self.best, self.best_loss, self.bad_evals = value, metrics.get("loss"), 0
            self._save(rundir.BEST, resumable=False)
        else:
            self.bad_evals += 1
            self._early_stop = bool(cfg.patience) and self.bad_evals >= cfg.patience

    def _validated(self) -> nn.Module:
        """What validation measures and OUT/best keeps: the averaged weights with --ema."""
        return self.module if self.average is None else self.average.module

    def _log_train(self, log, bar, window: Window) -> None:
        summary = window.summary()
        self.metrics.update(summary)
        log.write(self.step, self.elapsed, summary)
        left = time_left(self.cfg.max_time, self.elapsed) if self.cfg.max_time else None
        bar.set_postfix(
            loss=f"{summary['train/loss']:.4f}",
            tok_s=f"{summary['train/tokens_per_s']:.0f}",
            lr=f"{summary['train/lr']:.2e}",
            **({"left": left} if left else {}),
            refresh=False,
        )
        if bar.disable:
            logger.info("step %d: %s", self.step, format_metrics(summary))

    def _stop_reason(self, requests: list) -> str | None:
        cfg = self.cfg
        timed_out = cfg.max_time is not None and self.elapsed >= cfg.max_time
        flags = torch.tensor([float(bool(requests)), float(timed_out)], device=self.device)
        signalled, timed_out = (distributed.all_reduce_sum(flags) > 0).tolist()  # agree on it
        if self._early_stop:
            return "early_stopping"
        if self._reached:
            return "target"
        if cfg.max_steps is not None and self.step >= cfg.max_steps:
            return self.steps_reason
        if timed_out:
            return "max_time"
        return "signal" if signalled else None

    def _save_last(self) -> None:
        self._save(rundir.LAST, resumable=True)
        self._saved_step = self.step

    def _save(self, name: str, resumable: bool) -> None:
        """Write OUT/name; `resumable` adds the optimizer and every process's RNG, carried and
        data state (collected from all processes, so every process must call this)."""
        ranks = []
        if resumable:
            local = {
                "rng": rng_state(),
                "task": to_device(self.get_state(), "cpu") if self.get_state else None,
                "data": self.batches.state_dict() if hasattr(self.batches, "state_dict") else None,
            }
            ranks = distributed.all_gather_object(local)
        if not self.main:
            return
        trainer = {
            "elapsed": self.elapsed,
            "best": self.best,
            "best_loss": self.best_loss,
            "bad_evals": self.bad_evals,
            "early_stop": self._early_stop,
            "schedule": self.schedule.state_dict(),
        }
        average = self.average.state_dict() if self.average is not None and resumable else None
        checkpoint.save(
            self.out / name,
            self.module if resumable else self._validated(),
            self.optimizer if resumable else None,
            config={**self.run_config, "train": asdict(self.cfg)},
            vocab=self.vocab,
            step=self.step,
            metrics=dict(self.metrics),
            extra_state={
                "trainer": trainer,
                "task": [r["task"] for r in ranks],
                "data": [r["data"] for r in ranks],
                "average": average,
            },
            rng_states=[r["rng"] for r in ranks] if ranks else None,
        )

    def _restore(self, ckpt: checkpoint.Checkpoint) -> None:
        """Continue from `ckpt` (OUT/last); a damaged state is a ValueError naming its file."""
        try:
            self._restore_state(ckpt)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            if isinstance(exc, ValueError) and str(ckpt.path) in str(exc):
                raise  # says what is wrong already
            what = f"it lacks {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())
            raise ValueError(
                f"{ckpt.path / checkpoint.META_FILE} cannot be resumed: its model, optimizer or "
                f"trainer state is damaged ({what})"
            ) from None

    def _restore_state(self, ckpt: checkpoint.Checkpoint) -> None:
        if ckpt.optimizer_state is None or not isinstance(ckpt.extra_state, dict):
            raise ValueError(
                f"{ckpt.path} cannot be resumed: it holds no optimizer or trainer state "
                "(resume from OUT/last, not OUT/best)"
            )
        self.module.load_state_dict(ckpt.model_state)
        self.optimizer.load_state_dict(ckpt.optimizer_state)
        trainer = ckpt.extra_state["trainer"]
        self.step, self.elapsed, self.metrics = ckpt.step, trainer["elapsed"], dict(ckpt.metrics)
        self.best, self.bad_evals = trainer["best"], trainer["bad_evals"]
        self.best_loss = trainer.get("best_loss")  # absent from runs saved before it was kept
        self._early_stop = trainer["early_stop"]
        self.schedule.load_state_dict(trainer["schedule"])
        if self.average is not None and ckpt.extra_state.get("average") is not None:
            self.average.load_state_dict(ckpt.extra_state["average"])
        self._saved_step = self.step
        r, world = distributed.rank(), distributed.world_size()
        if len(ckpt.rng_states) != world:
            logger.warning(
                "%s was saved by %d processes, resumed by %d: RNGs reseeded, carried state reset",
                ckpt.path,
                len(ckpt.rng_states),
                world,
            )
            seed_everything(self.cfg.seed + r + self.step)
            return
        set_rng_state(ckpt.rng_states[r])
        if self.set_state is not None and ckpt.extra_state["task"][r] is not None:
            self.set_state(to_device(ckpt.extra_state["task"][r], self.device))
        if hasattr(self.batches, "load_state_dict") and ckpt.extra_state["data"][r] is not None:
            self.batches.load_state_dict(ckpt.extra_state["data"][r])


def train(
    model: nn.Module,
    batches: Callable[[int], Any],
    valid_fn: Callable[[nn.Module], dict[str, float] | float] | None,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: str | Path | None = None,
    **kwargs,
) -> TrainResult:
    """`Trainer(model, batches, config, out_dir, valid_fn=valid_fn, **kwargs).fit(resume)`."""
    return Trainer(model, batches, config, out_dir, valid_fn=valid_fn, **kwargs).fit(resume)


def _pick_device(model: nn.Module, cfg: TrainConfig) -> torch.device:
    if cfg.device is not None:
        return check_device(cfg.device, "device")  # one clear error for "banana" or "cuda:7"
    if distributed.is_distributed() and torch.cuda.is_available():
        return distributed.device()
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
