"""A series' sliding windows: the first target rows of a split's windows, the windows of an
array, a series prepared for a forecaster (scaled targets, covariates, calendar features, split
ends) and its windows as model inputs, all of a split or shuffled training batches by step.

Windows follow the Informer convention: the window whose first target row is t takes its inputs
from rows [t - lookback, t) and its targets from rows [t, t + horizon). A split [start, end)
owns the windows whose targets lie in it, so validation and test windows read their inputs
from the end of the previous split, and training windows (start 0) begin at t = lookback.

    N: rows, W: windows, L: lookback, H: horizon, C: targets (or columns), P: covariates,
    K: calendar features. The window with first target row t reads y and x at rows [t - L, t),
    f at rows [t - L, t + H), and forecasts y at rows [t, t + H).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnkit.forecast.scaler import Scaler
from rnnkit.train import distributed


def window_starts(start: int, end: int, lookback: int, horizon: int, stride: int = 1) -> np.ndarray:
    """(W,) int64: every t, a stride apart, whose targets [t, t + horizon) lie in [start, end)
    and whose inputs [t - lookback, t) start at row 0 or later; the first is max(start, lookback).
    """
    for name, value, least in (
        ("start", start, 0),
        ("end", end, 0),
        ("lookback", lookback, 1),
        ("horizon", horizon, 1),
        ("stride", stride, 1),
    ):
        _check_int(name, value, least)
    if end < start:
        raise ValueError(f"rows [{start}, {end}) end before they start; give start <= end")
    first = max(start, lookback)
    if first + horizon > end:
        raise ValueError(
            f"rows [{start}, {end}) hold no window of lookback {lookback} + horizon {horizon} "
            f"(need at least {first + horizon - start} rows from row {start}, there are "
            f"{end - start}); shorten the lookback or horizon, or give the split more rows"
        )
    return np.arange(first, end - horizon + 1, stride, dtype=np.int64)


def windows(
    x: np.ndarray, starts: np.ndarray, lookback: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """(past (W, L, C), future (W, H, C)): rows [t - L, t) and [t, t + H) of x (N, C) per t."""
    x = np.asarray(x)
    starts = np.asarray(starts)
    _check_int("lookback", lookback, 1)
    _check_int("horizon", horizon, 1)
    if x.ndim != 2:
        raise ValueError(f"windows needs x of shape (N, C), got {x.shape}")
    if starts.ndim != 1 or not np.issubdtype(starts.dtype, np.integer):
        raise ValueError(
            f"starts must be a 1-D array of row indices (from window_starts), got "
            f"{starts.dtype} of shape {starts.shape}"
        )
    if starts.size and (starts.min() < lookback or starts.max() + horizon > len(x)):
        raise ValueError(
            f"starts {starts.min()}..{starts.max()} reach outside the {len(x)} rows of x with "
            f"lookback {lookback} and horizon {horizon}; take them from window_starts"
        )
    past = x[starts[:, None] + np.arange(-lookback, 0)]
    future = x[starts[:, None] + np.arange(horizon)]
    return past, future


def _check_int(name: str, value, least: int) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be >= {least}, got {value}")


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
