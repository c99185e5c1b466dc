"""What each regulariser costs a training step: rnnkit.LSTM and rnnkit.GRU at B32 T256 I128
H256, plain against each option (regularisers.py, and layer_norm=True), on the CPU, one
markdown table with the ratio to the plain layer (issue 20's target: at most 1.15x; Keras'
recurrent dropout, which leaves its fast path, about 25x).

A step is forward + backward of output.sum() + h_n.sum(), the input requiring grad, the layer
in training mode (masks drawn every call, as in training). Each (cell, option) runs in fresh
child processes (`--case <json>`, one JSON line back; docs/bptt.md (j)), each of which times
the plain layer and the option's layer (the same weights) in turn, step by step (ABAB...), so
that both see the same machine: on shared cores the load drifts by more than the costs being
measured. The ratio is the median over processes of each process's median(option) /
median(plain); the times are the median of the processes' medians. Threads stated, CPU
printed.

    python benchmarks/bench_regularisers.py                  # 2 threads, 3 processes per case
    python benchmarks/bench_regularisers.py --threads 1 --processes 5
    python benchmarks/bench_regularisers.py --only plain layer_norm --shape 4 8 8 16  # smoke
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from bench_layers import OMP_KEYS, cpu_name, time_ms, train_step

import rnnkit
from rnnkit.bptt import native

SHAPE = (32, 256, 128, 256)  # B, T, I, H
# option id -> the layer's keywords (p = 0.25 each; the cost does not depend on p)
OPTIONS = {
    "plain": {},  # against itself: the noise floor of the ratio
    "weight_drop": {"weight_drop": 0.25},
    "dropout_input+output": {"dropout_input": 0.25, "dropout_output": 0.25},
    "recurrent_dropout": {"recurrent_dropout": 0.25},
    "zoneout": {"zoneout": 0.25},
    "layer_norm": {"layer_norm": True},  # not a mask: LayerNorm in the cells (layer_norm.py)
    "all of them": {
        "weight_drop": 0.25,
        "dropout_input": 0.25,
        "dropout_output": 0.25,
        "recurrent_dropout": 0.25,
        "zoneout": 0.25,
    },
}


def run_case(case: dict) -> dict:
    """Milliseconds per training step of the plain layer and of the option's, in turn."""
    torch.set_num_threads(case["threads"])
    B, T, I, H = case["shape"]
    x = torch.randn(T, B, I, requires_grad=True)
    steps = []
    for option in ("plain", case["option"]):
        torch.manual_seed(0)
        layer = getattr(rnnkit, case["cell"])(I, H, **OPTIONS[option]).train()
        steps.append(train_step(lambda layer=layer: layer(x), layer, x))
    times = [[], []]
    for rep in range(case["warmup"] + case["reps"]):
        for k in (0, 1) if rep % 2 else (1, 0):  # alternate which goes first
            step, setup = steps[k]
            t = time_ms(step, 0, 1, setup)[0]
            if rep >= case["warmup"]:
                times[k].append(t)
    loops = "C++" if native.load() is not None else "Python"
    return {"plain": times[0], "times": times[1], "threads": torch.get_num_threads(),
            "loops": loops}  # fmt: skip


def spawn(case: dict, env: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", json.dumps(case)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def measure(case: dict, env: dict, processes: int) -> dict:
    """The case in `processes` fresh processes: the median of their medians, and the range."""
    runs = [spawn(case, env) for _ in range(processes)]
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    medians = [statistics.median(r["times"]) for r in ok]
    ratios = [statistics.median(r["times"]) / statistics.median(r["plain"]) for r in ok]
    plain = statistics.median(statistics.median(r["plain"]) for r in ok)
    return {**ok[0], "ms": statistics.median(medians), "lo": min(medians), "hi": max(medians),
            "plain_ms": plain, "ratio": statistics.median(ratios), "ratios": ratios}  # fmt: skip


def report(args, env: dict, results: dict) -> None:
    B, T, I, H = args.shape
    first = next((r for r in results.values() if "error" not in r), {})
    omp = ", ".join(f"{k}={env.get(k, 'unset')}" for k in OMP_KEYS)
    print(
        f"# Regularisers' cost, a training step: B{B} T{T} I{I} H{H}, fp32, p = 0.25 "
        "(layer_norm: LayerNorm in the cells)"
    )
    print()
    print(f"- CPU: {cpu_name()} ({os.cpu_count()} logical CPUs); torch {torch.__version__}")
    print(
        f"- threads: torch.set_num_threads({args.threads}) in every child (got "
        f"{first.get('threads', '?')}); child env: {omp}; rnnkit time loops: "
        f"{first.get('loops', '?')}"
    )
    print(
        f"- median of {args.reps} timed steps after {args.warmup} warm-up, in each of "
        f"{args.processes} fresh processes; the figure is the median of the processes' "
        "medians, [min, max] of them in brackets"
    )
    print()
    print("| cell | option | ms per step | [min, max] | plain, same processes | / plain "
          "| [per process] |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---|")
    for cell in args.cells:
        for option in args.options:
            r = results[(cell, option)]
            if "error" in r:
                print(f"| {cell} | {option} | error: {r['error']} | | | | |")
                continue
            span = f"[{r['lo']:.1f}, {r['hi']:.1f}]"
            each = ", ".join(f"{q:.2f}" for q in r["ratios"])
            print(f"| {cell} | {option} | {r['ms']:.1f} | {span} | {r['plain_ms']:.1f} "
                  f"| {r['ratio']:.2f}x | {each} |")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--processes", type=int, default=3, help="fresh processes per case")
    p.add_argument("--reps", type=int, default=7, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=2, help="warm-up steps per process")
    p.add_argument("--cells", nargs="+", default=["LSTM", "GRU"], choices=["LSTM", "GRU", "RNN"])
    p.add_argument("--shape", type=int, nargs=4, default=list(SHAPE), metavar=("B", "T", "I", "H"),
                   help="the layers' sizes (default: %(default)s)")  # fmt: skip
    p.add_argument("--only", nargs="+", choices=list(OPTIONS), help="these options only")
    p.add_argument("--case", help=argparse.SUPPRESS)  # child mode: one case as JSON
    args = p.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    common = {"threads": args.threads, "reps": args.reps, "warmup": args.warmup,
              "shape": args.shape}  # fmt: skip
    args.options = args.only or list(OPTIONS)
    results = {}
    for cell in args.cells:
        for option in args.options:
            print(f"{cell} {option}", file=sys.stderr, flush=True)
            case = {**common, "cell": cell, "option": option}
            results[(cell, option)] = measure(case, env, args.processes)
    report(args, env, results)


if __name__ == "__main__":
    main()
