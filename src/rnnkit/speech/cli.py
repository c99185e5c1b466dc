"""`rnnkit speech train | transcribe | eval | export | fsdd-manifest`: a parser and a command
per verb over `rnnkit.speech` (train's in `cli_speech_train`, export's model in
`speech.export`)."""

from __future__ import annotations

import argparse
import json
import logging

from rnnkit.export.cli import export_verb
from rnnkit.speech.cli_train import EXAMPLES, format_result, train_command_parser
from rnnkit.train.cli import DIR_HELP, log_to_stderr, task_parser
from rnnkit.train.options import nonnegative_int, positive_int


def _beam_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--beam",
        type=positive_int,
        default=1,
        help="ctc: prefix beam search with this beam; 1: greedy (default: %(default)s)",
    )
    parser.add_argument("--device", default="cpu", help="(default: %(default)s)")


# ---- transcribe


def transcribe_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "transcribe",
        help="print what a trained model hears in WAV files",
        description="Print one line per FILE: its path and transcript (a classifier adds the "
        "class probability). --stream runs a unidirectional CTC model chunk by chunk. Audio "
        "far shorter or longer than the training utterances is transcribed with a warning "
        "on stderr.",
    )
    parser.add_argument("dir", metavar="DIR", help=DIR_HELP)
    parser.add_argument("files", nargs="+", metavar="FILE.wav", help="audio files (WAV)")
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.add_argument(
        "--stream",
        type=positive_int,
        metavar="MS",
        help="feed the audio in chunks of MS milliseconds through the stepping API "
        "(unidirectional CTC models), printing the text as it is recognised",
    )
    _beam_option(parser)
    parser.set_defaults(func=transcribe_command)
    return parser


def transcribe_command(args: argparse.Namespace) -> int:
    from rnnkit import speech
    from rnnkit.speech.audio import read_wav

    with log_to_stderr(logging.INFO):
        model = speech.load(args.dir, args.device)
        if args.stream:
            chunk = max(1, model.features.sample_rate * args.stream // 1000)
            for path in args.files:
                wave, stream = read_wav(path, model.features.sample_rate), model.stream()
                model.warn_durations([path], [model.features.frames(len(wave))])
                print(f"{path}\t", end="", flush=True)
                for start in range(0, len(wave), chunk):
                    print(stream.feed(wave[start : start + chunk]), end="", flush=True)
                print(stream.finish(), flush=True)
            return 0
        results = model.transcribe(args.files, beam=args.beam)
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            p = f"\t{r['probability']:.3f}" if "probability" in r else ""
            print(f"{r['path']}\t{r['transcript']}{p}")
    return 0


# ---- eval


def eval_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "eval",
        help="accuracy (classifier) or character and word error rates (CTC) on a manifest",
        description="Evaluate a trained speech model on a manifest (path,transcript). For "
        "digit strings written '3 1 4' the word error rate is the digit error rate.",
    )
    parser.add_argument("dir", metavar="DIR", help=DIR_HELP)
    parser.add_argument("--manifest", required=True, metavar="FILE", help="CSV or JSONL")
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: accuracy, per_class, confusion (classifier) or cer, wer, "
        "sentence_error, hypotheses (CTC); checkpoint, step",
    )
    _beam_option(parser)
    parser.set_defaults(func=eval_command)
    return parser


def eval_command(args: argparse.Namespace) -> int:
    from rnnkit import speech

    with log_to_stderr(logging.INFO):
        model = speech.load(args.dir, args.device)
        result = model.evaluate(args.manifest, beam=args.beam)
    result = {**result, "checkpoint": str(model.info["path"]), "step": model.info["step"]}
    if args.json:
        print(json.dumps(result))
    else:
        print(
            format_result(result, args.manifest)
            + f"  ({result['checkpoint']}, step {result['step']})"
        )
    return 0


# ---- export


def export_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = export_verb(
        verbs,
        _build_export,
        items="utterances",
        help="write the model as ONNX or a torch.export program, with a JSON sidecar",
        description="Write the acoustic model as one model file, feature frames (batch, time, "
        "features) and lengths (batch,) in, class probabilities (classifier) or per-step "
        "log-probabilities and step counts (CTC) out, with dynamic batch and time and the "
        "run's normalisation inside, and a JSON sidecar beside it holding the feature "
        "settings and the labels or alphabet. Audio to features is not part of the model: the "
        "sidecar says how to compute them. Before writing, it runs held-back utterances "
        "(--manifest, else the run's test or validation ones) through the export and through "
        "rnnkit and prints the largest difference; an export that differs is not written.",
        epilog="examples:\n  rnnkit speech export runs/fsdd\n"
        "  rnnkit speech export runs/fsdd --format pt2 --manifest fsdd/test.csv",
    )
    parser.add_argument(
        "--manifest",
        metavar="FILE",
        help="held-back utterances, CSV or JSONL (default: the run's test manifest)",
    )
    return parser


def _build_export(args: argparse.Namespace):
    from rnnkit.speech.export import build

    return build(args)


# ---- fsdd-manifest


def fsdd_command_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        "fsdd-manifest",
        help="manifests of the Free Spoken Digit Dataset (official split, digit strings)",
        description="Write OUT/train.csv (recordings 5-49) and OUT/test.csv (0-4) of the Free "
        "Spoken Digit Dataset; with --strings N also N connected digit strings (2-7 digits "
        "of one speaker joined by 50-300 ms silences) as WAV files in OUT/strings/, from "
        "training recordings only (OUT/strings_train.csv) and test recordings only "
        "(OUT/strings_test.csv).",
    )
    parser.add_argument("--root", required=True, metavar="DIR", help="FSDD (or its recordings/)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the manifests go")
    parser.add_argument(
        "--strings", type=nonnegative_int, default=0, metavar="N", help="(default: 0)"
    )
    parser.add_argument(
        "--test-strings", type=positive_int, metavar="N", help="(default: N / 5 of --strings)"
    )
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.set_defaults(func=fsdd_command)
    return parser


def fsdd_command(args: argparse.Namespace) -> int:
    from rnnkit.speech import fsdd

    written = fsdd.write_manifests(
        args.root, args.out, strings=args.strings, test_strings=args.test_strings, seed=args.seed
    )
    for w in written.values():
        print(f"{w['path']}\t{w['entries']:,} entries")
    return 0


def speech_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return task_parser(
        subparsers,
        "speech",
        (
            train_command_parser,
            transcribe_command_parser,
            eval_command_parser,
            export_command_parser,
            fsdd_command_parser,
        ),
        help="speech recognition (spoken words, digit strings): train, transcribe, eval, export",
        description="Train a recurrent acoustic model (an isolated-word classifier or a CTC "
        "recogniser) on WAV files listed in a manifest, transcribe audio with it, evaluate it. "
        "Needs the speech extra: pip install 'rnnkit[speech]'.",
        epilog=EXAMPLES,
    )
