"""The gradient lab's numbers: the adding problem at T = 100, 200, 400 for LSTM, GRU and the
tanh RNN, the IRNN (relu + identity) at T = 100, and copy memory at T = 100, each trained by
`rnnkit lab adding|copy ... --json` in a fresh process with OMP_NUM_THREADS=1 (`--jobs`
processes side by side), within the same budget of steps and time. Prints one markdown
table: the test metric against the task's memoryless baseline, solved or not, steps and wall
time.
"""

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ADDING = [  # (cell, T, init, extra options), the longest first
    ("lstm", 400, "chrono", []),
    ("lstm", 400, "chrono", ["--hidden", "64", "--lr", "2e-3"]),  # later options win
    ("lstm", 200, "chrono", []),
    ("lstm", 200, "default", []),
    ("gru", 400, "default", []),
    ("rnn", 400, "default", []),
    ("lstm", 100, "default", []),
    ("rnn", 200, "default", []),
    ("gru", 200, "default", []),
    ("rnn", 100, "default", []),
    ("gru", 100, "default", []),
    ("rnn", 100, "identity", ["--nonlinearity", "relu", "--lr", "1e-4"]),
]
COPY = [
    ("lstm", 100, "chrono", []),
    ("gru", 100, "chrono", []),
]


def name(task: str, cell: str, T: int, init: str, extra: list) -> str:
    return f"{task}:{cell}:{init}:{T}" + "".join(f":{e}" for e in extra)


def run_case(task: str, cell: str, T: int, init: str, extra: list, a) -> dict:
    cmd = [
        sys.executable, "-m", "rnnkit", "lab", task, "--cell", cell, "--length", str(T),
        "--init", init, "--hidden", str(a.hidden), "--max-steps", str(a.max_steps),
        "--max-time", a.max_time, "--seed", str(a.seed), *extra, "--json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print(f"$ {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    done = subprocess.run(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    if done.returncode:
        return {"task": task, "cell": cell, "length": T, "init": init, "error": done.returncode}
    s = json.loads(done.stdout)
    s["extra"] = " ".join(extra)
    print(json.dumps(s), file=sys.stderr, flush=True)
    return s


def row(s: dict) -> str:
    if "error" in s:
        failed = f"failed ({s['error']})"
        return f"| {s['task']} | {s['cell']} | {s['init']} | {s['length']} | {failed} ||||||"
    metric = "mse" if s["task"] == "adding" else "ce"
    cell = s["cell"] + (f" ({s['nonlinearity']})" if s["cell"] == "rnn" else "")
    acc = f" ({s['test_accuracy']:.0%} copied)" if s["task"] == "copy" else ""
    return (
        f"| {s['task']} | {cell} | {s['init']} | {s['length']} | {s['test_' + metric]:.4f}{acc} | "
        f"{s['baseline_' + metric]:.4f} | {'yes' if s['solved'] else 'no'} | {s['steps']} | "
        f"{s['extra'] or '-'} | "
        f"{s['seconds'] / 60:.1f} min |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--max-steps", type=int, default=10000)
    p.add_argument("--max-time", default="14m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", choices=("adding", "copy"), help="one task's cases")
    p.add_argument("--json", metavar="FILE", help="also write every summary here")
    p.add_argument(
        "--skip", nargs="*", default=[], metavar="TASK:CELL:INIT:T", help="cases not to run"
    )
    a = p.parse_args()
    cases = [("adding", *c) for c in ADDING] + [("copy", *c) for c in COPY]
    cases = [c for c in cases if a.only in (None, c[0]) and name(*c) not in a.skip]
    with ThreadPoolExecutor(a.jobs) as pool:
        results = list(pool.map(lambda c: run_case(*c, a), cases))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    print(
        f"hidden {a.hidden}, batch 50, Adam lr 1e-3 (IRNN 1e-4), clipping 1.0; budget "
        f"{a.max_steps} steps or {a.max_time}, stopping once validation is solved; "
        f"OMP_NUM_THREADS=1, {a.jobs} runs side by side\n"
    )
    print(
        "| task | cell | init | T | test MSE / CE | baseline | solved | steps | options | "
        "wall time |\n|---|---|---|---:|---:|---:|:---:|---:|---|---:|"
    )
    for s in results:
        print(row(s))


if __name__ == "__main__":
    main()
