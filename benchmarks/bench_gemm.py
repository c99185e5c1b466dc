"""Where oneDNN's fp32 GEMM beats MKL's (torch.mm) for the products of a recurrent step.

Prints one markdown table: for (rows M, inner K, outputs N) shapes of the per-step GEMM
z += h W^T, the median time of MKL's `addmm_` and of oneDNN's `_linear_pointwise` + `add_`,
and which wins. `rnnkit.bptt.gemm.MIN_FLOPS` is set from this crossover (2 M N K). Each shape runs
in a fresh process with the stated thread count.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

SHAPES = [  # (M, K, N): batch, hidden, gates * hidden
    (1, 64, 256),
    (1, 512, 2048),
    (4, 256, 1024),
    (16, 128, 384),
    (16, 128, 512),
    (64, 64, 256),
    (32, 128, 512),
    (64, 128, 384),
    (16, 256, 1024),
    (64, 128, 512),
    (8, 512, 2048),
    (32, 256, 1024),
    (64, 512, 2048),
]


def median_us(fn, reps: int = 300) -> float:
    for _ in range(30):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def run_case(M: int, K: int, N: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    linear = torch.ops.mkldnn._linear_pointwise.default
    h, w, z = torch.randn(M, K), torch.randn(N, K), torch.randn(M, N)
    wt = w.t()
    mkl = median_us(lambda: z.addmm_(h, wt))
    onednn = median_us(lambda: z.add_(linear(h, w, None, "none", [], "")))
    return {"mkl": mkl, "onednn": onednn}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        print(json.dumps(run_case(*json.loads(args.case), args.threads)))
        return
    print(f"torch {torch.__version__}, torch.set_num_threads({args.threads}), median of 300 calls")
    print("\n| M | K | N | MFLOP | MKL addmm_ us | oneDNN us | faster |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for M, K, N in SHAPES:
        cmd = [
            sys.executable,
            __file__,
            "--threads",
            str(args.threads),
            "--case",
            json.dumps([M, K, N]),
        ]
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        best = "oneDNN" if r["onednn"] < r["mkl"] else "MKL"
        mflop = 2 * M * K * N / 1e6
        print(f"| {M} | {K} | {N} | {mflop:.1f} | {r['mkl']:.1f} | {r['onednn']:.1f} | {best} |")


if __name__ == "__main__":
    main()
