"""Batch-1 inference latency of exported models: onnxruntime against rnnkit and torch.nn eager.

Two models in the configurations the README reports, with untrained weights (the latency
depends on the shapes only):

- imdb: the classifier of bench_imdb.py (a bidirectional 1 x 128 GRU over a 128-dim embedding
  of a 30,000-token vocabulary, max pooling, class probabilities) on one review of 230 tokens
  (about the mean length of an IMDB review in words);
- etth2: the forecaster of bench_etth2.py (a 1 x 64 GRU, direct head, lookback 336, horizon 24)
  in the data's units, as `rnnkit forecast export` writes it (the scaler inside).

Each is run by onnxruntime on the model `rnnkit <task> export` writes (the same wrapper modules;
ONNX's own GRU operator), by rnnkit in eager mode, and by the same model with torch.nn.GRU
swapped in (the same weights; no packing, since one full-length sequence needs none), under
torch.no_grad. Every case runs in a fresh process with the stated thread count
(torch.set_num_threads and OMP_NUM_THREADS; onnxruntime: intra_op_num_threads, one inter-op
thread); the onnxruntime process imports numpy and onnxruntime only. The table gives the median
and the minimum of --repeats calls after --warmup calls (on a machine shared with other work the
minimum is the steadier figure), and the largest difference of each runtime's output from
rnnkit's.

    python benchmarks/bench_onnx.py [--threads 1,2] [--repeats 300] [--work DIR]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("imdb", "etth2")
RUNTIMES = ("onnxruntime", "rnnkit", "torch.nn")
REVIEW_TOKENS = 230  # the imdb input's length
IMDB = {"vocab": 30_000, "embed": 128, "hidden": 128}  # bench_imdb.py's MODEL
ETTH2 = {"lookback": 336, "horizon": 24, "hidden": 64}  # bench_etth2.py's MODEL, horizon 24


# ---- the models (child processes)


def build(name: str, torch_layer: bool = False):
    """(module in eval mode, inputs) with the weights seeded by 0; torch_layer: torch.nn.GRU
    in place of rnnkit's, holding the same weights."""
    import torch

    from rnnkit.classify.export import Probabilities
    from rnnkit.classify.model import SequenceClassifier
    from rnnkit.forecast.export import OriginalUnits
    from rnnkit.forecast.model import Forecaster
    from rnnkit.forecast.scaler import Scaler

    torch.manual_seed(0)
    if name == "imdb":
        model = SequenceClassifier(IMDB["vocab"], 2, cell="gru", bidirectional=True,
                                   embed=IMDB["embed"], hidden=IMDB["hidden"], pooling="max",
                                   dropout=0.4)  # fmt: skip
        module = Probabilities(model)
        ids = torch.randint(2, IMDB["vocab"], (1, REVIEW_TOKENS))
        inputs = (ids, torch.tensor([REVIEW_TOKENS]))
        if torch_layer:
            model.rnn = _torch_gru(model.rnn, bidirectional=True)
    else:
        model = Forecaster(1, ETTH2["horizon"], arch="direct", cell="gru",
                           hidden=ETTH2["hidden"], layers=1)  # fmt: skip
        scaler = Scaler.from_dict({"kind": "standard", "shift": [30.0], "scale": [10.0]})
        module = OriginalUnits(model, scaler, None)
        walk = 30 + torch.randn(1, ETTH2["lookback"], 1).cumsum(1)  # (1, L, 1)
        inputs = (walk,)
        if torch_layer:
            model.encoder = _torch_gru(model.encoder, bidirectional=False)
    return module.eval(), inputs


def _torch_gru(layer, bidirectional: bool):
    import torch

    nn_layer = torch.nn.GRU(layer.input_size, layer.hidden_size, layer.num_layers,
                            batch_first=True, bidirectional=bidirectional)  # fmt: skip
    nn_layer.load_state_dict(layer.state_dict())

    class TorchLayer(torch.nn.Module):
        """torch.nn.GRU behind rnnkit's call, layer(x, hx, lengths=...): every sequence here
        is full-length, so lengths changes nothing (checked)."""

        def __init__(self):
            super().__init__()
            self.layer = nn_layer

        def forward(self, x, hx=None, lengths=None):
            assert lengths is None or bool((lengths == x.shape[1]).all())
            return self.layer(x, hx)

    return TorchLayer()


