"""IMDB sentiment (official 25k train / 25k test) trained from scratch with `rnnkit classify`.

Runs `rnnkit classify train --train aclImdb/train --test aclImdb/test ...` in a fresh process
with the stated thread count (validation: a seeded, stratified 10 % of train; the test set is
evaluated once, with the weights of the best validation accuracy) and prints one markdown table
row: test accuracy, macro-F1, the best validation accuracy, epochs and the training wall time.
Reference: a plain LSTM trained from scratch, 86.5 % (Dai & Le 2015); NBSVM-bi 91.2 %.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from imdb import unpacked

MODEL = [  # the configuration reported in the README
    "--cell", "gru", "--bidirectional", "--embed", "128", "--hidden", "128",
    "--pooling", "max", "--dropout", "0.4", "--max-tokens", "400", "--truncate", "head+tail",
    "--max-vocab", "30000", "--batch", "64", "--lr", "0.002",
]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--out", default="runs/imdb", help="the run directory (replaced)")
    p.add_argument("extra", nargs="*", help="more `classify train` options, after --")
    a = p.parse_args()
    data = unpacked()
    cmd = [
        sys.executable, "-m", "rnnkit", "classify", "train",
        "--train", str(data / "train"), "--test", str(data / "test"),
        *MODEL, "--epochs", str(a.epochs), *a.extra, "--out", a.out, "--force", "--json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    print(f"$ OMP_NUM_THREADS={a.threads} {' '.join(cmd[1:])}", file=sys.stderr)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(done.returncode)
    s = json.loads(done.stdout)
    Path(a.out, "summary.json").write_text(json.dumps(s, indent=1))
    t = s["test"]
    print(
        "| model | test accuracy | macro-F1 | best valid accuracy | epochs | training time | "
        "wall time (all) |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    print(
        f"| {' '.join(MODEL[:6] + a.extra)} | {t['accuracy']:.2%} | {t['macro_f1']:.4f} | "
        f"{s['best_valid_accuracy']:.2%} | {s['epochs']:.1f} | {s['seconds'] / 60:.1f} min | "
        f"{wall / 60:.1f} min |"
    )


if __name__ == "__main__":
    main()
