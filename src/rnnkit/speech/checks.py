"""Checks before work of `rnnkit speech`'s verbs (see rnnkit.train.preflight): the speech
extra imports (soundfile reads and writes WAV, librosa's mel filterbank makes the features,
soxr resamples) and the manifests and audio files exist."""

from __future__ import annotations

import argparse

from rnnkit.export.checks import export
from rnnkit.extras import need
from rnnkit.train.preflight import readable, run_dir, train_output, writable_dir

AUDIO = ("soundfile", "librosa", "soxr")


def train(args: argparse.Namespace) -> None:
    train_output(args)
    _audio(args)
    for flag in ("--manifest", "--valid", "--test"):
        readable(getattr(args, "train" if flag == "--manifest" else flag[2:]), flag)


def transcribe(args: argparse.Namespace) -> None:
    _audio(args)  # the files themselves are all read before the first is transcribed
    run_dir(args.dir)


def evaluate(args: argparse.Namespace) -> None:
    _audio(args)
    run_dir(args.dir)
    readable(args.manifest, "--manifest")


def export_(args: argparse.Namespace) -> None:
    _audio(args)
    export(args)
    readable(args.manifest, "--manifest")


def fsdd(args: argparse.Namespace) -> None:
    need("soundfile", "speech fsdd-manifest", "speech")
    readable(args.root, "--root", "dir")
    writable_dir(args.out, "--out")


def _audio(args: argparse.Namespace) -> None:
    for module in AUDIO:
        need(module, f"speech {args.verb}", "speech")


VERBS = {
    "train": train,
    "transcribe": transcribe,
    "eval": evaluate,
    "export": export_,
    "fsdd-manifest": fsdd,
}