def prepare(work: Path) -> None:
    """Write each model's ONNX file (as `rnnkit <task> export` would) and inputs."""
    import warnings

    import numpy as np
    import torch

    import rnnkit.export

    for name in MODELS:
        module, inputs = build(name)
        batch = torch.export.Dim("batch", min=1)
        if name == "imdb":
            time_ = torch.export.Dim("time", min=1)
            shapes, names, out = ({0: batch, 1: time_}, {0: batch}), ["ids", "lengths"], "probs"
        else:
            lookback = torch.export.Dim("lookback", min=2)
            shapes, names, out = (({0: batch, 1: lookback},),), ["y"], "forecast"
        example = tuple(torch.cat([t, t]) for t in inputs)  # batch 2: dynamic
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            rnnkit.export.onnx(module, example, str(work / f"{name}.onnx"),
                               dynamic_shapes=shapes, input_names=names,
                               output_names=[out])  # fmt: skip
        np.savez(work / f"{name}.npz", **{n: t.numpy() for n, t in zip(names, inputs)})


def run_case(work: Path, name: str, runtime: str, threads: int, warmup: int, repeats: int):
    """Time one case in this process; print {"times": [...], "output": [...]} as JSON."""
    import numpy as np

    feeds = dict(np.load(work / f"{name}.npz"))
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(work / f"{name}.onnx"), options,
                                       providers=["CPUExecutionProvider"])  # fmt: skip

        def call():
            return session.run(None, feeds)[0]
    else:
        import torch

        torch.set_num_threads(threads)
        module, _ = build(name, torch_layer=runtime == "torch.nn")
        inputs = tuple(torch.from_numpy(feeds[k]) for k in feeds)

        def call():
            with torch.no_grad():
                return module(*inputs).numpy()

    for _ in range(warmup):
        out = call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"times": times, "output": out.ravel().tolist()}))


# ---- the parent


def child(args, *argv) -> dict:
    env = {**os.environ}
    threads = argv[argv.index("--threads") + 1] if "--threads" in argv else "1"
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = threads
    cmd = [sys.executable, __file__, *argv, "--work", str(args.work)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1]) if done.stdout.strip() else {}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> str:
    code = ("import torch, onnxruntime, rnnkit; print(f'torch {torch.__version__}, onnxruntime "
            "{onnxruntime.__version__}, rnnkit from {rnnkit.__file__}')")  # fmt: skip
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout


def table(args, results: dict) -> list[str]:
    head = " | ".join(f"{t} thread{'s' * (t > 1)}: median (min)" for t in args.threads)
    lines = [f"| model | runtime | {head} | max abs diff from rnnkit |",
             "|---|---|" + "---:|" * (len(args.threads) + 1)]  # fmt: skip
    for name in MODELS:
        for runtime in RUNTIMES:
            cells = []
            for t in args.threads:
                ms = sorted(x * 1e3 for x in results[name, runtime, t]["times"])
                cells.append(f"{ms[len(ms) // 2]:.3f} ms ({ms[0]:.3f})")
            mine = results[name, runtime, args.threads[0]]["output"]
            ref = results[name, "rnnkit", args.threads[0]]["output"]
            diff = max(abs(a - b) for a, b in zip(mine, ref))
            lines.append(f"| {name} | {runtime} | {' | '.join(cells)} | {diff:.1e} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--work", help="where the ONNX files go (default: a temporary folder)")
    p.add_argument("--child", help=argparse.SUPPRESS)  # prepare | MODEL:RUNTIME
    a = p.parse_args()
    if a.child == "prepare":
        return prepare(Path(a.work))
    if a.child:
        name, runtime = a.child.split(":")
        return run_case(Path(a.work), name, runtime, int(a.threads), a.warmup, a.repeats)
    a.threads = [int(t) for t in a.threads.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        a.work = Path(a.work or tmp)
        a.work.mkdir(parents=True, exist_ok=True)
        child(a, "--child", "prepare")
        results = {}
        for name in MODELS:
            for runtime in RUNTIMES:
                for t in a.threads:
                    results[name, runtime, t] = child(
                        a, "--child", f"{name}:{runtime}", "--threads", str(t),
                        "--warmup", str(a.warmup), "--repeats", str(a.repeats),
                    )  # fmt: skip
    print("# Batch-1 inference latency: onnxruntime (rnnkit's ONNX export) vs eager\n")
    print(f"- CPU: {cpu_name()} ({os.cpu_count()} logical CPUs); Python "
          f"{platform.python_version()}; {versions().strip()}")  # fmt: skip
    print(f"- imdb: 1 review of {REVIEW_TOKENS} tokens; etth2: 1 window of lookback "
          f"{ETTH2['lookback']}, horizon {ETTH2['horizon']}; {a.repeats} timed calls after "
          f"{a.warmup}, each case a fresh process\n")  # fmt: skip
    print("\n".join(table(a, results)))


if __name__ == "__main__":
    main()
