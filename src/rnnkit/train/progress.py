"""What a training run shows while it runs: the progress bar, the time left and the metrics
as a log line."""

import contextlib
import logging
import sys

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rnnkit.train.config import TrainConfig


@contextlib.contextmanager
def progress_bar(cfg: TrainConfig, main: bool, step: int):
    """The progress bar from `step` (when stderr is a terminal, on the main process); while it
    shows, rnnkit's log lines are written through it (tqdm.write), each on a line of its own
    above the bar."""
    show = cfg.progress and main and sys.stderr.isatty()
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not show, unit="step", dynamic_ncols=True)
    redirect = logging_redirect_tqdm([logging.getLogger("rnnkit")]) if show else None
    with bar, redirect or contextlib.nullcontext():
        yield bar


def time_left(max_time: float, elapsed: float) -> str:
    """The training time left, as the bar shows it: whole seconds, never below 0 (nor -0)."""
    return f"{max(0.0, max_time - elapsed):.0f}s"


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
