"""Plot a textgen run's validation (and training) loss against wall time, from its metrics.csv.

    python benchmarks/plot_textgen.py runs/shakespeare --out loss_vs_time.png

Needs matplotlib (`pip install -e '.[plot]'`). Prints the best validation loss and when it was
reached, and the first time the validation loss went below --target (default 1.50 nats/char).
"""

import argparse
import csv
from pathlib import Path


def read(path: Path) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            series.setdefault(row["name"], []).append((float(row["time_s"]), float(row["value"])))
    return series


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a run directory of rnnkit textgen train")
    p.add_argument("--out", type=Path, default=Path("loss_vs_time.png"))
    p.add_argument("--target", type=float, default=1.50)
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read(args.run / "metrics.csv")
    valid = series.get("valid/loss", [])
    train = series.get("train/loss", [])
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot([t / 60 for t, _ in train], [v for _, v in train], lw=0.8, alpha=0.6, label="train")
    ax.plot([t / 60 for t, _ in valid], [v for _, v in valid], "o-", label="validation")
    ax.axhline(args.target, color="grey", ls="--", lw=0.8, label=f"{args.target} nats/char")
    ax.set(xlabel="wall time (minutes)", ylabel="loss (nats/char)", title=str(args.run.name))
    ax.set_ylim(top=min(3.0, max(v for _, v in valid + train)))
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    best_t, best = min(valid, key=lambda tv: tv[1])
    print(f"best validation loss {best:.4f} nats/char at {best_t / 60:.1f} min")
    hit = next(((t, v) for t, v in valid if v <= args.target), None)
    if hit:
        print(f"first validation loss <= {args.target}: {hit[1]:.4f} at {hit[0] / 60:.1f} min")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
