"""Speed of rnnkit under torch.compile on the CPU: one markdown table.

This script owns the compile benchmark: what is timed, how, and how it is reported.

- layer: training step (forward + backward of output.sum() + h_n.sum(), input requiring grad)
         of RNN, LSTM and GRU at B32 T256 I128 H256: rnnkit eager (autograd Functions) vs
         rnnkit under torch.compile (default mode, Inductor), which runs each layer and
         direction as the kernels' operators (bptt/ops.py).
- model: a small language model (Embedding 10k -> 128, 2-layer LSTM H256, Linear to 10k,
         cross-entropy) at B16 T128, training step: compiled with rnnkit.LSTM vs compiled with
         torch.nn.LSTM, and both eager.

Every (case, implementation) runs in fresh child processes (`--case <json>`), as in
bench_layers.py (whose helpers this reuses): with OpenMP on few cores a process can fall into
a state many times slower for its whole life. The first call's time, compilation included, is
reported apart (Inductor's on-disk cache as found: a second run compiles faster).

    python benchmarks/bench_compile.py              # full run, quiet machine please
    python benchmarks/bench_compile.py --quick      # small shapes, one process per case
    python benchmarks/bench_compile.py --interleave --reps 15   # eager/compiled take turns
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from bench_layers import (
    OMP_KEYS,
    cpu_name,
    fmt_ms,
    make_input,
    make_layer,
    step_gemm_library,
    time_ms,
)
from torch import nn

import rnnkit
from rnnkit.bptt import native

CELLS = ("rnn", "lstm", "gru")
LAYER_SHAPE, QUICK_LAYER_SHAPE = (32, 256, 128, 256), (16, 64, 32, 64)  # B, T, I, H
MODEL_SHAPE = {"B": 16, "T": 128, "vocab": 10_000, "emb": 128, "H": 256}
QUICK_MODEL_SHAPE = {"B": 8, "T": 32, "vocab": 1000, "emb": 32, "H": 64}
# per bench: implementations in table order; the first is the baseline of its "x" column
IMPLS = {
    "layer": ("rnnkit eager", "rnnkit compiled"),
    "model": ("torch.nn compiled", "rnnkit compiled", "torch.nn eager", "rnnkit eager"),
}

# ---- child: one case in this process ------------------------------------------------------


class LanguageModel(nn.Module):
    """Embedding -> 2-layer LSTM -> Linear; forward(tokens (T, B), targets (T, B)) -> loss."""

    def __init__(self, lstm: type, vocab: int, emb: int, H: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.rnn = lstm(emb, H, num_layers=2)
        self.head = nn.Linear(H, vocab)

    def forward(self, tokens, targets):
        out, _ = self.rnn(self.embed(tokens))  # (T, B, H)
        logits = self.head(out)  # (T, B, vocab)
        return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())


def layer_step(case: dict):
    """(module, step): a layer's training step, compiled or not."""
    B, T, I, H = case["shape"]
    layer, x = make_layer("rnnkit", case["cell"], I, H), make_input(B, T, I, False)
    fn = torch.compile(layer) if case["impl"].endswith("compiled") else layer

    def step():
        out, last = fn(x)
        h_n = last[0] if isinstance(last, tuple) else last
        (out.sum() + h_n.sum()).backward()
        x.grad = None

    return layer, step


def model_step(case: dict):
    """(module, step): the language model's training step, compiled or not."""
    s = case["model"]
    torch.manual_seed(0)
    lstm = rnnkit.LSTM if case["impl"].startswith("rnnkit") else nn.LSTM
    model = LanguageModel(lstm, s["vocab"], s["emb"], s["H"])
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(s["vocab"], (s["T"] + 1, s["B"]), generator=gen)
    fn = torch.compile(model) if case["impl"].endswith("compiled") else model
    return model, lambda: fn(tokens[:-1], tokens[1:]).backward()


def interleaved(case: dict) -> dict:
    """A layer eager and compiled, taking turns round after round in this process, so that
    a drift of the machine's speed falls on both alike: per implementation and round, the
    best of three steps."""
    torch.set_num_threads(case["threads"])
    runs = {impl: layer_step({**case, "impl": impl}) for impl in IMPLS["layer"]}
    first, times = {}, {impl: [] for impl in runs}
    for impl, (_, step) in runs.items():
        t0 = time.perf_counter()
        step()  # compiles when compiled
        first[impl] = time.perf_counter() - t0
    for rnd in range(case["warmup"] + case["reps"]):
        for impl, (module, step) in runs.items():
            best = min(time_ms(step, 0, 3, lambda m=module: m.zero_grad(set_to_none=True)))
            if rnd >= case["warmup"]:
                times[impl].append(best)
    info = {"num_threads": torch.get_num_threads(), "torch": torch.__version__}
    return {"by_impl": times, "first_by_impl": first, "info": info}


def run_case(case: dict) -> dict:
    if case["impl"] == "interleaved":
        return interleaved(case)
    torch.set_num_threads(case["threads"])
    module, step = (layer_step if case["kind"] == "layer" else model_step)(case)

    def setup():
        module.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    step()  # compiles when compiled
    first = time.perf_counter() - t0
    times = time_ms(step, case["warmup"], case["reps"], setup)
    info = {"num_threads": torch.get_num_threads(), "torch": torch.__version__}
    return {"times": times, "first_s": first, "info": info}


# ---- parent: plan, spawn, report ----------------------------------------------------------


