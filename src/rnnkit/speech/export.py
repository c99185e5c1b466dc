"""`rnnkit speech export`: a trained speech model from feature frames to its outputs
(`FromFrames`: the run's per-feature normalisation inside the model), with its sidecar (the
feature settings, the labels or the CTC alphabet) and held-back utterances for the parity check.
Audio to features stays outside the export: the sidecar says how to compute them.

    B: batch, T: frames, F: features per frame, k: frames stacked per step,
    T' = ceil(T / k) steps, C: classes (CTC: symbols + the blank, class 0)
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit import speech
from rnnkit.export.task import Export, batches, check_cells, tensor
from rnnkit.speech.data import featurise
from rnnkit.speech.manifest import read_manifest
from rnnkit.speech.run import _hold_out

BATCH = 32  # utterances per held-back batch
FEATURES = (
    "frame t covers samples [t hop, t hop + n_fft) of the audio at sample_rate (no centring); "
    "logmel = 10 log10(max(mel power, 1e-10)) with librosa's Slaney mel filterbank (n_mels "
    "bands from fmin to fmax, null: sample_rate / 2) on the Hann-windowed power spectrum; a "
    "clip shorter than n_fft samples is zero-padded to one frame: librosa's power_to_db("
    "melspectrogram(y, sr=sample_rate, n_fft=n_fft, hop_length=hop, win_length=win_length, "
    "center=False, n_mels=n_mels, fmin=fmin, fmax=fmax), top_db=None).T; mfcc: the "
    "orthonormal DCT-II of logmel, first n_mfcc; mean_norm: minus each feature's mean over "
    "the utterance (rnnkit.speech.features.compute)"
)


class FromFrames(nn.Module):
    """The SpeechModel on frames as `features.compute` gives them: x (B, T, F), zero-padded past
    each of lengths (B,), is standardised, (x - mean) / std, with the run's normaliser, then
    classify: class probabilities (B, C); ctc: log-probabilities (B, T', C) and steps (B,)."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))  # (F,)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))  # (F,)

    def forward(self, x: Tensor, lengths: Tensor):
        out, _ = self.model(((x - self.mean) / self.std, lengths))
        if self.model.config.task == "classify":
            return out.softmax(-1)  # (B, C)
        return out  # (log-probabilities (B, T', C), steps (B,))


def build(args: argparse.Namespace) -> tuple[Export, dict]:
    """The speech model in args.dir as an Export, checked on up to args.limit utterances."""
    recogniser = speech.load(args.dir)
    config = recogniser.model.config
    check_cells(config.cell)
    paths, source = held_back(args, recogniser)
    frames = featurise(paths[: args.limit], recogniser.features)  # [(T, F)], unnormalised
    norm = recogniser.normaliser
    module = FromFrames(recogniser.model, norm.mean, norm.std).eval()
    batch = torch.export.Dim("batch", min=1)
    # at least two steps after stacking: torch.export specialises a one-step sequence
    shortest = config.subsample + 1
    time = torch.export.Dim("time", min=shortest)
    ctc = config.task == "ctc"
    export = Export(
        module=module,
        example=_pad((frames * 2)[:2], shortest),
        dynamic_shapes=({0: batch, 1: time}, {0: batch}),
        input_names=["frames", "lengths"],
        output_names=["log_probs", "steps"] if ctc else ["probabilities"],
        sidecar=sidecar(recogniser),
        held_back=batches(frames, BATCH, lambda chunk: _pad(chunk, shortest)),
        what=f"{len(frames)} utterances ({source})",
    )
    return export, recogniser.info


def _pad(chunk: list[Tensor], min_time: int = 1) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([len(f) for f in chunk], dtype=torch.int64)  # (B,)
    x = torch.zeros(len(chunk), max(min_time, int(lengths.max())), chunk[0].shape[1])
    for b, f in enumerate(chunk):
        x[b, : len(f)] = f
    return x, lengths  # (B, T, F), (B,)


def held_back(args: argparse.Namespace, recogniser: speech.Recogniser) -> tuple[list, str]:
    """(audio paths, where from): --manifest, else the run's test manifest, else its
    validation manifest or the seeded share of its training manifest it held out."""
    if args.manifest:
        return [e.path for e in read_manifest(args.manifest)], args.manifest
    run = recogniser.info["config"].get("data", {})
    for key, name in (("test", "test manifest"), ("valid", "validation manifest")):
        if run.get(key):
            return [e.path for e in _manifest(run[key], name)], name
    if run.get("train") and run.get("valid_fraction"):
        seed = recogniser.info["config"].get("train", {}).get("seed", 0)
        train = _manifest(run["train"], "training manifest")
        _, valid = _hold_out(train, run["valid_fraction"], seed)
        return [e.path for e in valid], "validation utterances"
    raise ValueError("the run has no test or validation manifest; give one: --manifest FILE")


def _manifest(path: str, name: str) -> list:
    if not Path(path).is_file():
        raise ValueError(f"the run's {name}, {path}, is not there; give one with --manifest FILE")
    return read_manifest(path)


def sidecar(recogniser: speech.Recogniser) -> dict:
    """What a user needs to turn audio into the model's inputs and its outputs into text."""
    c, features = recogniser.model.config, recogniser.features
    ctc = c.task == "ctc"
    outputs = (
        [tensor("log_probs", ["batch", "steps", c.num_classes], "float32",
                "per-step log-probabilities; class 0 is the CTC blank, class k the symbol "
                "alphabet[k - 1]; step s reads frames s k to s k + k - 1 (k: subsample)"),
         tensor("steps", ["batch"], "int64", "the valid steps of each row: ceil(lengths / k)")]
        if ctc
        else [tensor("probabilities", ["batch", c.num_classes], "float32",
                     "class probabilities: column k is labels[k]")]
    )  # fmt: skip
    return {
        "task": "speech",
        "kind": c.task,
        "inputs": [
            tensor(
                "frames",
                ["batch", "time", features.size],
                "float32",
                "feature frames as in features (not normalised: the model does it), each "
                "row zero-padded past its length",
            ),
            tensor(
                "lengths",
                ["batch"],
                "int64",
                f"the frames of each row, 1 to time; time at least {c.subsample + 1}",
            ),
        ],
        "outputs": outputs,
        "labels": recogniser.classes,
        "alphabet": recogniser.alphabet.to_dict() if ctc else None,
        "subsample": c.subsample,
        "bidirectional": c.bidirectional,
        "features": {
            **asdict(features),
            "n_fft": features.n_fft,
            "hop": features.hop,
            "win_length": features.win_length,
            "size": features.size,
        },
        "how_features": FEATURES,
        "normaliser": {**recogniser.normaliser.to_dict(), "applied": "inside the model"},
        "audio": "audio to features is not part of the model: compute the frames as "
        "how_features says (mono, resampled to features.sample_rate)",
    }
