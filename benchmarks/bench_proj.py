"""An LSTM with projections (proj_size = P) against the plain LSTM of the same hidden size:
one training step on the CPU, rnnkit and torch.nn, one markdown table.

h_t = W_hr (o * tanh(c_t)) is P wide, so the recurrent products per row and step fall from
4H^2 to 4HP + PH (5/16 at P = H/4, docs/bptt.md "LSTM with a projection"); this measures what
that buys a whole training step (forward + backward of output.sum() + h_n.sum(), the input
requiring grad), the pointwise work over H and the input projection being unchanged.

Each (implementation, proj_size) runs in fresh child processes (`--case <json>`, one JSON line
back; docs/bptt.md (j): a process can fall into OpenMP's slow state for its whole life); the
figure is the median over processes of each process's median. Threads and the OpenMP
environment are stated, the CPU printed.

    python benchmarks/bench_proj.py                    # B32 T256 I128 H256, P = 0 and H/4
    python benchmarks/bench_proj.py --threads 1 --processes 5
    python benchmarks/bench_proj.py --omp-wait-policy passive   # see docs/bptt.md (j)
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


def run_case(case: dict) -> dict:
    """Milliseconds per training step of one layer, in this process."""
    torch.set_num_threads(case["threads"])
    B, T, I, H = case["shape"]
    torch.manual_seed(0)
    module = torch.nn if case["impl"] == "torch.nn" else rnnkit
    layer = module.LSTM(I, H, proj_size=case["proj_size"])
    x = torch.randn(T, B, I, requires_grad=True)
    step, setup = train_step(lambda: layer(x), layer, x)
    times = time_ms(step, case["warmup"], case["reps"], setup)
    loops = "C++" if native.load() is not None else "Python"
    return {"times": times, "threads": torch.get_num_threads(), "loops": loops}


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
    return {**ok[0], "ms": statistics.median(medians), "lo": min(medians), "hi": max(medians)}


def report(args, env: dict, results: dict) -> None:
    B, T, I, H = SHAPE
    first = next((r for r in results.values() if "error" not in r), {})
    omp = ", ".join(f"{k}={env.get(k, 'unset')}" for k in OMP_KEYS)
    print(f"# LSTM training step, proj_size = H/4 against none: B{B} T{T} I{I} H{H}, fp32")
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
    print("| implementation | proj_size | ms per step | [min, max] | plain / projected |")
    print("|---|---:|---:|---:|---:|")
    for impl in ("rnnkit", "torch.nn"):
        plain = results[(impl, 0)].get("ms")
        for P in (0, H // 4):
            r = results[(impl, P)]
            if "error" in r:
                print(f"| {impl} | {P} | error: {r['error']} | | |")
                continue
            speedup = f"{plain / r['ms']:.2f}x" if plain and P else ""
            print(f"| {impl} | {P} | {r['ms']:.1f} | [{r['lo']:.1f}, {r['hi']:.1f}] | {speedup} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--processes", type=int, default=3, help="fresh processes per case")
    p.add_argument("--reps", type=int, default=7, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=2, help="warm-up steps per process")
    p.add_argument("--omp-wait-policy", choices=("active", "passive"), help="default: inherit")
    p.add_argument("--case", help=argparse.SUPPRESS)  # child mode: one case as JSON
    args = p.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    if args.omp_wait_policy:
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    common = {"threads": args.threads, "reps": args.reps, "warmup": args.warmup, "shape": SHAPE}
    results = {}
    for impl in ("rnnkit", "torch.nn"):
        for P in (0, SHAPE[3] // 4):
            print(f"{impl} proj_size={P}", file=sys.stderr, flush=True)
            case = {**common, "impl": impl, "proj_size": P}
            results[(impl, P)] = measure(case, env, args.processes)
    report(args, env, results)


if __name__ == "__main__":
    main()
