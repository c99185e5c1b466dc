"""Validation during training: running `valid_fn` without disturbing the run (its own torch RNG,
the carried state put back) and deciding whether a result is the best so far."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.train import distributed


def run_validation(
    module: nn.Module,
    valid_fn: Callable[[nn.Module], dict[str, float] | float],
    metric: str,
    device: torch.device,
    get_state: Callable[[], Any] | None = None,
    set_state: Callable[[Any], None] | None = None,
) -> dict[str, float]:
    """{name: value} of `valid_fn(module)` in eval mode under no_grad and a forked RNG, the same
    on every process (the main one's); a bare number is the loss. The carried state is taken
    before and set back after, and the module is left in train mode."""
    carried = get_state() if get_state else None
    devices = [device.index or 0] if device.type == "cuda" else []
    module.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            result = valid_fn(module)
    finally:
        module.train()
        if set_state:
            set_state(carried)
    metrics = {"loss": result} if isinstance(result, (int, float, Tensor)) else dict(result)
    metrics = distributed.broadcast_object({k: float(v) for k, v in metrics.items()})
    if metric not in metrics:
        raise ValueError(f"valid_fn returned {sorted(metrics)}, not TrainConfig.metric {metric!r}")
    return metrics


def improves(value: float, loss: float | None, best: float | None, best_loss: float | None) -> bool:
    """A lower metric than `best`, or the same one with a lower validation loss: an error rate on
    a small validation set reaches its floor (often 0) long before the model is trained, and the
    first model there is not the best."""
    if not math.isfinite(value):
        return False
    if best is None or value < best:
        return True
    tie = value == best and loss is not None and best_loss is not None
    return tie and math.isfinite(loss) and loss < best_loss
