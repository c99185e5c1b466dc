"""ETTh2 univariate forecasting (Informer's convention) with `rnnkit forecast train`.

For each horizon, runs `rnnkit forecast train --data ETTh2.csv --target OT ...` in a fresh
process with the stated thread count: train rows [0, 8640), validation [8640, 11520), test
[11520, 14400) (validation and test windows start `lookback` rows earlier), z-score on the
training rows, the weights of the best validation MSE backtested over every stride-1 test
window. Prints one markdown table: test MSE / MAE on the standardised scale for the model and
the naive, seasonal-naive (24 h) and linear baselines, the published LSTMa and Informer
figures (Informer Table 1, univariate ETTh2), and each horizon's training wall time.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "etth2" / "ETTh2.csv"
PUBLISHED = {  # horizon: (LSTMa MSE, LSTMa MAE, Informer MSE, Informer MAE)
    24: (0.155, 0.307, 0.093, 0.240),
    48: (0.190, 0.348, 0.155, 0.314),
    168: (0.385, 0.514, 0.232, 0.389),
    336: (0.558, 0.606, 0.263, 0.417),
    720: (0.640, 0.681, 0.277, 0.431),
}
SPLIT = ["--train-end", "8640", "--valid-end", "11520", "--test-end", "14400"]
MODEL = [  # the configuration reported in the README
    "--arch", "direct", "--cell", "gru", "--hidden", "64", "--layers", "1",
    "--batch", "64", "--lr", "0.001",
]  # fmt: skip


def run_one(horizon: int, a: argparse.Namespace) -> dict:
    out = Path(a.out) / f"h{horizon}"
    cmd = [
        sys.executable, "-m", "rnnkit", "forecast", "train", "--data", str(a.data),
        "--time-column", "date", "--target", "OT", *SPLIT, "--lookback", str(a.lookback),
        "--horizon", str(horizon), *MODEL, "--epochs", str(a.epochs), "--seed", str(a.seed),
        *a.extra, "--out", str(out), "--force", "--json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    print(f"$ OMP_NUM_THREADS={a.threads} {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(done.returncode)
    s = json.loads(done.stdout)
    s["wall"] = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(s, indent=1))
    return s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA), help="ETTh2.csv (default: ../shared/data)")
    p.add_argument("--horizons", default="24,48,168,336,720")
    p.add_argument("--lookback", type=int, default=336)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/etth2", help="run directories, one per horizon")
    p.add_argument("extra", nargs="*", help="more `forecast train` options, after --")
    a = p.parse_args()
    print(
        f"ETTh2 univariate OT, lookback {a.lookback}, {' '.join(MODEL + a.extra)}, "
        f"{a.epochs} epochs, OMP_NUM_THREADS={a.threads}; MSE / MAE on the standardised scale\n"
    )
    print(
        "| horizon | rnnkit | naive | seasonal naive | linear | LSTMa | Informer | "
        "beats LSTMa | beats Informer | training time |\n"
        "|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|---:|",
        flush=True,
    )
    for horizon in (int(h) for h in a.horizons.split(",")):
        s = run_one(horizon, a)
        t = s["test"]

        def cell(name, t=t):
            return f"{t[name]['scaled']['mse']:.4f} / {t[name]['scaled']['mae']:.4f}"

        lstma_mse, lstma_mae, inf_mse, inf_mae = PUBLISHED.get(horizon, (None,) * 4)
        mse = t["model"]["scaled"]["mse"]
        published = (
            (f"{lstma_mse:.3f} / {lstma_mae:.3f}", f"{inf_mse:.3f} / {inf_mae:.3f}")
            if lstma_mse is not None
            else ("-", "-")
        )
        beats = (
            ("yes" if mse < lstma_mse else "no", "yes" if mse < inf_mse else "no")
            if lstma_mse is not None
            else ("-", "-")
        )
        print(
            f"| {horizon} | {cell('model')} | {cell('naive')} | {cell('seasonal_naive')} | "
            f"{cell('linear')} | {published[0]} | {published[1]} | {beats[0]} | {beats[1]} | "
            f"{s['seconds'] / 60:.1f} min ({s['epochs']:.0f} epochs) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
