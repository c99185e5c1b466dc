"""The training loop's hyperparameters, one dataclass, and the optimizer they describe."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rnnkit.regularisers import check_probability
from rnnkit.train.options import (
    duration,
    fraction,
    nonnegative_float,
    nonnegative_int,
    option,
    positive_float,
    positive_int,
    spelled,
)
from rnnkit.train.schedule import SCHEDULES, Schedule

OPTIMIZERS = ("adam", "adamw", "sgd")
MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision's
# The default warm-up: this fraction of the run's steps, at most WARMUP_MAX steps (WARMUP_MAX
# for a run with a time budget alone), so that a short run still reaches its peak rate.
WARMUP_FRACTION, WARMUP_MAX = 0.1, 100


@dataclass
class TrainConfig:
    """Everything `Trainer` needs to know besides the model, the data and the output directory."""

    optimizer: str = "adamw"  # "adam" | "adamw" | "sgd"
    lr: float = option(  # reached after warm-up (char-rnn's default)
        2e-3, "peak learning rate, AdamW, warm-up then cosine decay", type=positive_float
    )
    weight_decay: float = 0.0  # on weight matrices only, not biases; decoupled for adamw
    betas: tuple[float, float] = (0.9, 0.99)  # Adam moments; nanoGPT's char model uses 0.99
    momentum: float = 0.9  # SGD only
    clip_norm: float | None = option(  # max global gradient norm; 0/None: off (still logged)
        1.0,
        "clip the global gradient norm; 0: off",
        flag="--clip",
        type=nonnegative_float,
        metavar="NORM",
    )
    schedule: str = "cosine"  # "cosine" (warm-up + cosine) | "plateau" | "constant"
    warmup_steps: int | None = option(  # linear warm-up from lr / (W + 1) to lr, every schedule
        None,
        "learning-rate warm-up: the rate climbs linearly to --lr over the first N steps",
        type=nonnegative_int,
        metavar="N",
        shown=f"{WARMUP_FRACTION * 100:.0f}%% of the run's steps, at most {WARMUP_MAX}",
    )
    min_lr_ratio: float = option(  # floor of cosine and plateau, a fraction of lr (nanoGPT: 1/10)
        0.1,
        "the floor the cosine and plateau schedules lower the learning rate to, as a fraction "
        "of --lr",
        type=fraction,
        metavar="R",
    )
    ema: float = option(  # train/averaging.py
        0.0,
        "validate and keep as OUT/best an exponential moving average of the weights, "
        "w_avg = D w_avg + (1 - D) w after each update (0: off; 0.999: about the last 1,000 "
        "updates)",
        type=fraction,
        metavar="D",
    )
    plateau_factor: float = 0.5  # plateau: lr multiplier each time validation stalls
    plateau_patience: int = 2  # plateau: evaluations without improvement before lowering lr
    max_steps: int | None = option(
        None, "stop after N updates in all", type=positive_int, metavar="N"
    )
    max_time: float | None = option(  # seconds
        None,
        "stop after this much training in all, e.g. 90s, 30m, 2h; with a step or epoch "
        "budget too, whichever comes first",
        type=duration,
        metavar="TIME",
    )
    eval_every: int = option(
        500, "validate and save every N steps, and at the end", type=positive_int, metavar="N"
    )
    checkpoint_every: int | None = None  # save OUT/last every N steps; None: every eval_every
    patience: int | None = (
        None  # early stopping after N evaluations without improvement; 0/None off
    )
    metric: str = "loss"  # the validation metric to minimise: best checkpoint, plateau, early stop
    stop_at: float | None = None  # stop as soon as the validation metric is at or below this
    seed: int = option(1337, "random seed", type=int)  # torch, numpy, random; process r: + r
    log_every: int = 10  # write the train metrics, averaged over the last N steps, every N steps
    progress: bool = True  # tqdm bar with loss, tokens/s and ETA, when stderr is a terminal
    tensorboard: bool = True  # also log to OUT/tb when torch.utils.tensorboard imports
    device: str | None = option(  # None: cuda:LOCAL_RANK under DDP with CUDA, else the model's
        None,
        "e.g. cpu, cuda, cuda:1",
        shown="cuda when available, cuda:LOCAL_RANK under torchrun, else cpu",
    )
    flush_denormal: bool = True  # CPU: denormals read as 0 while training (10-100x faster ops)
    matmul_precision: str = option(  # set while training, then set back (numeric_modes.py)
        "highest",
        "float32 matrix products: highest keeps them float32; medium lets them run in "
        "bfloat16 with float32 sums (CPUs with AMX or AVX512-BF16, and GPUs: a 2 x 512 LSTM "
        "trains about 1.5x faster on a Xeon with AMX); high: TF32 on GPUs that have it",
        choices=MATMUL_PRECISIONS,
    )

    def __post_init__(self):
        self.betas = tuple(self.betas)  # a config read back from JSON has a list
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.matmul_precision not in MATMUL_PRECISIONS:
            raise ValueError(
                f"matmul_precision must be one of {MATMUL_PRECISIONS}, "
                f"got {self.matmul_precision!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("lr", "weight_decay", "momentum", "min_lr_ratio", "plateau_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        check_probability("ema", self.ema)  # a decay: the same rule as a probability
        if self.lr == 0:
            raise ValueError("lr must be positive, got 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.clip_norm is not None and self.clip_norm < 0:
            raise ValueError(
                f"clip_norm must be positive, or 0/None to disable, got {self.clip_norm}"
            )
        for name in ("eval_every", "log_every", "plateau_patience"):
            _check_positive_int(name, getattr(self, name))
        for name in ("max_steps", "checkpoint_every"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        warmup = 0 if self.warmup_steps is None else self.warmup_steps
        if warmup < 0 or self.patience is not None and self.patience < 0:
            raise ValueError(
                f"warmup_steps and patience must be >= 0, got {self.warmup_steps}, {self.patience}"
            )
        if self.max_time is not None and not self.max_time > 0:
            raise ValueError(
                f"max_time must be a positive number of seconds, got {self.max_time!r}"
            )
        if self.stop_at is not None and (
            isinstance(self.stop_at, bool) or not isinstance(self.stop_at, (int, float))
        ):
            raise ValueError(f"stop_at must be a number or None, got {self.stop_at!r}")
        if self.max_steps is None and self.max_time is None:
            raise ValueError("set max_steps or max_time (or both): training needs an end")

    def warmup(self) -> int:
        """The warm-up steps: warmup_steps, else WARMUP_FRACTION of max_steps (at most
        WARMUP_MAX; WARMUP_MAX when the run has no step budget)."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        if self.max_steps is None:
            return WARMUP_MAX
        return min(WARMUP_MAX, int(self.max_steps * WARMUP_FRACTION))

    def make_schedule(self) -> Schedule:
        return Schedule(
            self.schedule,
            self.lr,
            warmup_steps=self.warmup(),
            max_steps=self.max_steps,
            max_time=self.max_time,
            floor=self.lr * self.min_lr_ratio,
            factor=self.plateau_factor,
            patience=self.plateau_patience,
        )

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer over `model`'s trainable parameters; decay applies to matrices only."""
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": self.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
        if self.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum)
        adam = torch.optim.AdamW if self.optimizer == "adamw" else torch.optim.Adam
        return adam(groups, lr=self.lr, betas=self.betas)


