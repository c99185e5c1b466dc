"""What length bucketing with `lengths=` saves: IMDB training steps of the sentiment model on
bucketed batches, against the same batches padded to the longest review.

Cases (each in a fresh process, torch.set_num_threads stated):
  bucketed          each batch padded to its own longest review, run with lengths=
  padded+lengths    the same batches padded to the longest review of the data, with lengths=
  padded            the same padded batches run over every step (no lengths: what a model
                    without variable-length support does; the padding then changes results)
Throughput counts real tokens (not padding) per second of training steps (forward, backward,
AdamW, clipping); the median over the timed steps. Prints one markdown table.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

CASES = ("bucketed", "padded+lengths", "padded")


def run_case(case: str, a) -> dict:
    from imdb import unpacked

    from rnnkit.classify.labelled import read_labelled
    from rnnkit.classify.model import SequenceClassifier
    from rnnkit.classify.text import TextEncoder
    from rnnkit.classify.tokenize import Tokenizer
    from rnnkit.data.buckets import BucketBatches
    from rnnkit.data.vocab import Vocab

    examples = read_labelled(unpacked() / "train")
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(examples), generator=g)[: a.reviews].tolist()
    texts = [examples.texts[k] for k in pick]
    labels = [int(examples.labels[k] == "pos") for k in pick]
    tok = Tokenizer("word")
    vocab = Vocab.build((tok(t) for t in texts), min_freq=2, max_size=30_000)
    data = TextEncoder(tok, vocab, a.max_tokens).encode(texts, labels)
    longest = int(data.lengths.max())
    batches = BucketBatches(data, a.batch, seed=0, pad_to=None if case == "bucketed" else longest)
    torch.manual_seed(0)
    model = SequenceClassifier(
        len(vocab), 2, cell=a.cell, embed=128, hidden=a.hidden, bidirectional=True
    )
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    times, tokens, padded = [], [], []
    for k in range(a.steps):
        (ids, lengths), y, n = batches(k)
        if case == "padded":
            lengths = torch.full_like(lengths, ids.shape[1])
        t0 = time.perf_counter()
        _, loss = model((ids, lengths), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        tokens.append(n)
        padded.append(ids.numel())
    rates = [n / t for n, t in zip(tokens[2:], times[2:])]
    return {
        "tokens_per_s": statistics.median(rates),
        "padding": 1 - sum(tokens) / sum(padded),
        "longest": longest,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cell", default="gru")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=400)
    p.add_argument("--reviews", type=int, default=3200, help="a random subset of the 25k")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--case", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.case:
        torch.set_num_threads(a.threads)
        print(json.dumps(run_case(a.case, a)))
        return
    print(
        f"IMDB train, {a.reviews} random reviews cut to {a.max_tokens} tokens; bidirectional "
        f"{a.cell}, embed 128, hidden {a.hidden}, batch {a.batch}, AdamW + clipping; "
        f"torch {torch.__version__}, torch.set_num_threads({a.threads}); median over "
        f"{a.steps - 2} steps after 2 warm-up steps, each case in a fresh process\n"
    )
    print("| batches | padding | real tokens/s | bucketed speed-up |\n|---|---:|---:|---:|")
    res = {}
    for case in CASES:
        cmd = [sys.executable, __file__, "--case", case] + sum(
            ([f"--{k.replace('_', '-')}", str(v)] for k, v in vars(a).items() if k != "case"), []
        )
        res[case] = json.loads(
            subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        )
    base = res["bucketed"]["tokens_per_s"]
    for case, r in res.items():
        speedup = base / r["tokens_per_s"]
        print(f"| {case} | {r['padding']:.0%} | {r['tokens_per_s']:,.0f} | {speedup:.2f}x |")


if __name__ == "__main__":
    main()
