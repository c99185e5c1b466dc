"""What the gradient probe costs: a training step (forward + backward) of one rnnkit layer with
the probe off, with it on (a GradientRecord open), and with the kernels as they were before
the probe existed (a git worktree of `--before`, the commit that precedes the probe's).

Each case runs in a fresh process (torch.set_num_threads stated), medians of `--repeat`
timed steps after warm-up, the median over `--processes` processes. Prints one markdown table.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(32, 256, 128, 256), (16, 256, 32, 128), (1, 1000, 16, 64)]  # B, T, I, H
CELLS = ("rnn", "lstm", "gru")
MODES = ("before", "off", "on")

CHILD = r"""
import json, statistics, sys, time
import torch
torch.set_num_threads({threads})
import rnnkit
cell, B, T, I, H, mode, repeat = {args!r}
layer = {{"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}}[cell](I, H)
x = torch.randn(T, B, I, requires_grad=True)
def step():
    out, _ = layer(x)
    out.sum().backward()
if mode == "on":
    from rnnkit.bptt.probe import GradientRecord
    def timed():
        with GradientRecord():
            step()
else:
    timed = step
for _ in range(3):
    timed()
times = []
for _ in range(repeat):
    t0 = time.perf_counter()
    timed()
    times.append(time.perf_counter() - t0)
print(json.dumps({{"ms": 1e3 * statistics.median(times), "file": rnnkit.__file__}}))
"""


def before_tree(ref: str | None) -> Path:
    if ref is None:
        added = subprocess.run(
            ["git", "log", "--diff-filter=A", "--format=%H", "--", "src/rnnkit/bptt/probe.py"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        if not added:
            raise SystemExit("error: no commit adds src/rnnkit/bptt/probe.py; give --before")
        ref = added[-1] + "^"
    tree = Path(tempfile.mkdtemp(prefix="rnnkit-before-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    return tree


def run(case: tuple, a, tree: Path) -> float:
    cell, (B, T, I, H), mode = case
    code = CHILD.format(threads=a.threads, args=(cell, B, T, I, H, mode, a.repeat))
    env = {**os.environ, "PYTHONPATH": str(tree / "src")} if mode == "before" else None
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr)
    result = json.loads(out.stdout)
    expect_before = str(tree) in result["file"]
    if expect_before != (mode == "before"):
        raise SystemExit(f"error: case {case} imported rnnkit from {result['file']}")
    return result["ms"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--processes", type=int, default=3)
    p.add_argument("--before", help="the commit to compare with (default: the probe's parent)")
    a = p.parse_args()
    tree = before_tree(a.before)
    try:
        print(
            f"training step (forward + backward) of one layer, torch.set_num_threads({a.threads}),"
            f" median of {a.repeat} steps, median of {a.processes} fresh processes per case\n"
        )
        print(
            "| cell | shape | before the probe ms | probe off ms | probe on ms | off/before | "
            "on/off |\n|---|---|---:|---:|---:|---:|---:|"
        )
        for cell in CELLS:
            for shape in SHAPES:
                times = {mode: [] for mode in MODES}
                for _ in range(a.processes):  # interleaved, so that drift hits every mode
                    for mode in MODES:
                        times[mode].append(run((cell, shape, mode), a, tree))
                ms = {mode: statistics.median(t) for mode, t in times.items()}
                B, T, I, H = shape
                print(
                    f"| {cell} | B{B} T{T} I{I} H{H} | {ms['before']:.2f} | {ms['off']:.2f} | "
                    f"{ms['on']:.2f} | {ms['off'] / ms['before']:.3f} | "
                    f"{ms['on'] / ms['off']:.3f} |",
                    flush=True,
                )
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)


if __name__ == "__main__":
    main()
