"""Spoken digits (Free Spoken Digit Dataset) with `rnnkit speech`: isolated-digit accuracy on
the official split, leave-one-speaker-out accuracy (6 folds), and the digit error rate of a
CTC recogniser on connected digit strings (2-7 digits) built from the test recordings.

Every training runs `rnnkit speech train ... --json` in a fresh process with OMP_NUM_THREADS
and torch's thread count set to --threads; validation is a seeded 10 % of each training set,
the test set is evaluated once with the weights of the best validation error. Prints markdown
tables: accuracy (or CER / digit error rate), epochs and the training wall time.

    python benchmarks/bench_fsdd.py --root ../shared/data/fsdd --work runs/fsdd
    python benchmarks/bench_fsdd.py --only loso --loso-epochs 15
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rnnkit.speech import fsdd
from rnnkit.speech.manifest import write_manifest

CLASSIFIER = ["--cell", "lstm", "--bidirectional", "--hidden", "128", "--layers", "2",
              "--subsample", "2", "--batch", "32"]  # fmt: skip
RECOGNISER = ["--task", "ctc", "--units", "word", "--cell", "lstm", "--bidirectional",
              "--hidden", "128", "--layers", "2", "--subsample", "3", "--batch", "32"]  # fmt: skip
SECTIONS = ("official", "loso", "strings")


def train(args, name: str, options: list[str]) -> tuple[dict, float]:
    out = Path(args.work) / name
    cmd = [sys.executable, "-m", "rnnkit", "speech", "train", *options, "--seed", str(args.seed),
           "--out", str(out), "--force", "--json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(f"$ OMP_NUM_THREADS={args.threads} rnnkit {' '.join(cmd[3:])}", file=sys.stderr)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(done.returncode)
    summary = json.loads(done.stdout)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary, wall


def official(args, work: Path) -> None:
    s, wall = train(args, "official", ["--manifest", str(work / "train.csv"), "--test",
                    str(work / "test.csv"), *CLASSIFIER, "--epochs", str(args.epochs)])  # fmt: skip
    print("\n### Isolated digits, official split (train: recordings 5-49, 2,700; test: 0-4, 300)\n")
    print("| model | test accuracy | best valid accuracy | epochs | training time | wall |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| {' '.join(CLASSIFIER[:-2])} | {s['test']['accuracy']:.2%} | "
          f"{1 - s['best_valid_error']:.2%} | {s['epochs']:.0f} | {s['seconds']:.0f} s | "
          f"{wall:.0f} s |")  # fmt: skip


def loso(args, work: Path) -> None:
    recordings = fsdd.recordings(args.root)
    speakers = sorted({r.speaker for r in recordings})
    rows = []
    for speaker in speakers:
        train_m, test_m = work / f"loso_{speaker}_train.csv", work / f"loso_{speaker}_test.csv"
        write_manifest(train_m, [(r.path, r.digit) for r in recordings if r.speaker != speaker])
        write_manifest(test_m, [(r.path, r.digit) for r in recordings if r.speaker == speaker])
        s, wall = train(args, f"loso_{speaker}", ["--manifest", str(train_m), "--test",
                        str(test_m), *CLASSIFIER, *args.loso_options.split(),
                        "--epochs", str(args.loso_epochs)])  # fmt: skip
        rows.append((speaker, s["test"]["accuracy"], s["seconds"], wall))
    print(f"\n### Leave one speaker out (train: 5 speakers, 2,500; test: the 6th, 500; "
          f"{args.loso_epochs} epochs; {' '.join(CLASSIFIER[:-2] + args.loso_options.split())})"
          "\n")  # fmt: skip
    print("| held-out speaker | test accuracy | training time | wall |\n|---|---:|---:|---:|")
    for speaker, acc, seconds, wall in rows:
        print(f"| {speaker} | {acc:.2%} | {seconds:.0f} s | {wall:.0f} s |")
    mean = sum(r[1] for r in rows) / len(rows)
    print(f"| **mean** | **{mean:.2%}** | {sum(r[2] for r in rows):.0f} s (all) | "
          f"{sum(r[3] for r in rows):.0f} s (all) |")  # fmt: skip


def strings(args, work: Path) -> None:
    s, wall = train(args, "strings", ["--manifest", str(work / "strings_train.csv"), "--test",
                    str(work / "strings_test.csv"), *RECOGNISER,
                    "--epochs", str(args.ctc_epochs)])  # fmt: skip
    t = s["test"]
    print(f"\n### Connected digit strings, CTC ({s['counts']['train'] + s['counts']['valid']:,} "
          f"training strings from training recordings; {t['utterances']:,} test strings from "
          "test recordings; greedy decoding)\n")  # fmt: skip
    print("| model | digit error rate (WER) | CER | string error | epochs | training time | wall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {' '.join(RECOGNISER[:-2])} | {t['wer']:.2%} | {t['cer']:.2%} | "
        f"{t['sentence_error']:.2%} | {s['epochs']:.0f} | {s['seconds']:.0f} s | {wall:.0f} s |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(Path(__file__).parents[2] / "shared/data/fsdd"))
    p.add_argument("--work", default="runs/fsdd", help="manifests, strings and runs go here")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"some of {','.join(SECTIONS)}")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=30, help="official split")
    p.add_argument("--loso-epochs", type=int, default=15)
    p.add_argument("--ctc-epochs", type=int, default=15)
    p.add_argument(
        "--loso-options",
        default="",
        help="more `speech train` options for LOSO, e.g. --loso-options=--mean-norm",
    )
    p.add_argument("--strings", type=int, default=3000, help="training strings")
    p.add_argument("--test-strings", type=int, default=500)
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args()
    work = Path(args.work)
    sections = args.only.split(",")
    if not (work / "train.csv").is_file() or "strings" in sections:
        cmd = [sys.executable, "-m", "rnnkit", "speech", "fsdd-manifest", "--root", args.root,
               "--out", str(work), "--strings", str(args.strings if "strings" in sections else 0),
               "--test-strings", str(args.test_strings)]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"threads: {args.threads}; seed {args.seed}")
    for name in sections:
        {"official": official, "loso": loso, "strings": strings}[name](args, work)


if __name__ == "__main__":
    main()
