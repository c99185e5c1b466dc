"""How a training step's time and peak memory grow with the work: rnnkit against torch.nn.

A training step (forward, then backward of output.sum() + h_n.sum(), input requiring grad) of
one LSTM or GRU layer, swept over the sequence length T (H fixed) and over the hidden size H
(T fixed). Every (cell, implementation, size) runs in a fresh child process (`--case`), so
one process caught in the OpenMP slow state (docs/bptt.md (j)) or one allocator's cache does
not leak into the next case. Peak memory is what the step adds to the process's peak: on the
CPU the rise of the resident-set high-water mark (getrusage ru_maxrss) over one step, taken
after a 2-step warm-up that loads the libraries; on CUDA torch.cuda.max_memory_allocated minus
what was allocated before.

Prints a markdown table (CPU, threads and torch stated) and writes a PNG of four panels (time
and memory against T, time and memory against H) and the raw results as JSON.

    python benchmarks/plot_scaling.py                       # docs/results/scaling.png
    python benchmarks/plot_scaling.py --quick               # a smoke test: 2 sizes per sweep
    python benchmarks/plot_scaling.py --threads 1 --out /tmp/scaling.png

Needs matplotlib (`pip install -e '.[plot]'`).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from bench_layers import cpu_name, spawn

import rnnkit

CELLS = ("lstm", "gru")
IMPLS = ("rnnkit", "torch.nn")
B, I = 16, 128  # batch and input size of every case
T_SWEEP = (128, 256, 512, 1024, 2048, 4096, 8192)  # at H = H_FIXED
H_SWEEP = (64, 128, 256, 512, 1024)  # at T = T_FIXED
H_FIXED, T_FIXED = 256, 256
QUICK = {"T": (128, 512), "H": (64, 256)}
PANELS = (("ms", "training step, ms"), ("peak_mib", "peak MiB"))

# ---- child: one case in this process ------------------------------------------------------


def peak_rss_mib() -> float:
    """The process's resident-set high-water mark so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case: dict) -> dict:
    """{"ms": [...], "peak_mib": ...} of one training step of the case's layer."""
    torch.set_num_threads(case["threads"])
    device = torch.device(case["device"])
    torch.manual_seed(0)
    module = rnnkit if case["impl"] == "rnnkit" else torch.nn
    layer = {"lstm": module.LSTM, "gru": module.GRU}[case["cell"]](I, case["H"]).to(device)
    x = torch.randn(case["T"], B, I, device=device, requires_grad=True)

    def step(x=x):
        out, hn = layer(x)
        h = hn[0] if isinstance(hn, tuple) else hn
        (out.sum() + h.sum()).backward()
        layer.zero_grad(set_to_none=True)
        x.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step(x[:2].detach().requires_grad_())  # libraries, threads and the C++ loops loaded
    if device.type == "cuda":
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    else:
        before = peak_rss_mib()
        step()
        peak = peak_rss_mib() - before
    times = []
    for _ in range(case["reps"]):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"ms": times, "peak_mib": peak}


# ---- parent: plan, spawn, report ----------------------------------------------------------


def plan(args) -> list[dict]:
    """Every (sweep, cell, implementation, size) to run, each a JSON-able child case."""
    t_sweep, h_sweep = (QUICK["T"], QUICK["H"]) if args.quick else (T_SWEEP, H_SWEEP)
    common = {"threads": args.threads, "reps": args.reps, "device": args.device}
    sizes = [("T", T, H_FIXED) for T in t_sweep] + [("H", T_FIXED, H) for H in h_sweep]
    cases = [
        {"sweep": sweep, "T": T, "H": H, "cell": cell, "impl": impl}
        for cell in CELLS
        for impl in IMPLS
        for sweep, T, H in sizes
    ]
    return [{**common, **c} for c in cases]


def table(args, results: list[dict]) -> str:
    """The markdown report: setting, then one row per (sweep, cell, size)."""
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU: {cpu_name()}"
    lines = [
        f"# Training-step scaling, rnnkit {rnnkit.__version__} vs torch.nn",
        "",
        f"- {where}; torch {torch.__version__}; torch.set_num_threads({args.threads}) in "
        f"fresh child processes (OMP_NUM_THREADS={args.threads}); B={B}, I={I}, fp32, 1 layer; "
        f"median of {args.reps} steps after one untimed step; T sweep at H={H_FIXED}, "
        f"H sweep at T={T_FIXED}; peak = what one step adds to the process's peak memory",
        "",
        "| sweep | cell | T | H | rnnkit ms | torch.nn ms | torch/rnnkit "
        "| rnnkit peak MiB | torch.nn peak MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keyed = {(r["sweep"], r["cell"], r["T"], r["H"], r["impl"]): r for r in results}
    for (sweep, cell, T, H, impl), r in keyed.items():
        if impl != "rnnkit":
            continue
        t = keyed.get((sweep, cell, T, H, "torch.nn"), {})
        a, b = ms(r), ms(t)
        ratio = f"{b / a:.2f}x" if a and b else "-"
        lines.append(
            f"| {sweep} | {cell.upper()} | {T} | {H} | {fmt(a)} | {fmt(b)} | {ratio} "
            f"| {fmt(r.get('peak_mib'))} | {fmt(t.get('peak_mib'))} |"
        )
    lines += [f"- error in {r['cell']} {r['impl']} T{r['T']} H{r['H']}: {r['error']}"
              for r in results if "error" in r]  # fmt: skip
    return "\n".join(lines)


def ms(result: dict) -> float | None:
    return statistics.median(result["ms"]) if result and "ms" in result else None


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def plot(results: list[dict], out: Path, title: str) -> None:
    """Four panels: time and peak memory against T, then against H; log-log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    for col, sweep in enumerate(("T", "H")):
        for rowi, (key, ylabel) in enumerate(
            (("ms", "training step, ms"), ("peak_mib", "peak MiB"))
        ):
            ax = axes[rowi][col]
            for cell in CELLS:
                for impl, style in zip(IMPLS, ("-", "--")):
                    pts = [(r[sweep], ms(r) if key == "ms" else r.get(key)) for r in results
                           if r["sweep"] == sweep and r["cell"] == cell and r["impl"] == impl
                           and "error" not in r]  # fmt: skip
                    pts = [(a, b) for a, b in pts if b and b > 0]
                    if pts:
                        ax.plot(*zip(*pts), style, marker="o", label=f"{impl} {cell.upper()}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            fixed = f"H={H_FIXED}" if sweep == "T" else f"T={T_FIXED}"
            ax.set_xlabel(f"{sweep} ({fixed}, B={B}, I={I})")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--reps", type=int, default=3, help="timed steps per case (default 3)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu")
    p.add_argument("--quick", action="store_true", help="two sizes per sweep")
    p.add_argument("--out", type=Path, default=Path("docs/results/scaling.png"), help="the PNG")
    p.add_argument("--json", type=Path, help="raw results (default: the PNG's name, .json)")
    p.add_argument("--case", help=argparse.SUPPRESS)  # child mode: one case as JSON
    args = p.parse_args(argv)
    if args.case is None and args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device here (torch.cuda.is_available())")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    cases, results = plan(args), []
    for k, case in enumerate(cases, 1):
        print(f"[{k}/{len(cases)}] {case['cell']} {case['impl']} T{case['T']} H{case['H']}",
              file=sys.stderr, flush=True)  # fmt: skip
        results.append(spawn(case, env, __file__))
    report = table(args, results)
    print(report)
    plot(results, args.out, report.splitlines()[2][2:110])
    (args.json or args.out.with_suffix(".json")).write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
