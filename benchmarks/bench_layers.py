"""Speed of rnnkit's layers against torch.nn on the CPU (or a GPU): one markdown table.

This script owns the layer benchmark: what is timed, how, and how it is reported.

- layer:    RNN, LSTM and GRU, training step and inference, rnnkit vs torch.nn, with the
            achieved GFLOP/s as a share of torch.mm's square fp32 GEMM rate from the same run.
- varlen:   lengths uniform in [T/2, T] (seeded): rnnkit `lengths=` vs torch.nn on a
            PackedSequence (packing timed) vs rnnkit on the same padded tensor, training step.
- serve:    the streaming and serving shapes (B8 H256, B4 H512, T=200), inference only.
- generate: one step of a 2-layer 512-unit LSTM at batch 1 under no_grad: rnnkit `step()` vs
            torch.nn.LSTM called with T=1 vs two torch.nn.LSTMCell.

Every (case, implementation) runs in a fresh child process (`--case <json>`, one JSON line
back), because with OpenMP on few cores a process can fall into a state many times slower that
lasts its whole life (docs/bptt.md (j), "the OpenMP slow state"). The parent passes the
children an environment with the OpenMP settings stated, and prints them.

    python benchmarks/bench_layers.py                      # full run, quiet machine please
    python benchmarks/bench_layers.py --quick --only gru   # a smoke test
    python benchmarks/bench_layers.py --threads 1 --json out.json
    python benchmarks/bench_layers.py --device cuda --only lstm,gru --sections layer

On CUDA, every timed run is bracketed by torch.cuda.synchronize(), rnnkit runs its default
impl="auto" (torch's fused cuDNN operator for the plain cells) and the peak is torch.mm on the
GPU.
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
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from rnnkit.bptt import native

CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
SECTIONS = ("layer", "varlen", "serve", "generate")
LAYER_SHAPES = [(64, 100, 128, 512), (32, 256, 128, 256), (16, 256, 32, 128), (1, 1000, 16, 64)]
VARLEN_SHAPES = [(32, 256, 128, 256), (16, 256, 32, 128)]
SERVE_SHAPES = [(8, 200, 128, 256), (4, 200, 128, 512)]
QUICK_LAYER_SHAPES = [(16, 256, 32, 128)]
QUICK_VARLEN_SHAPES = [(32, 256, 128, 256)]
GEN = {"cell": "lstm", "L": 2, "B": 1, "I": 512, "H": 512, "steps": 100}
PEAK_N = 2048
OMP_KEYS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "OMP_PROC_BIND",
    "OMP_PLACES",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
)
SPREAD_FLAG = 2.0  # max/min of the timed runs above this marks the median with "~"

# ---- child: one case in this process ------------------------------------------------------


DEVICE = torch.device("cpu")  # the child's device, set by run_case from the case


def sync() -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU has none)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def time_ms(fn, warmup: int, reps: int, setup=None, inner: int = 1) -> list[float]:
    """Milliseconds per call of `fn` for `reps` timed runs of `inner` calls, after warm-up."""
    for _ in range(warmup):
        if setup:
            setup()
        fn()
    times = []
    for _ in range(reps):
        if setup:
            setup()
        sync()
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3 / inner)
    return times


def make_layer(impl: str, cell: str, I: int, H: int, num_layers: int = 1, batch_first=False):
    torch.manual_seed(0)
    module = torch.nn if impl.startswith("torch") else rnnkit
    cls = {"rnn": module.RNN, "lstm": module.LSTM, "gru": module.GRU}[cell]
    return cls(I, H, num_layers=num_layers, batch_first=batch_first).to(DEVICE)


def make_input(B: int, T: int, I: int, batch_first: bool) -> torch.Tensor:
    torch.manual_seed(1)
    shape = (B, T, I) if batch_first else (T, B, I)
    return torch.randn(shape).to(DEVICE).requires_grad_()


def make_lengths(B: int, T: int) -> torch.Tensor:
    return torch.randint(T // 2, T + 1, (B,), generator=torch.Generator().manual_seed(2))


def train_step(forward, layer, x):
    """(step, setup): forward + backward of output.sum() + h_n.sum(); setup clears grads."""

    def step():
        out, hn = forward()
        h = hn[0] if isinstance(hn, tuple) else hn
        (out.sum() + h.sum()).backward()

    def setup():
        layer.zero_grad(set_to_none=True)
        x.grad = None

    return step, setup


def bench_peak(case: dict) -> dict:
    n = case["n"]
    a, b, out = (torch.randn(n, n, device=DEVICE) for _ in range(3))
    times = time_ms(lambda: torch.mm(a, b, out=out), case["warmup"], case["reps"])
    info = {
        "torch": torch.__version__,
        "rnnkit": rnnkit.__version__,
        "rnnkit_path": str(Path(rnnkit.__file__).parent),
        "num_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "gpu": torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else None,
        "loops": "C++ (bptt/native.cpp)" if native.load() is not None else "Python",
        "step_gemm": step_gemm_library(),
    }
    return {"times": {"mm": times}, "info": info}


def step_gemm_library() -> str:
    """The library rnnkit.bptt.gemm picks for the per-step products of a B32/H256 LSTM step."""
    from rnnkit.bptt import gemm

    lib = gemm.step_weight(torch.empty(1024, 256), 32, 256).lib
    names = {gemm.ATEN: "torch.mm (MKL)", gemm.ONEDNN_PACKED: "oneDNN, packed weights"}
    return names.get(lib, "MKL, packed weights") + f" (vendor {gemm.cpu_vendor() or '?'})"


def bench_layer(case: dict) -> dict:
    B, T, I, H = case["shape"]
    bf, warmup, reps = case["batch_first"], case["warmup"], case["reps"]
    layer, x = make_layer(case["impl"], case["cell"], I, H, batch_first=bf), make_input(B, T, I, bf)
    times = {}
    if case["kind"] == "layer":
        step, setup = train_step(lambda: layer(x), layer, x)
        times["train"] = time_ms(step, warmup, reps, setup)
    layer.eval()
    with torch.no_grad():
        times["infer"] = time_ms(lambda: layer(x), warmup, reps)
    return {"times": times}


def bench_varlen(case: dict) -> dict:
    B, T, I, H = case["shape"]
    impl, bf = case["impl"], case["batch_first"]
    layer, x = make_layer(impl, case["cell"], I, H, batch_first=bf), make_input(B, T, I, bf)
    lengths = make_lengths(B, T)

    def packed():
        pack = pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=False)
        out, hn = layer(pack)
        return out.data, hn

    forward = {
        "rnnkit_lengths": lambda: layer(x, lengths=lengths),
        "rnnkit_padded": lambda: layer(x),
        "torch_packed": packed,
    }[impl]
    step, setup = train_step(forward, layer, x)
    train = time_ms(step, case["warmup"], case["reps"], setup)
    return {"times": {"train": train}, "tokens": int(lengths.sum())}


def bench_generate(case: dict) -> dict:
    L, B, I, H, impl = GEN["L"], GEN["B"], GEN["I"], GEN["H"], case["impl"]
    torch.manual_seed(1)
    x = torch.randn(B, I, device=DEVICE)
    zeros = torch.zeros(L, B, H, device=DEVICE)
    if impl == "rnnkit_step":
        layer = make_layer(impl, "lstm", I, H, num_layers=L).eval()
        state = [(zeros, zeros)]

        def step():
            state[0] = layer.step(x, state[0])[1]
    elif impl == "torch_lstm":
        layer, x3 = make_layer(impl, "lstm", I, H, num_layers=L).eval(), x.unsqueeze(0)
        state = [(zeros, zeros)]

        def step():
            state[0] = layer(x3, state[0])[1]
    else:  # torch_cells
        torch.manual_seed(0)
        cells = [torch.nn.LSTMCell(I if k == 0 else H, H).to(DEVICE).eval() for k in range(L)]
        state = [(zeros[k], zeros[k]) for k in range(L)]

        def step():
            inp = x
            for k, cell in enumerate(cells):
                state[k] = cell(inp, state[k])
                inp = state[k][0]

    with torch.no_grad():
        times = time_ms(step, case["warmup"], case["reps"], inner=GEN["steps"])
    return {"times": {"step": times}}


def run_case(case: dict) -> dict:
    global DEVICE
    torch.set_num_threads(case["threads"])
    DEVICE = torch.device(case["device"])
    bench = {
        "peak": bench_peak,
        "layer": bench_layer,
        "serve": bench_layer,
        "varlen": bench_varlen,
        "generate": bench_generate,
    }
    return bench[case["kind"]](case)


# ---- parent: plan, spawn, report ----------------------------------------------------------


def plan(args) -> list[dict]:
    """Every (case, implementation) to run, each a JSON-able dict for one child process."""
    common = {
        "threads": args.threads,
        "reps": args.reps,
        "warmup": args.warmup,
        "batch_first": args.batch_first,
        "device": args.device,
    }
    cases = [{"kind": "peak", "n": PEAK_N, **common}]
    layer_shapes = QUICK_LAYER_SHAPES if args.quick else LAYER_SHAPES
    varlen_shapes = QUICK_VARLEN_SHAPES if args.quick else VARLEN_SHAPES
    for cell in args.only:
        if "layer" in args.sections:
            for shape in layer_shapes:
                for impl in ("rnnkit", "torch"):
                    cases.append({"kind": "layer", "cell": cell, "shape": shape, "impl": impl})
        if "serve" in args.sections and not args.quick:
            for shape in SERVE_SHAPES:
                for impl in ("rnnkit", "torch"):
                    cases.append({"kind": "serve", "cell": cell, "shape": shape, "impl": impl})
        if "varlen" in args.sections:
            for shape in varlen_shapes:
                for impl in ("rnnkit_lengths", "rnnkit_padded", "torch_packed"):
                    cases.append({"kind": "varlen", "cell": cell, "shape": shape, "impl": impl})
    if "generate" in args.sections and GEN["cell"] in args.only:
        for impl in ("rnnkit_step", "torch_lstm", "torch_cells"):
            cases.append({"kind": "generate", "cell": GEN["cell"], "impl": impl})
    return [{**common, **c} for c in cases]


def child_env(args) -> dict:
    """The parent's environment with the thread count stated; the rest stays as inherited."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    if args.omp_wait_policy:
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    return env


