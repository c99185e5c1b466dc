"""Where a run's metrics go: OUT/metrics.csv, and TensorBoard under OUT/tb when it imports.

metrics.csv is in long format, one row per metric and step, so metrics that appear only now and
then (validation) need no empty cells and the header never changes:

    step,time_s,name,value
    10,1.92,train/loss,2.3017

(`pandas.read_csv(f).pivot(index="step", columns="name", values="value")` gives the wide table.)
On resume the rows after the checkpoint's step are dropped, so the log matches the run.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CSV_FILE = "metrics.csv"
FIELDS = ("step", "time_s", "name", "value")


@dataclass
class Window:
    """Train statistics summed over the steps since the last log line."""

    steps: int = 0
    loss: float = 0.0
    grad_norm: float = 0.0
    clipped: int = 0
    tokens: float = 0.0
    seconds: float = 0.0  # in the updates themselves, not in validation or saving
    lr: float = 0.0

    def add(self, stats: dict, seconds: float) -> None:
        self.steps += 1
        self.loss += stats["loss"]
        self.grad_norm += stats["grad_norm"]
        self.clipped += stats["clipped"]
        self.tokens += stats["tokens"]
        self.seconds += seconds
        self.lr = stats["lr"]

    def summary(self) -> dict[str, float]:
        n = self.steps
        return {
            "train/loss": self.loss / n,
            "train/grad_norm": self.grad_norm / n,  # before clipping
            "train/clip_frac": self.clipped / n,  # fraction of the steps that were clipped
            "train/lr": self.lr,
            "train/tokens_per_s": self.tokens / max(self.seconds, 1e-9),
        }


class MetricsLog:
    """Appends metrics to OUT/metrics.csv (and TensorBoard); use as a context manager."""

    def __init__(
        self, out_dir: str | os.PathLike, *, resume_step: int | None = None, tensorboard=True
    ):
        self.path = Path(out_dir) / CSV_FILE
        if resume_step is not None and self.path.exists():
            _truncate_after(self.path, resume_step)
        else:
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(FIELDS)
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 (closed by close())
        self._csv = csv.writer(self._file)
        self._tb = _summary_writer(Path(out_dir) / "tb", resume_step) if tensorboard else None

    def write(self, step: int, time_s: float, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self._csv.writerow((step, f"{time_s:.3f}", name, repr(float(value))))
            if self._tb is not None:
                self._tb.add_scalar(name, value, step)

    def flush(self) -> None:
        self._file.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NullLog:
    """The log of processes other than the main one: takes everything, writes nothing."""

    def write(self, step, time_s, metrics):
        pass

    def flush(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The rows of a metrics.csv as dicts with int step and float time_s and value."""
    with open(path, newline="") as f:
        return [
            {
                "step": int(r["step"]),
                "time_s": float(r["time_s"]),
                "name": r["name"],
                "value": float(r["value"]),
            }
            for r in csv.DictReader(f)
        ]


def _truncate_after(path: Path, step: int) -> None:
    """Keep the rows up to `step`. A process killed while writing may have left a partial last
    row; the rows up to its checkpoint were flushed whole before it was saved."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f)][1:]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        writer.writerows(r for r in rows if _row_step(r) <= step)
    os.replace(tmp, path)


def _row_step(row: list[str]) -> float:
    """The step of a whole metrics.csv row; infinity (dropped) for a partial one."""
    whole = len(row) == len(FIELDS) and row[0].isdigit() and row[3]
    return int(row[0]) if whole else float("inf")


def _summary_writer(log_dir: Path, resume_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    purge = None if resume_step is None else resume_step + 1  # drop events logged after it
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge)
