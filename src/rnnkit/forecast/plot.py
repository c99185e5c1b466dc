"""A forecast drawn as a PNG: the recent history, the point forecast, its interval and, when
known, the truth (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_forecast(
    path: str | Path,
    history: tuple[np.ndarray, np.ndarray],  # (times (N,), values (N,))
    forecast: tuple[np.ndarray, np.ndarray],  # (times (H,), point forecast (H,))
    *,
    interval: tuple[np.ndarray, np.ndarray, str] | None = None,  # (lower, upper, label)
    truth: np.ndarray | None = None,  # (H,) the values that came
    title: str = "",
) -> Path:
    """Write the figure to `path` (PNG) and return the path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError(
            "plots need matplotlib: pip install 'rnnkit[forecast]' (or leave out --plot)"
        ) from None
    fig, ax = plt.subplots(figsize=(10, 4), dpi=120)
    ax.plot(history[0], history[1], color="0.3", lw=1.2, label="history")
    if interval is not None:
        lower, upper, label = interval
        ax.fill_between(forecast[0], lower, upper, color="C0", alpha=0.25, label=label)
    if truth is not None:
        ax.plot(forecast[0], truth, color="C2", lw=1.2, label="truth")
    ax.plot(forecast[0], forecast[1], color="C0", lw=1.8, label="forecast")
    ax.axvline(forecast[0][0], color="0.6", ls=":", lw=1)
    ax.set_title(title)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