def spawn(case: dict, env: dict, script: str = __file__) -> dict:
    """The case run by `script --case <json>` in a fresh process: its last stdout line's JSON
    merged into the case, or the case with an "error"."""
    cmd = [sys.executable, str(Path(script).resolve()), "--case", json.dumps(case)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {**case, "error": f"rc={proc.returncode}: {tail}"}
    return {**case, **json.loads(lines[-1])}


def spawn_many(case: dict, env: dict, processes: int) -> dict:
    """The case in `processes` fresh processes; each time becomes the median of the processes'
    medians, so one process caught in the OpenMP slow state does not decide a figure."""
    runs = [spawn(case, env) for _ in range(processes)]
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    times = {k: [statistics.median(r["times"][k]) for r in ok] for k in ok[0]["times"]}
    return {**ok[0], "times": times, "runs": [r["times"] for r in ok]}


def label(case: dict) -> str:
    if case["kind"] == "generate":
        return f"L{GEN['L']} B{GEN['B']} I{GEN['I']} H{GEN['H']}"
    return "B{} T{} I{} H{}".format(*case["shape"])


def label_of(case: dict) -> str:
    """The case and implementation in words, for progress lines and error notes."""
    if case["kind"] == "peak":
        return f"peak torch.mm {case['n']}x{case['n']}"
    return f"{case['kind']} {case['cell']} {label(case)} {case['impl']}"


def fwd_flops(cell: str, B: int, I: int, H: int, steps: int, num_layers: int = 1) -> float:
    """GEMM FLOPs of a forward pass: 2*B*G*H*(I+H) per step per layer (input I, then H)."""
    per_step = sum(2 * B * GATES[cell] * H * ((I if k == 0 else H) + H) for k in range(num_layers))
    return per_step * steps


def median(result: dict | None, key: str) -> float | None:
    if result is None or "error" in result:
        return None
    return statistics.median(result["times"][key])


def spread(result: dict | None, key: str) -> bool:
    if result is None or "error" in result:
        return False
    t = result["times"][key]
    return max(t) > SPREAD_FLAG * min(t)


def fmt_ms(ms: float | None, noisy: bool = False) -> str:
    if ms is None:
        return "error"
    digits = 0 if ms >= 100 else 1 if ms >= 10 else 2 if ms >= 1 else 3
    return f"{ms:.{digits}f}" + ("~" if noisy else "")


def fmt_pct(flops: float, ms: float | None, peak_gflops: float | None) -> str:
    if ms is None or not peak_gflops:
        return "-"
    pct = 100 * flops / (ms * 1e6) / peak_gflops
    return f"{pct:.1f}%" if pct < 10 else f"{pct:.0f}%"


def row(bench, case, mode, rk, tn, flops, peak, note="") -> list[str]:
    """One table row: rnnkit result `rk` vs torch.nn result `tn` for the timing `mode`."""
    a, b = median(rk, mode), median(tn, mode)
    ratio = f"{b / a:.2f}x" if a and b else "-"
    return [
        bench,
        case["cell"].upper(),
        label(case),
        mode,
        fmt_ms(a, spread(rk, mode)),
        fmt_ms(b, spread(tn, mode)),
        ratio,
        fmt_pct(flops, a, peak),
        fmt_pct(flops, b, peak),
        note,
    ]


def table_rows(results: list[dict], peak: float | None) -> list[list[str]]:
    groups: dict[tuple, dict] = {}
    for r in results:
        if r["kind"] != "peak":
            key = (r["kind"], r["cell"], tuple(r.get("shape", ())))
            groups.setdefault(key, {})[r["impl"]] = r
    rows = []
    for (kind, cell, _), by_impl in groups.items():
        case = next(iter(by_impl.values()))
        if kind == "layer":
            B, T, I, H = case["shape"]
            flops = fwd_flops(cell, B, I, H, T)
            rk, tn = by_impl.get("rnnkit"), by_impl.get("torch")
            rows.append(row("layer", case, "train", rk, tn, 3 * flops, peak))
            rows.append(row("layer", case, "infer", rk, tn, flops, peak))
        elif kind == "serve":
            B, T, I, H = case["shape"]
            rk, tn = by_impl.get("rnnkit"), by_impl.get("torch")
            rows.append(row("serve", case, "infer", rk, tn, fwd_flops(cell, B, I, H, T), peak))
        elif kind == "varlen":
            rows.append(varlen_row(case, by_impl, peak))
        else:
            flops = fwd_flops(cell, GEN["B"], GEN["I"], GEN["H"], 1, GEN["L"])
            rk = by_impl.get("rnnkit_step")
            for impl, note in (("torch_lstm", "nn.LSTM, T=1"), ("torch_cells", "2x nn.LSTMCell")):
                tn = by_impl.get(impl)
                rows.append(row("generate", case, "step", rk, tn, flops, peak, note))
    return rows


def varlen_row(case: dict, by_impl: dict, peak: float | None) -> list[str]:
    B, T, I, H = case["shape"]
    rk, pad = by_impl.get("rnnkit_lengths"), by_impl.get("rnnkit_padded")
    tokens = next((r["tokens"] for r in (rk, pad) if r and "tokens" in r), B * T)
    flops = 3 * fwd_flops(case["cell"], 1, I, H, tokens)
    a, p = median(rk, "train"), median(pad, "train")
    note = f"torch.nn: PackedSequence; rnnkit padded: {fmt_ms(p, spread(pad, 'train'))}"
    note += " ms" if p else ""
    if a and p:
        note += f", varlen/padded {a / p:.2f}"
    tn = by_impl.get("torch_packed")
    return row("varlen", case, "train", rk, tn, flops, peak, note)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(args, env: dict, peak_result: dict, peak: float | None) -> list[str]:
    info = peak_result.get("info", {})
    omp = ", ".join(f"{k}={env.get(k, 'unset')}" for k in OMP_KEYS)
    mode = "quick" if args.quick else "full"
    peak_text = f"{peak:.1f} GFLOP/s" if peak else f"unavailable ({peak_result.get('error')})"
    gpu = f"; device: {info['gpu']} (cuda)" if info.get("gpu") else "; device: the CPU"
    return [
        f"# rnnkit {info.get('rnnkit', '?')} vs torch.nn: layer speed ({mode} run)",
        "",
        f"- torch {info.get('torch', '?')}, Python {platform.python_version()}, "
        f"CPU: {cpu_name()} ({os.cpu_count()} logical CPUs, ATen capability "
        f"{info.get('cpu_capability', '?')}); rnnkit from {info.get('rnnkit_path', '?')}; "
        f"RNN/LSTM/GRU time loops: {info.get('loops', '?')} (RNNKIT_NATIVE=0 for the Python "
        f"ones); per-step products of a 32 x 256 x 1024 step: {info.get('step_gemm', '?')} "
        f"(rnnkit.bptt.gemm, by CPU vendor){gpu}",
        f"- threads: torch.set_num_threads({args.threads}) in every child "
        f"(got {info.get('num_threads', '?')}); child env: {omp}",
        f"- reps: median of {args.reps} timed runs after {args.warmup} warm-up run(s) "
        f"(time.perf_counter), each (case, implementation) in {args.processes} fresh processes, "
        "the figure being the median of the processes' medians; "
        f"fp32, 1 layer unless stated, unidirectional, batch_first={args.batch_first}",
        f"- peak: torch.mm {PEAK_N}x{PEAK_N} fp32 on {args.device}, median of {args.reps}, "
        f"own process: {peak_text}",
        "- FLOP model: forward GEMMs = 2*B*G*H*(I+H) per step per layer, G = 1 (RNN), "
        "4 (LSTM), 3 (GRU); training = 3x forward; pointwise work not counted; "
        "varlen rows count sum(lengths) tokens, not B*T",
        "- train = forward + backward of output.sum() + h_n.sum() (input requires grad); "
        "infer = forward under torch.no_grad() in eval mode; generate = ms per step under "
        f"no_grad (mean of {GEN['steps']} steps per run); varlen lengths ~ U[T/2, T], seeded; "
        "torch/rnnkit > 1 means rnnkit is faster",
        "",
    ]


def report(args, env: dict, results: list[dict]) -> None:
    peak_result = results[0]
    mm = median(peak_result, "mm")
    peak = 2 * PEAK_N**3 / (mm * 1e6) if mm else None
    cols = [
        "bench",
        "cell",
        "shape",
        "mode",
        "rnnkit ms",
        "torch.nn ms",
        "torch/rnnkit",
        "rnnkit % peak",
        "torch.nn % peak",
        "note",
    ]
    lines = header(args, env, peak_result, peak)
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join(["---"] * 4 + ["---:"] * 5 + ["---"]) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(results, peak)]
    notes = [f"- error in {label_of(r)}: {r['error']}" for r in results if "error" in r]
    if any(spread(r, k) for r in results for k in r.get("times", {})):
        notes.insert(0, f"- ~: the timed runs of that median spread more than {SPREAD_FLAG}x")
    print("\n".join(lines + ([""] + notes if notes else [])))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--processes", type=int, default=3, help="fresh processes per case (default 3)")
    p.add_argument("--reps", type=int, default=None, help="timed runs (default 7, quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs (default 2, quick 1)")
    p.add_argument("--quick", action="store_true", help="reps 2 and fewer shapes")
    p.add_argument("--only", default=",".join(CELLS), help="cells, e.g. rnn,lstm")
    p.add_argument("--sections", default=",".join(SECTIONS), help="e.g. layer,varlen")
    p.add_argument("--batch-first", action="store_true", help="(B, T, I) inputs")
    p.add_argument("--omp-wait-policy", choices=("active", "passive"), help="default: inherit")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu")
    p.add_argument("--json", type=Path, help="save the raw results here")
    p.add_argument("--case", help=argparse.SUPPRESS)  # child mode: one case as JSON
    args = p.parse_args(argv)
    if args.case:
        return args
    args.reps = args.reps or (2 if args.quick else 7)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.only = [c for c in CELLS if c in pick(p, "--only", args.only, CELLS)]
    args.sections = pick(p, "--sections", args.sections, SECTIONS)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device here (torch.cuda.is_available())")
    return args


def pick(parser, flag: str, text: str, choices) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in choices]
    if bad or not names:
        parser.error(f"{flag} takes a comma list of {', '.join(choices)}; got {text!r}")
    return names


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    env, cases, results = child_env(args), plan(args), []
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {label_of(case)}", file=sys.stderr, flush=True)
        results.append(spawn_many(case, env, args.processes))
    report(args, env, results)
    if args.json:
        meta = {k: v for k, v in vars(args).items() if k not in ("case", "json")}
        payload = {"args": meta, "env": {k: env.get(k) for k in OMP_KEYS}, "results": results}
        args.json.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