@dataclass
class EpochBudget:
    """The budget of a task that trains by passes over its data (not a TrainConfig field: the
    task turns it into max_steps once it has counted its batches)."""

    epochs: int | None = option(
        None, "passes over the training data", type=positive_int, metavar="N"
    )


def split_options(options: dict, task: str, *groups, also=("epochs",)) -> list[dict]:
    """The flat `options` of a task's `train` cut into one dict per group of keys (the fields
    of its data, model and TrainConfig dataclasses, ...); a key in no group and not in `also`
    is a ValueError naming it."""
    known = {*also}.union(*groups)
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown {task} options: {sorted(unknown)}")
    return [{k: v for k, v in options.items() if k in keys} for keys in groups]


def plan_by_epochs(options: dict, task: str, data_cls, keys: tuple, defaults: dict, epochs: int):
    """(data, model options, TrainConfig, epochs) of a task trained by epochs (classify,
    forecast, translate): flat `options` cut by `keys` (data, model, train), the task's
    training `defaults` under the given ones, `epochs` epochs when no end is given."""
    data, model, train = split_options(options, task, *keys)
    train = {**defaults, **train}
    budget = epochs_budget(options.get("epochs"), train, epochs)
    return data_cls(**data), model, TrainConfig(**train), budget


def epochs_budget(epochs, train: dict, default: int) -> int | None:
    """The number of epochs a run asked by epoch trains for, or None when `train` (TrainConfig
    fields) ends it by max_steps or max_time alone. With no end given at all: `default`
    epochs. A run by epochs gets a placeholder max_steps in `train`, set to epochs x steps
    per epoch once the data is counted."""
    if epochs is not None:
        _check_positive_int("epochs", epochs)
        if train.get("max_steps") is not None:
            raise ValueError(
                f"give {spelled('epochs', '--epochs')} or {spelled('max_steps', '--max-steps')}, "
                "not both"
            )
    elif train.get("max_steps") is None and train.get("max_time") is None:
        epochs = default
    if epochs is not None:
        train["max_steps"] = 1
    return epochs


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
