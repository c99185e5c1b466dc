"""Where the C++ loops' own tiles (bptt/native_tile.h) beat the GEMM libraries: one markdown
table of a layer's step time under each tile setting, against torch.nn, on this CPU.

The settings: `off` (every step product on the GEMM library of gemm.step_weight), tiles up
to 16 rows and W up to 2^18 elements (native_tile.h's defaults), up to 64 rows and 2^20 (both
vendors' native.TILE_LIMITS) and 32 rows, each with the LSTM's input product in the tiles'
step at any size (native._fused_input) and apart ("input GEMM": one sequence-wide GEMM before
the loop), and this CPU's rules (its TILE_LIMITS, the input product in the step where W_ih is
within native.FUSED_INPUT_PER_ROW elements per row, the LSTM's row groups of native.ROW_GROUPS),
also without the row groups ("columns split"). This script is how to measure them again on a
new CPU.

Each (cell, shape, mode) runs in a fresh child process (`--case <json>`, docs/bptt.md (j));
inside it the settings and torch.nn take turns, round after round (`--rounds`), so that a drift
of the machine's speed falls on all of them alike: the figure is the median over
rounds of each round's best of three calls.

    python benchmarks/bench_tiles.py                     # the bench_layers shapes, 2 threads
    python benchmarks/bench_tiles.py --threads 1 --rounds 10 --only lstm
"""

import argparse
import json
import os
import statistics
import time

import torch
from bench_layers import OMP_KEYS, cpu_name, spawn

import rnnkit
from rnnkit.bptt import gemm, native

SHAPES = [
    (64, 100, 128, 512),
    (32, 256, 128, 256),
    (16, 256, 32, 128),
    (8, 200, 128, 256),
    (4, 200, 128, 512),
]  # (B, T, I, H): bench_layers' layer and serve rows
SETTINGS = {  # (rows, W elements, the LSTM's input product in the tiles' step)
    "off": None,
    "16 rows": (16, 1 << 18, True),
    "16 rows, input GEMM": (16, 1 << 18, False),
    "64 rows": (64, 1 << 20, True),
    "64 rows, input GEMM": (64, 1 << 20, False),
    "32 rows": (32, 1 << 20, True),
    "this CPU's rules": "rules",  # native.TILE_LIMITS, FUSED_INPUT_PER_ROW and ROW_GROUPS
    "rules, columns split": "columns",  # the same without the LSTM's row groups
}
RULES = (native.TILE_LIMITS.get(gemm.cpu_vendor(), (16, 1 << 18)), native.FUSED_INPUT_PER_ROW)
ROW_GROUPS = native.ROW_GROUPS.get(gemm.cpu_vendor(), (1 << 17, 4))


def call(layer, x, mode: str) -> None:
    if mode == "infer":
        with torch.no_grad():
            layer(x)
        return
    out, state = layer(x)
    h_n = state[0] if isinstance(state, tuple) else state
    (out.sum() + h_n.sum()).backward()


def apply(module, setting: tuple | str | None) -> None:
    module.set_tiled(setting is not None)
    module.set_row_groups(0 if setting == "columns" else ROW_GROUPS[0], ROW_GROUPS[1])
    if setting in ("rules", "columns"):
        module.set_tile_limits(*RULES[0])
        native.FUSED_INPUT, native.FUSED_INPUT_PER_ROW = True, RULES[1]
    elif setting is not None:  # the input product in the step at any size, or never
        module.set_tile_limits(*setting[:2])
        native.FUSED_INPUT, native.FUSED_INPUT_PER_ROW = setting[2], None


def run_case(case: dict) -> dict:
    """Median ms per call of each setting and of torch.nn, interleaved, in this process."""
    torch.set_num_threads(case["threads"])
    module = native.load()
    if module is None or module.tile_width() == 0:
        return {"error": "no C++ loops or no tiles on this CPU"}
    B, T, I, H = case["shape"]
    torch.manual_seed(0)
    ours = getattr(rnnkit, case["cell"])(I, H).train(case["mode"] == "train")
    theirs = getattr(torch.nn, case["cell"])(I, H).train(case["mode"] == "train")
    x = torch.randn(T, B, I, requires_grad=case["mode"] == "train")
    names = [*SETTINGS, "torch.nn"]
    times = {name: [] for name in names}
    for r in range(case["rounds"] + 1):  # round 0 warms up
        for name in names:
            layer = theirs if name == "torch.nn" else ours
            if name in SETTINGS:
                apply(module, SETTINGS[name])
            best = min(_timed(layer, x, case["mode"]) for _ in range(3))
            if r:
                times[name].append(best)
    return {name: statistics.median(v) for name, v in times.items()}


def _timed(layer, x, mode: str) -> float:
    start = time.perf_counter()
    call(layer, x, mode)
    return (time.perf_counter() - start) * 1e3


def header(args, env: dict) -> None:
    print("# The loops' tiles against the GEMM libraries\n")
    print(
        f"- CPU: {cpu_name()} ({gemm.cpu_vendor()}, {os.cpu_count()} logical CPUs); torch "
        f"{torch.__version__}; threads: torch.set_num_threads({args.threads}); child env: "
        + ", ".join(f"{k}={env.get(k, 'unset')}" for k in OMP_KEYS)
    )
    print(
        f"- this CPU's rules: tile limits {RULES[0]} (native.TILE_LIMITS or the C++ "
        f"defaults); the LSTM's input product in the step where W_ih has at most "
        f"{RULES[1] or 'any number of'} elements per row (native.FUSED_INPUT_PER_ROW); the "
        f"LSTM's row groups where W has at most {ROW_GROUPS[0]} elements and a group "
        f"{ROW_GROUPS[1]} rows (native.ROW_GROUPS or the C++ defaults)"
    )
    print(
        f"- each row one fresh process; settings and torch.nn interleaved over {args.rounds} "
        "rounds, median of each round's best of 3 calls; train = forward + backward of "
        "out.sum() + h_n.sum(); infer = no_grad, eval mode; fp32\n"
    )
    names = [*SETTINGS, "torch.nn"]
    print(
        "| cell | shape | mode | "
        + " | ".join(f"{n} ms" for n in names)
        + " | torch.nn / best setting |"
    )
    print("|---|---|---|" + "---:|" * (len(names) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--only", default="lstm,gru,rnn", help="cells, e.g. lstm,gru")
    parser.add_argument("--modes", default="train,infer")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    header(args, env)
    for cell in args.only.upper().split(","):
        for shape in SHAPES:
            for mode in args.modes.split(","):
                case = {
                    "cell": cell,
                    "shape": shape,
                    "mode": mode,
                    "threads": args.threads,
                    "rounds": args.rounds,
                }
                res = spawn(case, env, __file__)
                shape_s = "B{} T{} I{} H{}".format(*shape)
                if "error" in res:
                    print(f"| {cell} | {shape_s} | {mode} | error: {res['error']} |")
                    continue
                best = min(res[n] for n in SETTINGS)
                cells = " | ".join(f"{res[n]:.2f}" for n in [*SETTINGS, "torch.nn"])
                print(
                    f"| {cell} | {shape_s} | {mode} | {cells} | {res['torch.nn'] / best:.2f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
