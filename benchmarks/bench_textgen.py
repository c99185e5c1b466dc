"""Training throughput of the char-LM: rnnkit's layers vs torch.nn's in the same model and loop.

Prints one markdown table: characters per second of training steps (forward, backward, AdamW,
gradient clipping) of `rnnkit.models.CharLM` with its recurrent stack from rnnkit and with the
same stack from torch.nn (weights copied), on tiny-shakespeare batches. Each implementation
runs in several fresh processes (alternating, so both see the same machine) with the stated
thread count; the figure is the median over the processes of each one's median step.
`--matmul-precision medium` sets torch's float32 matmul precision in both (bfloat16 products
with float32 sums where the CPU has bfloat16 instructions; rnnkit's kernels honour it).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from bench_layers import cpu_name

DATA = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "tiny-shakespeare"
    / "input.txt"
)


def run_case(impl: str, cell: str, hidden: int, layers: int, batch: int, bptt: int, steps: int):
    from rnnkit.textgen.data import CharVocab, TextStreams, read_text
    from rnnkit.textgen.model import CharLM

    text = read_text(DATA)
    vocab = CharVocab.from_text(text)
    streams = TextStreams(vocab.encode(text), batch, bptt)
    torch.manual_seed(0)
    model = CharLM(len(vocab), cell=cell, hidden=hidden, layers=layers, dropout=0.2)
    if impl == "torch.nn":  # the same model with torch.nn's recurrent stack
        rnn = model.rnn
        ref = getattr(torch.nn, cell.upper())(
            rnn.input_size, hidden, layers, batch_first=True, dropout=0.2
        )
        ref.load_state_dict(rnn.state_dict())
        model.rnn = ref
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    times = []
    for k in range(steps):
        x, y = streams.batch(k)
        t0 = time.perf_counter()
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    return {"chars_per_s": batch * bptt / statistics.median(times[2:]), "loss": loss.item()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cell", default="lstm")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--bptt", type=int, default=128)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--processes", type=int, default=3, help="fresh processes per implementation")
    p.add_argument(
        "--matmul-precision",
        default="highest",
        choices=("highest", "high", "medium"),
        help="torch.set_float32_matmul_precision in both implementations",
    )
    p.add_argument("--case", help=argparse.SUPPRESS)
    a = p.parse_args()
    shape = (a.cell, a.hidden, a.layers, a.batch, a.bptt, a.steps)
    if a.case:
        torch.set_num_threads(a.threads)
        torch.set_float32_matmul_precision(a.matmul_precision)
        print(json.dumps(run_case(a.case, *shape)))
        return
    print(
        f"CharLM {a.layers}x{a.hidden} {a.cell}, batch {a.batch}, bptt {a.bptt}, AdamW + clipping; "
        f"torch {torch.__version__}, CPU: {cpu_name()}, torch.set_num_threads({a.threads}), "
        f"float32 matmul precision {a.matmul_precision}, median of {a.steps - 2} "
        f"steps after 2 warm-up steps, each implementation in {a.processes} fresh processes "
        "(median of their medians)\n"
    )
    print("| recurrent stack | chars/s | rnnkit / torch.nn |\n|---|---:|---:|")
    runs = {"rnnkit": [], "torch.nn": []}
    for _ in range(a.processes):
        for impl in runs:
            cmd = [sys.executable, __file__, "--case", impl] + sum(
                (
                    [f"--{k.replace('_', '-')}", str(v)]
                    for k, v in vars(a).items()
                    if k not in ("case", "processes")
                ),
                [],
            )
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[impl].append(json.loads(done.stdout)["chars_per_s"])
    res = {impl: {"chars_per_s": statistics.median(v)} for impl, v in runs.items()}
    ratio = res["rnnkit"]["chars_per_s"] / res["torch.nn"]["chars_per_s"]
    for impl in res:
        cps = res[impl]["chars_per_s"]
        print(
            f"| {impl} | {cps:,.0f} | {ratio:.2f}x |"
            if impl == "rnnkit"
            else f"| {impl} | {cps:,.0f} | |"
        )


if __name__ == "__main__":
    main()
