"""`rnnkit translate train | run | eval`: a parser and a command per verb over `rnnkit.translate`
(train's in `cli_translate_train`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rnnkit import translate
from rnnkit.data.files import write_atomically
from rnnkit.train.cli import DIR_HELP, log_to_stderr, task_parser
from rnnkit.train.options import positive_int
from rnnkit.translate.cli_train import EXAMPLES, train_command_parser
from rnnkit.translate.pairs import read_lines, read_pairs
from rnnkit.translate.plot import plot_attention


def _add_decoding_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--beam", type=positive_int, default=5, metavar="K", help="1: greedy (default: 5)"
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=1.0,
        metavar="A",
        help="length normalisation of beam search: log p / length^A (default: %(default)s)",
    )
    parser.add_argument(
        "--max-length",
        type=positive_int,
        metavar="N",
        help="at most N tokens per translation (default: 2 x the source length + 10)",
    )
    parser.add_argument("--encoding", default="utf-8", help="of the files (default: utf-8)")
    parser.add_argument("--device", default="cpu", help="(default: %(default)s)")


# ---- run


def run_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "run",
        help="translate sentences with a trained model",
        description="Print the translation of each TEXT, or with --input and --output translate "
        "a file line by line (empty lines stay empty). --plot draws the attention of one "
        "TEXT's translation as a heat map PNG.",
    )
    parser.add_argument("dir", metavar="DIR", help=DIR_HELP)
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="sentences to translate")
    parser.add_argument("--input", metavar="FILE", help="a file of sentences, one per line")
    parser.add_argument("--output", metavar="FILE", help="where to write their translations")
    parser.add_argument("--force", action="store_true", help="replace an existing --output")
    parser.add_argument("--plot", metavar="FILE.png", help="the attention heat map of one TEXT")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per TEXT: text, translation, score"
    )
    _add_decoding_options(parser)
    parser.set_defaults(func=run_command)
    return parser


def run_command(args: argparse.Namespace) -> int:
    if bool(args.input) != bool(args.output):
        raise ValueError("--input and --output go together: give both, or TEXT arguments")
    if args.input and args.texts:
        raise ValueError("give TEXT arguments or --input FILE, not both")
    if not args.input and not args.texts:
        raise ValueError('nothing to translate: give a TEXT (e.g. "ein mann .") or --input')
    if args.plot and len(args.texts) != 1:
        raise ValueError("--plot draws one translation: give exactly one TEXT")
    output = Path(args.output) if args.output else None
    if output is not None and output.exists() and not args.force:
        raise ValueError(f"{output} exists; choose another --output or pass --force to replace it")
    with log_to_stderr(20):
        model = translate.load(args.dir, args.device)
        if args.texts:
            if any(not t.strip() for t in args.texts):
                raise ValueError("a TEXT is empty; give a sentence to translate")
            hyps = model.hypotheses(args.texts, args.beam, args.alpha, max_length=args.max_length)
            for text, h in zip(args.texts, hyps, strict=True):
                out = model.target.decode(h.tokens)
                print(json.dumps({"text": text, "translation": out, "score": h.score}) if args.json
                      else out)  # fmt: skip
            if args.plot:
                src, tgt, weights = model.attention(args.texts[0], args.beam)
                plot_attention(args.plot, src, tgt, weights, title=args.texts[0])
                print(f"attention heat map written to {args.plot}")
            return 0
        lines = read_lines(args.input, args.encoding)
        full = [n for n, line in enumerate(lines) if line.strip()]
        sentences = [lines[n] for n in full]
        translations = model.translate(sentences, args.beam, args.alpha, args.max_length)
        result = [""] * len(lines)
        for n, t in zip(full, translations, strict=True):
            result[n] = t
    write_atomically(output, "".join(t + "\n" for t in result))
    empty = len(lines) - len(full)
    print(
        f"translated {len(full):,} sentences of {args.input} into {output}"
        + (f"; {empty:,} empty lines left empty" if empty else "")
    )
    return 0


# ---- eval


def eval_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "eval",
        help="BLEU and chrF (sacrebleu) on parallel text",
        description="Translate --source and score the translations against --target with "
        "sacrebleu's corpus BLEU (13a tokenisation of the text as given) and chrF; also the "
        "teacher-forced loss and perplexity. Pairs with an empty side are skipped and counted.",
    )
    parser.add_argument("dir", metavar="DIR", help=DIR_HELP)
    parser.add_argument("--source", required=True, metavar="FILE", help="sentences (or a TSV)")
    parser.add_argument("--target", metavar="FILE", help="their reference translations")
    parser.add_argument("--output", metavar="FILE", help="also write the translations here")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: bleu, chrf, their signatures, loss, ppl, sentences, "
        "skipped, beam, checkpoint, step",
    )
    _add_decoding_options(parser)
    parser.set_defaults(func=eval_command)
    return parser


def eval_command(args: argparse.Namespace) -> int:
    with log_to_stderr(20):
        model = translate.load(args.dir, args.device)
        pairs = read_pairs(args.source, args.target, args.encoding)
        result = model.evaluate(pairs, args.beam, args.alpha, args.max_length)
    translations = result.pop("translations")
    if args.output:
        write_atomically(Path(args.output), "".join(t + "\n" for t in translations))
    result = {**result, "checkpoint": str(model.info["path"]), "step": model.info["step"]}
    if args.json:
        print(json.dumps(result))
        return 0
    skipped = f" ({result['skipped']:,} pairs skipped for an empty side)" if pairs.skipped else ""
    print(
        f"{pairs.origin}: BLEU {result['bleu']:.2f}  chrF {result['chrf']:.2f}  "
        f"loss {result['loss']:.4f}  ppl {result['ppl']:.2f}  over {result['sentences']:,} "
        f"sentences{skipped}, beam {args.beam}\n"
        f"BLEU {result['bleu_signature']}\nchrF {result['chrf_signature']}\n"
        f"({result['checkpoint']}, step {result['step']})"
    )
    return 0


def translate_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return task_parser(
        subparsers,
        "translate",
        (train_command_parser, run_command_parser, eval_command_parser),
        help="machine translation (seq2seq with attention): train, run, eval",
        description="Train an attentional encoder-decoder on parallel text, translate with "
        "greedy or beam search, and score translations with BLEU and chrF.",
        epilog=EXAMPLES,
    )
