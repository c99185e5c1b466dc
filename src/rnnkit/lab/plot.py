"""The gradient lab's figure: || dL/dh_t || against t (log scale), one line per cell, and
beside it the norm of the state Jacobian product || ds_t / ds_0 ||. matplotlib is an
optional extra."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_gradients(path: str | Path, curves: dict[str, dict], title: str = "") -> Path:
    """curves: {label: {"grad": (T,) array, "jacobian": (lags, norms) arrays or None}}."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("plots need matplotlib: pip install 'rnnkit[plot]'") from None
    with_jacobian = any(c.get("jacobian") is not None for c in curves.values())
    fig, axes = plt.subplots(1, 2 if with_jacobian else 1, figsize=(12 if with_jacobian else 7, 4))
    axes = np.atleast_1d(axes)
    for k, (label, c) in enumerate(curves.items()):
        grad = np.asarray(c["grad"], dtype=np.float64)
        axes[0].semilogy(np.arange(1, len(grad) + 1), grad, color=f"C{k}", lw=1.5, label=label)
        if with_jacobian and c.get("jacobian") is not None:
            lags, jac = (np.asarray(a, dtype=np.float64) for a in c["jacobian"])
            axes[1].semilogy(lags, jac, color=f"C{k}", lw=1.5, marker=".", label=label)
    axes[0].set_xlabel("time step t")
    axes[0].set_ylabel("|| dL / dh_t ||")
    axes[0].set_title("gradient reaching each step (loss at the last step)")
    if with_jacobian:
        axes[1].set_xlabel("lag t")
        axes[1].set_ylabel("|| ds_t / ds_0 ||_2")
        axes[1].set_title("product of the step Jacobians")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
