"""What denormal floats cost BPTT: a training step (forward + backward) of one layer with the
loss on its last step only (the adding problem's shape, B50 I2 H128), where the gradient
vanishes backwards through time and passes through float32's denormal range (below 1.2e-38),
with torch.set_flush_denormal off (torch's default) and on (rnnkit's Trainer default).

Each case in a fresh process, torch.set_num_threads stated, the median of `--repeat` steps.
Prints one markdown table.
"""

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, statistics, time
import torch
torch.set_num_threads({threads})
torch.set_flush_denormal({flush})
import rnnkit
cell, T = {cell!r}, {T}
make = {{"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}}[cell]
layer = make(2, 128, batch_first=True)
x = torch.rand(50, T, 2)
times = []
for k in range({repeat} + 2):
    t0 = time.perf_counter()
    out, _ = layer(x)
    out[:, -1].pow(2).sum().backward()
    times.append(time.perf_counter() - t0)
print(json.dumps(1e3 * statistics.median(times[2:])))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=7)
    a = p.parse_args()
    print(
        f"training step of one layer, B50 I2 H128, loss on the last step; "
        f"torch.set_num_threads({a.threads}); median of {a.repeat}, a fresh process per case\n"
    )
    print("| cell | T | flush off ms | flush on ms | off/on |\n|---|---:|---:|---:|---:|")
    for cell in ("rnn", "lstm", "gru"):
        for T in (100, 200, 400):
            ms = {}
            for flush in (False, True):
                code = CHILD.format(threads=a.threads, flush=flush, cell=cell, T=T, repeat=a.repeat)
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(out.stderr)
                ms[flush] = json.loads(out.stdout)
            print(
                f"| {cell} | {T} | {ms[False]:.1f} | {ms[True]:.1f} | "
                f"{ms[False] / ms[True]:.1f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
