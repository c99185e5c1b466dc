"""Soak test of --resume: a small textgen run killed with SIGKILL at random moments and resumed,
again and again, must end where the run that was never interrupted ends; classify and forecast
once each. Prints a markdown table: the kills (and how many left a save unfinished: its
temporary directory or the backup of the previous checkpoint still there), the final validation
figure of both runs, the largest weight difference, and the most steps a kill cost (the steps
since the last checkpoint).

    python benchmarks/soak_resume.py                  # 20 textgen cycles, seed 0, one thread
    python benchmarks/soak_resume.py --cycles 5 --seed 3 --threads 2

Every run is a real `rnnkit <task> train` process with --out DIR (the killed run continues with
`--out DIR --resume` and nothing else: the rest comes from its checkpoint). Each process reports
every update it finishes on stdout (a wrapper around Trainer._update, the only thing added to
the CLI), so that a kill's cost is known exactly: the updates it had done beyond its checkpoint.
A kill comes a seeded random delay after the process's first update, in [0, span]; span is set
from the uninterrupted run's speed so that the cycles cover about 70 % of the run (n kills:
1.4 / (n + 1) of its training time). The data are
small slices: the first 120,000 characters of the built-in corpus (textgen), 1,200 IMDB
training reviews (classify, ../shared/data/imdb), 3,000 rows of ETTh2 (forecast,
../shared/data/etth2); without the shared data a task uses a synthetic stand-in and says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import torch
from bench_layers import cpu_name
from safetensors.torch import load_file

from rnnkit.train import checkpoint
from rnnkit.train.runlog import read_metrics

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PROBE = """
import sys
from rnnkit.train import loop
update = loop.Trainer._update
def reporting(self):
    stats = update(self)
    print(f"@update {self.step + 1}", flush=True)
    return stats
loop.Trainer._update = reporting
from rnnkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Child:
    """`rnnkit ARGS` in a child process whose finished updates are counted as they come."""

    def __init__(self, args: list, threads: int):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", PROBE, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.updates, self.lines, self.started = 0, [], threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._err.start()

    def _read(self):
        for line in self.process.stdout:
            if line.startswith("@update "):
                self.updates = int(line.split()[1])
                self.started.set()
            else:
                self.lines.append(line)
        self.started.set()  # ended

    def _read_err(self):
        self.stderr = self.process.stderr.read()

    def wait(self) -> int:
        code = self.process.wait(timeout=3600)
        self._reader.join()
        self._err.join()
        if code != 0:
            raise SystemExit(f"error: {self.process.args[3:]} exited {code}:\n{self.stderr}")
        return code

    def kill(self) -> bool:
        """SIGKILL; whether it was still running."""
        running = self.process.poll() is None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._reader.join()
        self._err.join()
        return running

    def summary(self) -> dict:
        return json.loads("".join(self.lines))


def soak(task: str, args: list, out: Path, cycles: int, rng: random.Random, threads: int):
    """The straight run, then the run killed `cycles` times and resumed: one table row."""
    straight = out / f"{task}-straight"
    t0 = time.perf_counter()
    child = Child([*args, "--out", straight, "--json"], threads)
    child.wait()
    seconds, steps = time.perf_counter() - t0, child.summary()["step"]
    rate = steps / child.summary()["seconds"]  # updates per second of training
    span = 1.4 * steps / (rate * (cycles + 1))  # one kill: within the first 70 % of the run
    killed, lost, finished_early, in_save = out / f"{task}-killed", [], 0, 0
    for cycle in range(cycles):
        command = [task, "train", "--out", killed, "--resume"]
        if not checkpoint.exists(killed / "last"):  # a fresh start (or one killed before a save)
            command = [*args, "--out", killed, *(["--force"] if cycle else [])]
        left = debris(killed)
        child = Child(command, threads)
        child.started.wait(timeout=600)
        time.sleep(rng.uniform(0, span))
        reached = child.updates
        if not child.kill():
            finished_early += 1
            continue
        reached = max(reached, child.updates)
        in_save += debris(killed) - left != set()  # this kill's save left its tmp or backup
        saved = checkpoint.load(killed / "last").step if checkpoint.exists(killed / "last") else 0
        lost.append(reached - saved)
        print(f"  {task} cycle {cycle + 1}: killed after update {reached}, resumes at {saved}",
              file=sys.stderr)  # fmt: skip
    child = Child([task, "train", "--out", killed, "--resume", "--json"], threads)
    child.wait()
    assert child.summary()["step"] == steps
    a, b = (
        load_file(straight / "last" / "model.safetensors"),
        load_file(killed / "last" / "model.safetensors"),
    )
    delta = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    every = checkpoint.load(straight / "last").config["train"]["eval_every"]
    return {
        "task": task,
        "cycles": len(lost),
        "in_save": in_save,  # kills that left a save unfinished
        "finished_early": finished_early,
        "steps": steps,
        "every": every,
        "valid": (final_valid(straight), final_valid(killed)),
        "delta": delta,
        "lost": max(lost, default=0),
        "seconds": seconds,
    }


