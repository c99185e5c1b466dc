"""Multi30k translation (train 29,000 pairs, select on val, report on test_2016_flickr), trained
from scratch with `rnnkit.translate` on the lower-cased, Moses-tokenised `tok/` files.

One run in this (fresh) process with the stated thread count: it trains a Seq2Seq (the best
validation loss is kept), then translates test2016 with greedy search and with beam search and
prints one markdown table row: sacrebleu BLEU (13a tokenisation of the tokenised text) and chrF
of both, the validation loss, epochs and the training wall time. The run directory holds the
checkpoint, metrics.csv and summary.json (with the sacrebleu signatures).

    python benchmarks/bench_multi30k.py --direction de-en --threads 1   # the README's runs
    python benchmarks/bench_multi30k.py --direction en-de --threads 1
    python benchmarks/bench_multi30k.py --attention bahdanau --hidden 512 --epochs 12

Reference (data README): a bi-GRU + Bahdanau attention tutorial reaches 28.3 BLEU de-en
(GPU, greedy, spaCy tokens); text-only attention NMT papers report 33.7-38 en-de.
"""

import argparse
import json
import logging
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k" / "tok"


def split(name: str, lang: str) -> str:
    return str(DATA / f"{name}.lc.norm.tok.{lang}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--direction", choices=("de-en", "en-de"), default="de-en")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cell", default="gru")
    p.add_argument("--attention", default="luong")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embed", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-time", type=float, default=None, help="seconds")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--out", default=None, help="the run directory (replaced)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from rnnkit import translate
    from rnnkit.translate.evaluate import score

    src, tgt = a.direction.split("-")
    out = a.out or f"runs/mt-{a.direction}"
    options = dict(
        source=split("train", src),
        target=split("train", tgt),
        valid_source=split("val", src),
        valid_target=split("val", tgt),
        test_source=split("test_2016_flickr", src),
        test_target=split("test_2016_flickr", tgt),
        cell=a.cell,
        attention=a.attention,
        hidden=a.hidden,
        embed=a.embed,
        dropout=a.dropout,
        epochs=a.epochs,
        beam=a.beam,
        progress=False,
        tensorboard=False,
    )
    if a.max_time:
        options["max_time"] = a.max_time
    t0 = time.perf_counter()
    run = translate.train(options, out, overwrite=True)
    wall = time.perf_counter() - t0
    s = run.summary
    data = translate.load_data(translate.plan(options)[0])
    greedy, _ = score(run.model, data.test, data.test_references, run.target, beam=1)
    s["test_greedy"] = greedy
    s["threads"] = a.threads
    Path(out, "summary.json").write_text(json.dumps(s, indent=1))
    t = s["test"]
    model = f"{a.cell} {a.attention} H{a.hidden} E{a.embed}"
    print(
        "| direction | model | test BLEU (beam 5) | chrF | test BLEU (greedy) | valid loss | "
        "epochs | training time | threads |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    print(
        f"| {a.direction} | {model} | {t['bleu']:.2f} | {t['chrf']:.2f} | {greedy['bleu']:.2f} | "
        f"{s['best_valid_loss']:.3f} | {s['epochs']:.1f} | {s['seconds'] / 60:.1f} min "
        f"(all {wall / 60:.1f}) | {a.threads} |"
    )
    print(f"BLEU signature: {t['bleu_signature']}")


if __name__ == "__main__":
    main()
