"""`rnnkit classify train | predict | eval | export`: a parser and a command per verb over
`rnnkit.classify` (train's in `cli_classify_train`, export's model in `classify.export`)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from rnnkit import classify
from rnnkit.classify.cli_train import DATA_FORMATS, EXAMPLES, train_command_parser
from rnnkit.classify.export import build as build_export
from rnnkit.classify.labelled import read_labelled
from rnnkit.data.files import write_atomically
from rnnkit.export.cli import export_verb
from rnnkit.train.cli import DIR_HELP, task_parser


def _add_reading_options(parser: argparse.ArgumentParser, labels: bool) -> None:
    parser.add_argument(
        "--text-column", metavar="NAME", help="column/key of the texts (default: the run's)"
    )
    if labels:
        parser.add_argument(
            "--label-column", metavar="NAME", help="column/key of the labels (default: the run's)"
        )
    parser.add_argument("--encoding", help="the file's text encoding (default: the run's)")
    parser.add_argument(
        "--on-missing",
        choices=("skip", "error"),
        help="rows with a missing or empty field: skip (and count) or stop (default: skip)",
    )
    parser.add_argument("--device", default="cpu", help="(default: %(default)s)")


def _read(args: argparse.Namespace, model: classify.Classifier, path: str, labels: bool):
    run = model.data_config
    return read_labelled(
        path,
        text_column=args.text_column or run.get("text_column", "text"),
        label_column=getattr(args, "label_column", None) or run.get("label_column", "label"),
        labels=labels,
        encoding=args.encoding or run.get("encoding", "utf-8"),
        on_missing=args.on_missing or "skip",
    )


# ---- predict


def predict_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "predict",
        help="label texts with a trained classifier",
        description="Print the label and class probabilities of each TEXT, or with --input and "
        "--output label a whole file (CSV, TSV, JSONL, or .txt with one text per line) into a "
        "CSV: the text, the predicted label and one probability column per class.",
    )
    parser.add_argument("dir", metavar="DIR", help=DIR_HELP)
    parser.add_argument(
        "texts",
        nargs="*",
        metavar="TEXT",
        help="texts to label; an empty TEXT is an error, and one with no word the model knows "
        "is labelled with a warning on stderr",
    )
    parser.add_argument("--input", metavar="FILE", help="a file of texts to label")
    parser.add_argument("--output", metavar="FILE.csv", help="where to write --input's labels")
    parser.add_argument("--force", action="store_true", help="replace an existing --output")
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per TEXT: text, label, probabilities",
    )
    _add_reading_options(parser, labels=False)
    parser.set_defaults(func=predict_command)
    return parser


def predict_command(args: argparse.Namespace) -> int:
    if bool(args.input) != bool(args.output):
        raise ValueError("--input and --output go together: give both, or TEXT arguments")
    if args.input and args.texts:
        raise ValueError("give TEXT arguments or --input FILE, not both")
    if not args.input and not args.texts:
        raise ValueError('nothing to label: give a TEXT (e.g. "The movie was great") or --input')
    output = Path(args.output) if args.output else None
    if output is not None and output.exists() and not args.force:
        raise ValueError(f"{output} exists; choose another --output or pass --force to replace it")
    model = classify.load(args.dir, args.device)
    if args.texts:
        _warn_unknown(model, args.texts)
        probs = model.predict_proba(args.texts)
        for text, p in zip(args.texts, probs.tolist()):
            label = model.classes[max(range(len(p)), key=p.__getitem__)]
            ranked = sorted(zip(model.classes, p), key=lambda cp: -cp[1])
            if args.json:
                print(json.dumps({"text": text, "label": label, "probabilities": dict(ranked)}))
            else:
                shown = "  ".join(f"{c} {q:.3f}" for c, q in ranked)
                print(f"{label}\t{shown}")
        return 0
    examples = _read(args, model, args.input, labels=False)
    _warn_unknown(model, examples.texts)
    probs = model.predict_proba(examples.texts)  # (N, C)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "label", *(f"p_{c}" for c in model.classes)])
    for text, p in zip(examples.texts, probs.tolist()):
        label = model.classes[max(range(len(p)), key=p.__getitem__)]
        writer.writerow([text, label, *(f"{q:.6f}" for q in p)])
    write_atomically(output, buffer.getvalue())
    skipped = f"; {examples.skipped} rows skipped for a missing text" if examples.skipped else ""
    print(f"labelled {len(examples):,} texts of {args.input} into {output}{skipped}")
    return 0


def _warn_unknown(model: classify.Classifier, texts: list[str]) -> None:
    """A warning on stderr for texts of which the model knows no word (up to 3, then a count)."""
    unknown = model.unknown(texts)
    for i in unknown[:3]:
        print(
            f"warning: the model knows no word of {texts[i][:60]!r}; its label is a guess",
            file=sys.stderr,
        )
    if len(unknown) > 3:
        more = len(unknown) - 3
        print(f"warning: {more} more texts hold no word the model knows", file=sys.stderr)


# ---- eval


def eval_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "eval",
        help="accuracy, macro-F1, per-class precision/recall and confusion matrix",
        description=f"Evaluate a trained classifier on labelled data: {DATA_FORMATS}.",
    )
    parser.add_argument("dir", metavar="DIR", help=DIR_HELP)
    parser.add_argument("--data", required=True, metavar="FILE|DIR", help="the labelled data")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: accuracy (a fraction), macro_f1, loss, per_class, "
        "confusion (rows: true class), labels, examples, skipped, checkpoint, step",
    )
    _add_reading_options(parser, labels=True)
    parser.set_defaults(func=eval_command)
    return parser


def eval_command(args: argparse.Namespace) -> int:
    model = classify.load(args.dir, args.device)
    examples = _read(args, model, args.data, labels=True)
    result = model.evaluate(examples)
    result = {
        **result,
        "skipped": examples.skipped,
        "checkpoint": str(model.info["path"]),
        "step": model.info["step"],
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(format_report(result, args.data))
    return 0


def format_report(r: dict, source: str) -> str:
    labels = r["labels"]
    width = max(8, *(len(c) for c in labels))
    lines = [
        f"{source}: accuracy {r['accuracy']:.2%}  macro-F1 {r['macro_f1']:.4f}  "
        f"loss {r['loss']:.4f}  over {r['examples']:,} texts"
        + (f" ({r['skipped']:,} rows skipped)" if r["skipped"] else ""),
        "",
        f"{'class':<{width}}  precision  recall     f1  support",
    ]
    for c in labels:
        k = r["per_class"][c]
        lines.append(
            f"{c:<{width}}  {k['precision']:9.4f}  {k['recall']:6.4f}  {k['f1']:.4f}  "
            f"{k['support']:7,}"
        )
    lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
    lines.append(" " * width + "  " + "  ".join(f"{c:>{width}}" for c in labels))
    for c, row in zip(labels, r["confusion"]):
        lines.append(f"{c:<{width}}  " + "  ".join(f"{n:>{width},}" for n in row))
    lines.append(f"({r['checkpoint']}, step {r['step']})")
    return "\n".join(lines)


# ---- export


def export_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = export_verb(
        verbs,
        build_export,
        items="texts",
        help="write the classifier as ONNX or a torch.export program, with a JSON sidecar",
        description="Write the classifier as one model file, token ids (batch, time) and "
        "lengths (batch,) in, class probabilities (batch, classes) out, with dynamic batch and "
        "time, and a JSON sidecar beside it holding what turns a text into ids (the "
        "tokenizer's regular expressions, the vocabulary, the truncation) and the labels. "
        "Before writing, it runs held-back texts (--data, else the run's test or validation "
        "texts) through the export and through rnnkit and prints the largest difference; an "
        "export that differs is not written.",
        epilog="examples:\n  rnnkit classify export runs/imdb\n"
        "  rnnkit classify export runs/imdb --format pt2 --out imdb.pt2",
    )
    parser.add_argument(
        "--data", metavar="FILE|DIR", help="held-back texts (default: the run's test texts)"
    )
    parser.add_argument(
        "--text-column", metavar="NAME", help="column/key of the texts (default: the run's)"
    )
    parser.add_argument("--encoding", help="the file's text encoding (default: the run's)")
    return parser


def classify_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return task_parser(
        subparsers,
        "classify",
        (
            train_command_parser,
            predict_command_parser,
            eval_command_parser,
            export_command_parser,
        ),
        help="text classification (e.g. sentiment): train, predict, eval, export",
        description="Train a recurrent classifier on labelled texts, label new texts with it, "
        "and evaluate it.",
        epilog=EXAMPLES,
    )
