"""Speed and memory of minGRU / minLSTM (scan and loop) against the GRU / LSTM: one markdown table.

This script owns the parallel-recurrence benchmark: what is timed, how, and how it is reported.

- train: forward + backward of output.sum() + h_n.sum() (input requires grad); infer: forward
  under torch.no_grad() in eval mode. One layer, batch B = 8, input size I = H, (T, B, I) input.
- implementations: rnnkit.MinGRU impl="scan" and impl="loop", rnnkit.GRU (hand-written BPTT)
  and torch.nn.GRU; with --cell minlstm: rnnkit.MinLSTM, rnnkit.LSTM and torch.nn.LSTM.
- peak memory: each (case, implementation, mode) runs in a fresh process, which builds the
  layer and input, warms up on 8 steps, reads its peak RSS (getrusage ru_maxrss), runs the
  case once and reports the growth of the peak RSS: the memory the case needed beyond its
  inputs, allocator caching included. Then it times the case.
- a crossover line per H: the smallest T at which MinGRU's scan trains faster than torch.nn.

A fresh process per case also avoids the OpenMP slow state of docs/bptt.md (j) (a trap when you
benchmark); the threads are stated (--threads, default 2) and set in every child.

    python benchmarks/bench_parallel.py --quick               # a smoke test, about a minute
    python benchmarks/bench_parallel.py                       # full grid: quiet machine, long
    python benchmarks/bench_parallel.py --cell minlstm --threads 1
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import rnnkit
from rnnkit.minrnn import MinGRU, MinLSTM

B = 8
TS, HS = (256, 1024, 4096, 16384), (64, 256, 512)
QUICK_TS, QUICK_HS = (256, 1024), (64, 256)
IMPLS = ("scan", "loop", "rnnkit", "torch")  # the last one is the baseline of the ratios
MODES = ("train", "infer")
CELLS = {  # --cell: (min layer, rnnkit layer, torch layer, names)
    "mingru": (MinGRU, rnnkit.GRU, torch.nn.GRU, ("MinGRU", "rnnkit.GRU", "torch.nn.GRU")),
    "minlstm": (MinLSTM, rnnkit.LSTM, torch.nn.LSTM, ("MinLSTM", "rnnkit.LSTM", "torch.nn.LSTM")),
}

# ---- child: one (T, H, implementation, mode) in this process ----------------------------------


def make_layer(cell: str, impl: str, H: int) -> torch.nn.Module:
    torch.manual_seed(0)
    mini, ours, theirs, _ = CELLS[cell]
    if impl in ("scan", "loop"):
        return mini(H, H, impl=impl)
    return (ours if impl == "rnnkit" else theirs)(H, H)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_case(case: dict) -> dict:
    torch.set_num_threads(case["threads"])
    T, H, mode = case["T"], case["H"], case["mode"]
    layer = make_layer(case["cell"], case["impl"], H)
    torch.manual_seed(1)
    x = torch.randn(T, B, H, requires_grad=mode == "train")
    if mode == "train":

        def step(inp=x):
            out, hn = layer(inp)
            h = hn[0] if isinstance(hn, tuple) else hn
            (out.sum() + h.sum()).backward()
            layer.zero_grad(set_to_none=True)
            inp.grad = None

    else:
        layer.eval()

        def step(inp=x):
            with torch.no_grad():
                layer(inp)

    step(x[:8].detach().requires_grad_(mode == "train"))  # libraries initialised, caches warm
    before = peak_rss_mib()
    t0 = time.perf_counter()
    step()
    first = (time.perf_counter() - t0) * 1e3
    peak = peak_rss_mib() - before
    times = [first]  # a case that long is timed by this run alone
    if first < case["long_ms"]:
        times = []
        for _ in range(case["reps"]):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    return {"ms": statistics.median(times), "runs": len(times), "peak_mib": peak}


# ---- parent: plan, spawn, report -----------------------------------------------------------


def plan(args) -> list[dict]:
    Ts, Hs = (QUICK_TS, QUICK_HS) if args.quick else (TS, HS)
    common = {"cell": args.cell, "threads": args.threads, "reps": args.reps}
    common["long_ms"] = args.long_ms
    return [
        {**common, "T": T, "H": H, "impl": impl, "mode": mode}
        for H in Hs
        for T in Ts
        for impl in IMPLS
        for mode in MODES
    ]


def child_env(args) -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    return env


def spawn(case: dict, env: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", json.dumps(case)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {**case, "error": f"rc={proc.returncode}: {tail}"}
    return {**case, **json.loads(lines[-1])}


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "error"
    return f"{ms:.{0 if ms >= 100 else 1 if ms >= 10 else 2}f}"


def table(args, results: list[dict]) -> list[str]:
    names = dict(
        zip(
            IMPLS, [*(f"{CELLS[args.cell][3][0]} {i}" for i in IMPLS[:2]), *CELLS[args.cell][3][1:]]
        )
    )
    got = {(r["T"], r["H"], r["impl"], r["mode"]): r for r in results}
    lines = [
        "| H | T | implementation | train ms | train vs torch | train peak MiB "
        "| infer ms | infer vs torch | infer peak MiB |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for H, T in sorted({(r["H"], r["T"]) for r in results}):
        for impl in IMPLS:
            cells = [str(H), str(T), names[impl]]
            for mode in MODES:
                r, base = got.get((T, H, impl, mode)), got.get((T, H, "torch", mode))
                ms = None if r is None or "error" in r else r["ms"]
                ref = None if base is None or "error" in base else base["ms"]
                ratio = f"{ref / ms:.2f}x" if ms and ref else "-"
                peak = "-" if ms is None else f"{r['peak_mib']:.0f}"
                cells += [fmt_ms(ms), ratio, peak]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def crossovers(args, results: list[dict]) -> list[str]:
    """Per H: the smallest T where the scan's training step beats torch.nn's."""
    ms = {(r["T"], r["H"], r["impl"]): r.get("ms") for r in results if r["mode"] == "train"}
    lines = []
    for H in sorted({r["H"] for r in results}):
        Ts = sorted(T for (T, h, impl) in ms if h == H and impl == "torch")
        win = [T for T in Ts if ms.get((T, H, "scan")) and ms.get((T, H, "torch"))]
        win = [T for T in win if ms[(T, H, "scan")] < ms[(T, H, "torch")]]
        base = CELLS[args.cell][3][2]
        if win:
            text = f"T = {win[0]}" + (" (the shortest T run)" if win[0] == Ts[0] else "")
        else:
            text = f"none up to T = {max(Ts)}" if Ts else "no data"
        lines.append(f"- H = {H}: the scan trains faster than {base} from {text}")
    return lines


def header(args) -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"# {CELLS[args.cell][3][0]}: scan and loop against the GRU/LSTM "
        f"({'quick' if args.quick else 'full'} run)",
        "",
        f"- torch {torch.__version__}, Python {platform.python_version()}, CPU: {cpu} "
        f"({os.cpu_count()} logical CPUs); torch.set_num_threads({args.threads}) and "
        f"OMP_NUM_THREADS={args.threads} in every child",
        f"- B = {B}, I = H, one layer, fp32, (T, B, I) input; median of {args.reps} timed runs "
        f"after one run that also measures memory (that run alone where it took over "
        f"{args.long_ms / 1000:.0f} s); "
        "each (case, implementation, mode) in a fresh process",
        "- train = forward + backward of output.sum() + h_n.sum(); infer = no_grad forward, "
        "eval mode; 'vs torch' = torch.nn time / this time (> 1: faster than torch.nn)",
        "- peak MiB = growth of the process's peak RSS (getrusage ru_maxrss) over one run of "
        "the case, after building its input and an 8-step warm-up",
        "",
    ]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--cell", choices=tuple(CELLS), default="mingru")
    p.add_argument("--quick", action="store_true", help=f"T in {QUICK_TS}, H in {QUICK_HS}")
    p.add_argument("--reps", type=int, default=None, help="timed runs (default 5, quick 3)")
    p.add_argument("--long-ms", type=float, default=20_000, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help="save the raw results here")
    p.add_argument("--case", help=argparse.SUPPRESS)  # child mode: one case as JSON
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    args.reps = args.reps or (3 if args.quick else 5)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    env, cases, results = child_env(args), plan(args), []
    for i, case in enumerate(cases, 1):
        label = f"T{case['T']} H{case['H']} {case['impl']} {case['mode']}"
        print(f"[{i}/{len(cases)}] {label}", file=sys.stderr, flush=True)
        results.append(spawn(case, env))
    notes = [
        f"- error in T{r['T']} H{r['H']} {r['impl']} {r['mode']}: {r['error']}"
        for r in results
        if "error" in r
    ]
    lines = header(args) + table(args, results) + [""] + crossovers(args, results)
    print("\n".join(lines + ([""] + notes if notes else [])))
    if args.json:
        meta = {k: v for k, v in vars(args).items() if k not in ("case", "json")}
        args.json.write_text(json.dumps({"args": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
