"""Learning-rate schedules: linear warm-up, then cosine decay, reduce-on-plateau or a constant.

    warm-up (step < W):  lr = peak * (step + 1) / (W + 1)
    cosine:              lr = floor + (peak - floor) * (1 + cos(pi * p)) / 2,  p in [0, 1]
    plateau:             lr = max(floor, peak * factor^k), k = times validation stopped improving
    constant:            lr = peak

Cosine progress p runs over the steps after warm-up when `max_steps` is set, else over wall time
(`max_time`); the time-based curve is the one schedule that differs from run to run.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "plateau", "constant")


class Schedule:
    """The learning rate as a function of step (and elapsed time); plateau state is checkpointed."""

    def __init__(
        self,
        kind: str,
        peak: float,
        *,
        warmup_steps: int = 0,
        max_steps: int | None = None,
        max_time: float | None = None,
        floor: float = 0.0,
        factor: float = 0.5,
        patience: int = 2,
        threshold: float = 1e-4,
    ):
        if kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
        if kind == "cosine" and not (max_steps or max_time):
            raise ValueError("the cosine schedule needs max_steps or max_time to decay over")
        self.kind, self.peak, self.floor = kind, peak, floor
        self.warmup_steps, self.max_steps, self.max_time = warmup_steps, max_steps, max_time
        self.factor, self.patience, self.threshold = factor, patience, threshold
        self.best: float | None = None  # plateau: best validation value seen
        self.bad_evals = 0  # plateau: evaluations since it last improved
        self.scale = 1.0  # plateau: factor^k

    def lr(self, step: int, elapsed: float = 0.0) -> float:
        """The learning rate for the update that follows `step` completed ones."""
        if step < self.warmup_steps:
            return self.peak * (step + 1) / (self.warmup_steps + 1)
        if self.kind == "constant":
            return self.peak
        if self.kind == "plateau":
            return max(self.floor, self.peak * self.scale)
        if self.max_steps:
            p = (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps)
        else:
            p = elapsed / self.max_time
        p = min(max(p, 0.0), 1.0)
        return self.floor + (self.peak - self.floor) * 0.5 * (1.0 + math.cos(math.pi * p))

    def observe(self, value: float) -> None:
        """Report a validation value (lower is better); the plateau schedule may lower the lr."""
        if self.kind != "plateau":
            return
        if self.best is None or value < self.best - self.threshold * abs(self.best):
            self.best, self.bad_evals = value, 0
            return
        self.bad_evals += 1
        if self.bad_evals >= self.patience:
            self.scale *= self.factor
            self.bad_evals = 0

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_evals": self.bad_evals, "scale": self.scale}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_evals, self.scale = state["best"], state["bad_evals"], state["scale"]
