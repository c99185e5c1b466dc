"""The attention of one translation drawn as a heat map PNG: target tokens down, source tokens
across, the weight a_tj of each pair (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor


def plot_attention(
    path: str | Path, source: list[str], target: list[str], weights: Tensor, title: str = ""
) -> Path:
    """Write the heat map of `weights` (len(target), len(source)) to `path` and return it."""
    if tuple(weights.shape) != (len(target), len(source)):
        raise ValueError(
            f"weights must be (target {len(target)}, source {len(source)}), "
            f"got {tuple(weights.shape)}"
        )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError(
            "attention plots need matplotlib: pip install 'rnnkit[translate]'"
        ) from None
    size = (max(4.0, 0.45 * len(source) + 2), max(3.0, 0.4 * len(target) + 1.5))
    fig, ax = plt.subplots(figsize=size, dpi=120)
    image = ax.imshow(weights.float().numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=60, ha="right")
    ax.set_yticks(range(len(target)), target)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
