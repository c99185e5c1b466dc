"""Sampling speed of `rnnkit.textgen.generate` for a CharLM, in characters per second at batch 1.

The model is the issue's 2-layer 512-unit LSTM over tiny-shakespeare's 65 characters (+ <unk>),
untrained: the time per character does not depend on the weights. Each (threads, options)
case runs in a fresh child process (docs/bptt.md (j): a process can fall into a slow OpenMP state
for its whole life); each child times `--runs` generations of `--length` characters after
one warm-up and reports the median.

    python benchmarks/bench_generate.py                 # 1 and 2 threads, a markdown table
    python benchmarks/bench_generate.py --cell gru --hidden 256 --json out.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from rnnkit.textgen.data import CharVocab
from rnnkit.textgen.generate import generate
from rnnkit.textgen.model import CharLM

SAMPLING = {  # name -> generate() options
    "T=0.8": {"temperature": 0.8},
    "top-k 10, top-p 0.9": {"top_k": 10, "top_p": 0.9},
    "greedy": {"greedy": True},
}
CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # tiny-shakespeare


def run_case(case: dict) -> dict:
    torch.set_num_threads(case["threads"])
    torch.manual_seed(0)
    vocab = CharVocab(CHARS)
    model = CharLM(len(vocab), cell=case["cell"], hidden=case["hidden"], layers=case["layers"])
    options = {**SAMPLING[case["sampling"]], "seed": 0}
    "".join(generate(model, vocab, "ROMEO:", 200, **options))  # warm-up
    rates = []
    for _ in range(case["runs"]):
        start = time.perf_counter()
        "".join(generate(model, vocab, "ROMEO:", case["length"], **options))
        rates.append(case["length"] / (time.perf_counter() - start))
    return {**case, "chars_per_s": statistics.median(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", default="lstm", choices=("lstm", "gru", "rnn"))
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--length", type=int, default=2000, help="characters per timed run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return

    shape = {"cell": args.cell, "hidden": args.hidden, "layers": args.layers}
    base = {**shape, "length": args.length, "runs": args.runs}
    results = []
    for threads in args.threads:
        for sampling in SAMPLING:
            case = json.dumps({**base, "threads": threads, "sampling": sampling})
            out = subprocess.run(
                [sys.executable, __file__, "--case", case],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "OMP_NUM_THREADS": str(threads)},
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    model = f"{args.layers}x{args.hidden} {args.cell.upper()}"
    print(f"CharLM {model}, batch 1, {args.length} chars x {args.runs}, torch {torch.__version__}")
    print("| threads | sampling | chars/s |\n|---:|---|---:|")
    for r in results:
        print(f"| {r['threads']} | {r['sampling']} | {r['chars_per_s']:,.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
