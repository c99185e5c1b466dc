"""A series prepared for a forecaster (scaled targets, covariates, calendar features, split
ends) and its sliding windows as model inputs: all windows of a split, or shuffled training
batches by step number.

    N: rows, W: windows, L: lookback, H: horizon, C: targets, P: covariates, K: calendar
    features. The window with first target row t reads y and x at rows [t - L, t), f at rows
    [t - L, t + H), and forecasts y at rows [t, t + H).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnkit.forecast.series import Scaler
from rnnkit.train import distributed


@dataclass
class Prepared:
    """A series as the forecaster reads it, every array already scaled."""

    times: np.ndarray  # (N,) datetime64[s]
    y: np.ndarray  # (N, C) targets, scaled by y_scaler
    x: np.ndarray  # (N, P) covariates, scaled by x_scaler (P may be 0)
    f: np.ndarray  # (N, K) calendar features (K may be 0)
    ends: tuple[int, int, int]  # train_end, valid_end, test_end (exclusive rows)
    y_scaler: Scaler
    x_scaler: Scaler | None  # None when there are no covariates
    f_names: list[str]  # the calendar features' names (calendar_features), K of them

    def gather(self, starts: np.ndarray, lookback: int, horizon: int):
        """((y (W, L, C), x (W, L, P), f (W, L + H, K)), future y (W, H, C)) as float32
        tensors for the windows whose first target rows are `starts` (W,)."""
        t = np.asarray(starts, dtype=np.int64)[:, None]  # (W, 1)
        past = t + np.arange(-lookback, 0)  # (W, L) row numbers
        ahead = t + np.arange(horizon)  # (W, H)
        both = np.concatenate([past, ahead], axis=1)  # (W, L + H)
        inputs = (_tensor(self.y[past]), _tensor(self.x[past]), _tensor(self.f[both]))
        return inputs, _tensor(self.y[ahead])


def _tensor(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class WindowBatches:
    """`batches(step)` for the training loop: batch number `step` of shuffled training windows.

    Epoch e = step // len(self) shuffles the windows with a generator seeded by seed + e; the
    last incomplete batch is dropped. Under DistributedDataParallel each process takes every
    world_size-th window of the global batch.
    """

    def __init__(
        self,
        data: Prepared,
        starts: np.ndarray,
        lookback: int,
        horizon: int,
        batch_size: int,
        seed: int = 0,
    ):
        world = distributed.world_size()
        if batch_size % world:
            raise ValueError(f"batch must be a multiple of {world} processes, got {batch_size}")
        if len(starts) < batch_size:
            raise ValueError(
                f"the training rows hold {len(starts)} windows, fewer than one batch of "
                f"{batch_size}: give a smaller --batch, --lookback or --horizon, or more rows"
            )
        self.data, self.starts, self.seed = data, np.asarray(starts), seed
        self.lookback, self.horizon, self.batch_size = lookback, horizon, batch_size
        self._epoch, self._order = None, None

    def __len__(self) -> int:
        """Steps per epoch."""
        return len(self.starts) // self.batch_size

    def __call__(self, step: int):
        epoch, i = divmod(step, len(self))
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._order, self._epoch = torch.randperm(len(self.starts), generator=g).numpy(), epoch
        chunk = self._order[i * self.batch_size : (i + 1) * self.batch_size]
        mine = chunk[distributed.rank() :: distributed.world_size()]
        return self.data.gather(self.starts[mine], self.lookback, self.horizon)