def debris(out: Path) -> set[str]:
    """What unfinished saves of out/last left: their temporary directories, the backup."""
    return {p.name for p in out.glob(".last.*")} if out.is_dir() else set()


def final_valid(out: Path) -> tuple[str, float]:
    """(name, value) of the last validation loss (forecast: MSE) in out/metrics.csv."""
    rows = [
        r for r in read_metrics(out / "metrics.csv") if r["name"] in ("valid/loss", "valid/mse")
    ]
    return rows[-1]["name"], rows[-1]["value"]


def textgen_args(work: Path) -> list:
    from rnnkit.textgen.data import builtin_corpus

    path = work / "corpus.txt"
    path.write_text(builtin_corpus()[:120_000], encoding="utf-8")
    return ["textgen", "train", "--data", path, "--hidden", 64, "--layers", 1, "--bptt", 32,
            "--batch", 16, "--dropout", 0.1, "--eval-every", 25, "--max-steps", 800]  # fmt: skip


def classify_args(work: Path) -> list:
    path, note = work / "reviews.csv", ""
    rows = imdb_slice(600)
    if rows is None:
        note = " (synthetic reviews: no shared IMDB archive)"
        rng = random.Random(0)
        words = "good fine great film bad awful dull plot actor story scene music".split()
        rows = [(" ".join(rng.choices(words, k=30)), ("neg", "pos")[k % 2]) for k in range(1200)]
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    args = ["classify", "train", "--train", path, "--embed", 32, "--hidden", 32, "--batch", 16,
            "--max-tokens", 100, "--dropout", 0.2, "--eval-every", 20, "--epochs", 3]  # fmt: skip
    return args, note


def imdb_slice(per_label: int) -> list[tuple[str, str]] | None:
    """The first `per_label` training reviews of each label in the shared IMDB archive."""
    archive = SHARED / "imdb" / "aclImdb_v1_labeled.tar.gz"
    if not archive.exists():
        return None
    rows, counts = [], {"pos": 0, "neg": 0}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) < 4 or parts[-3] != "train" or parts[-2] not in counts:
                continue
            if counts[parts[-2]] < per_label and member.isfile():
                text = tar.extractfile(member).read().decode("utf-8")
                rows.append((text.replace("<br />", " "), parts[-2]))
                counts[parts[-2]] += 1
            if min(counts.values()) >= per_label:
                break
    return rows


def forecast_args(work: Path) -> list:
    source, note = SHARED / "etth2" / "ETTh2.csv", ""
    if source.exists():
        path = work / "etth2.csv"
        lines = source.read_text().splitlines()[:3001]
        path.write_text("\n".join(lines) + "\n")
        data = ["--data", path, "--time-column", "date", "--target", "OT"]
    else:
        note, data = " (the built-in series: no shared ETTh2)", []
    args = ["forecast", "train", *data, "--lookback", 48, "--horizon", 12, "--hidden", 32,
            "--batch", 32, "--dropout", 0.1, "--eval-every", 10, "--max-steps", 150]  # fmt: skip
    return args, note


def table(rows: list[dict]) -> str:
    lines = [
        "| task | kill + resume cycles (inside a save) | final validation (straight) | final "
        "validation (resumed) | max \\|Δweight\\| | steps lost per cycle, at most (checkpoint "
        "every) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        (name, a), (_, b) = r["valid"]
        same = "equal" if a == b else f"Δ {abs(a - b):.2g}"
        lines.append(
            f"| {r['task']}{r.get('note', '')} | {r['cycles']} ({r['in_save']}) | {name} {a:.6f} "
            f"| {b:.6f} "
            f"({same}) | {r['delta']:.3g} | {r['lost']} ({r['every']}) |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20, help="textgen kills (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="of the random delays")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every run")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-soak-") as tmp:
        work = Path(tmp)
        plans = [
            ("textgen", (textgen_args(work), ""), args.cycles),
            ("classify", classify_args(work), 1),
            ("forecast", forecast_args(work), 1),
        ]
        for task, (task_args, note), cycles in plans:
            row = soak(task, task_args, work, cycles, rng, args.threads)
            rows.append({**row, "note": note})
            print(f"{task}: done in {row['seconds']:.0f} s straight", file=sys.stderr)
    print(
        f"soak_resume: {cpu_name()}, {os.cpu_count()} cores; OMP_NUM_THREADS={args.threads} in "
        f"every run; torch {torch.__version__}; delays seeded {args.seed}"
    )
    print(table(rows))
    bad = [r["task"] for r in rows if r["delta"] != 0 or r["valid"][0] != r["valid"][1]]
    early = sum(r["finished_early"] for r in rows)
    if early:
        print(f"{early} cycles ended before their kill (the run was done)")
    print("every resumed run equals its straight run" if not bad else f"DIFFERENT: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