def plan(args) -> list[dict]:
    common = {"threads": args.threads, "reps": args.reps, "warmup": args.warmup}
    shape = QUICK_LAYER_SHAPE if args.quick else LAYER_SHAPE
    layer_impls = ("interleaved",) if args.interleave else IMPLS["layer"]
    cases = [
        {"kind": "layer", "cell": cell, "shape": shape, "impl": impl}
        for cell in args.only
        for impl in layer_impls
    ]
    model = QUICK_MODEL_SHAPE if args.quick else MODEL_SHAPE
    cases += [{"kind": "model", "cell": "lstm", "model": model, "impl": i} for i in IMPLS["model"]]
    return [{**common, **c} for c in cases]


def spawn(case: dict, env: dict, processes: int) -> list[dict]:
    """The case in `processes` fresh processes: the median of their medians, the first
    process's first call (the compile as a cold process sees it); one result per
    implementation (two for an interleaved case)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", json.dumps(case)]
    runs = []
    for _ in range(processes):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return [{**case, "error": f"rc={proc.returncode}: {tail}"}]
        runs.append(json.loads(lines[-1]))
    if case["impl"] != "interleaved":
        ms = statistics.median(statistics.median(r["times"]) for r in runs)
        return [{**case, "ms": ms, "first_s": runs[0]["first_s"], "runs": runs}]
    return [
        {
            **case,
            "impl": f"{impl} (interleaved)",
            "ms": statistics.median(statistics.median(r["by_impl"][impl]) for r in runs),
            "first_s": runs[0]["first_by_impl"][impl],
            "runs": runs,
        }
        for impl in IMPLS["layer"]
    ]


def label(r: dict) -> tuple[str, str]:
    if r["kind"] == "layer":
        return r["cell"].upper(), "B{} T{} I{} H{}".format(*r["shape"])
    m = r["model"]
    what = f"Embedding {m['vocab']}->{m['emb']}, 2-layer LSTM H{m['H']}, Linear, CE"
    return what, f"B{m['B']} T{m['T']}"


def table(results: list[dict]) -> list[str]:
    lines = [
        "| bench | model | shape | implementation | train step ms | x | first call s |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["kind"], r["cell"]), []).append(r)
    for (kind, _), rows in groups.items():
        base = rows[0].get("ms")
        for r in rows:
            ms = r.get("ms")
            ratio = f"{base / ms:.2f}x" if base and ms else "-"
            first = f"{r['first_s']:.1f}" if "first_s" in r else "error"
            what, shape = label(r)
            lines.append(
                f"| {kind} | {what} | {shape} | {r['impl']} | {fmt_ms(ms)} | {ratio} | {first} |"
            )
    return lines


def header(args, env: dict, results: list[dict]) -> list[str]:
    info = next((r["runs"][0]["info"] for r in results if "runs" in r), {})
    omp = ", ".join(f"{k}={env.get(k, 'unset')}" for k in OMP_KEYS)
    loops = "C++ (bptt/native.cpp)" if native.load() is not None else "Python"
    return [
        f"# rnnkit {rnnkit.__version__} under torch.compile ({'quick' if args.quick else 'full'})",
        "",
        f"- torch {info.get('torch', torch.__version__)}, Python {platform.python_version()}, "
        f"CPU: {cpu_name()} ({os.cpu_count()} logical CPUs, ATen capability "
        f"{torch.backends.cpu.get_cpu_capability()}); eager time loops: {loops}; per-step "
        f"products: {step_gemm_library()}",
        f"- threads: torch.set_num_threads({args.threads}) in every child (got "
        f"{info.get('num_threads', '?')}); child env: {omp}",
        f"- train step ms: median of {args.reps} timed runs after {args.warmup} warm-up run(s), "
        f"each (case, implementation) in {args.processes} fresh process(es), the median of "
        "their medians; fp32; compiled = torch.compile(module), default mode (Inductor)"
        + (
            "; layer rows (interleaved): eager and compiled take turns in each process, "
            "each round's best of 3 steps, the median over rounds"
            if args.interleave
            else ""
        ),
        "- x: the first row of its group's time / this row's (> 1: faster than that row); "
        "first call s: the first step in the first process, compilation included",
        "",
    ]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--processes", type=int, default=None, help="per case (default 2, quick 1)")
    p.add_argument("--reps", type=int, default=None, help="timed runs (default 5, quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs (default 2, quick 1)")
    p.add_argument("--quick", action="store_true", help="small shapes, fewer runs")
    p.add_argument("--only", default=",".join(CELLS), help="cells of the layer bench")
    p.add_argument(
        "--interleave",
        action="store_true",
        help="layer bench: eager and compiled take turns in each process (reps = rounds)",
    )
    p.add_argument("--case", help=argparse.SUPPRESS)  # child mode: one case as JSON
    args = p.parse_args(argv)
    if args.case:
        return args
    args.processes = args.processes or (1 if args.quick else 2)
    args.reps = args.reps or (2 if args.quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.only = [c for c in CELLS if c in args.only.split(",")]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    cases, results = plan(args), []
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {case['kind']} {case['cell']} {case['impl']}", file=sys.stderr)
        results += spawn(case, env, args.processes)
    lines = header(args, env, results) + table(results)
    notes = [
        f"- error in {r['kind']} {r['cell']} {r['impl']}: {r['error']}"
        for r in results
        if "error" in r
    ]
    print("\n".join(lines + ([""] + notes if notes else [])))


if __name__ == "__main__":
    main()
