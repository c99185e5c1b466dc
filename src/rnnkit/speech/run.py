"""Training a speech run: its data settings (SpeechData), the manifests read, featurised,
normalised and encoded (`load_data`), and the training loop over a SpeechModel (`train`).

A run's checkpoints carry everything needed to use them: the config {"task": "speech",
"model": SpeechConfig, "data": SpeechData + counts, "train": TrainConfig} and, as the
checkpoint's vocabulary, {"features": FeatureConfig, "normaliser": {mean, std}, "classes"
(classify) or "alphabet" (ctc)}.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from torch import Tensor, nn

from rnnkit.data.buckets import BucketBatches
from rnnkit.speech import durations
from rnnkit.speech.augment import Masking
from rnnkit.speech.data import Utterances, featurise
from rnnkit.speech.features import FeatureConfig, Normaliser
from rnnkit.speech.manifest import Entry, read_manifest
from rnnkit.speech.model import TASKS, SpeechConfig, SpeechModel
from rnnkit.speech.predict import evaluate_classifier, evaluate_ctc
from rnnkit.speech.text import UNITS, Alphabet, class_ids
from rnnkit.train import distributed
from rnnkit.train import run as run_skeleton
from rnnkit.train.config import TrainConfig, epochs_budget, split_options
from rnnkit.train.options import fraction, option, positive_int
from rnnkit.train.resume import saved_fields
from rnnkit.train.run import Parts, TaskRun, Trained, absolute_paths

logger = logging.getLogger(__name__)

TASK = "speech"  # the "task" of a speech checkpoint's config
DEFAULT_EPOCHS = 30  # a run given no epochs, max_steps or max_time
TRAIN_DEFAULTS = {"metric": "error"}  # where speech's TrainConfig differs from the dataclass's


@dataclass
class SpeechData:
    """Where a run's utterances come from and what it learns from them."""

    train: str | None = option(  # a manifest (CSV or JSONL of path, transcript)
        None, "training", flag="--manifest", metavar="FILE", required=True
    )
    valid: str | None = option(  # None: hold out valid_fraction of train
        None, "validation", metavar="FILE", shown="a seeded --valid-fraction of train"
    )
    test: str | None = option(  # evaluated once with the best weights after training
        None, "evaluated with the best weights at the end", metavar="FILE"
    )
    valid_fraction: float = option(  # held out of train (seeded) when valid is None
        0.1, "", type=fraction, metavar="P"
    )
    task: str = option(  # "classify": a transcript is one class | "ctc": a label sequence
        "classify", "", choices=TASKS
    )
    units: str = option(
        "char",
        "ctc: characters (spaces included) or whitespace-separated words",
        choices=UNITS,
    )
    batch: int = option(  # utterances per batch, over all processes together
        32, "", type=positive_int, metavar="N"
    )
    beam: int = option(
        1,
        "ctc: beam of the validation and test decoding; 1: greedy",
        type=positive_int,
        metavar="N",
    )

    def __post_init__(self):
        if self.train is None:
            raise ValueError("give the training manifest (train=FILE; --manifest)")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}, got {self.units!r}")
        if not 0 <= self.valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in [0, 1), got {self.valid_fraction!r}")
        for key in ("batch", "beam"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")


def _names(cls, skip=()) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name not in skip)


DATA_KEYS = _names(SpeechData)
FEATURE_KEYS = _names(FeatureConfig)
MASK_KEYS = _names(Masking)
FILES = ("train", "valid", "test")  # data options naming manifests
FROM_DATA = ("task", "input_size", "num_classes")  # model settings the data decides
MODEL_KEYS = _names(SpeechConfig, FROM_DATA)
TRAIN_KEYS = _names(TrainConfig)


@dataclass
class Data:
    """A run's utterances read, featurised, normalised and encoded."""

    features: FeatureConfig
    normaliser: Normaliser
    classes: list[str] | None  # classify: class id k <-> classes[k], sorted
    alphabet: Alphabet | None  # ctc
    train: Utterances
    valid: tuple[list[Tensor], list] | None  # (frames, class ids or transcripts)
    test: tuple[list[Tensor], list] | None
    counts: dict
    durations: dict | None = None  # seconds of the training utterances: min, max, mean

    @property
    def vocab(self) -> dict:
        """What the checkpoint stores besides the weights to featurise and decode (and the
        training durations, to warn of audio far outside them)."""
        vocab = {"features": self.features.to_dict(), "normaliser": self.normaliser.to_dict()}
        if self.durations is not None:
            vocab["durations"] = self.durations
        if self.classes is not None:
            return {**vocab, "classes": self.classes}
        return {**vocab, "alphabet": self.alphabet.to_dict()}


@dataclass
class Run:
    """What `train` returns: the trained model (best weights when validated) and a summary."""

    model: SpeechModel
    data: Data
    summary: dict


def plan(options: dict):
    """(data, features, masking, model options, training config, epochs) from flat `options`."""
    groups = (DATA_KEYS, FEATURE_KEYS, MASK_KEYS, MODEL_KEYS, TRAIN_KEYS)
    data, features, masking, model, train = split_options(options, "speech", *groups)
    train = {**TRAIN_DEFAULTS, **train}
    epochs = epochs_budget(options.get("epochs"), train, DEFAULT_EPOCHS)
    data, features, masking = SpeechData(**data), FeatureConfig(**features), Masking(**masking)
    return data, features, masking, model, TrainConfig(**train), epochs


def load_data(data: SpeechData, features: FeatureConfig, masking: Masking, seed: int) -> Data:
    """Read the manifests and audio, hold out validation, fit the normalisation and the labels
    on the training utterances only, and encode every split."""
    train = read_manifest(data.train)
    valid = read_manifest(data.valid) if data.valid is not None else None
    if valid is None and data.valid_fraction > 0:
        train, valid = _hold_out(train, data.valid_fraction, seed)
    test = read_manifest(data.test) if data.test is not None else None
    transcripts = [e.transcript for e in train]
    classes = alphabet = None
    if data.task == "classify":
        classes = sorted(set(transcripts))
        if len(classes) < 2:
            raise ValueError(
                f"{data.train} has one transcript ({classes[0]!r}); a classifier needs two"
            )
        targets = class_ids(transcripts, classes, data.train)
    else:
        alphabet = Alphabet.build(transcripts, data.units)
        targets = [
            alphabet.encode(t, f"{data.train}: {e.path.name}") for t, e in zip(transcripts, train)
        ]
    logger.info("featurising %d training utterances", len(train))
    frames = featurise([e.path for e in train], features)
    normaliser = Normaliser.fit(frames)
    frames = [normaliser(f) for f in frames]

    def split(entries: list[Entry] | None, source: str | None):
        if entries is None:
            return None
        texts = [e.transcript for e in entries]
        if classes is not None:
            labels = class_ids(texts, classes, source)
        else:
            for t, e in zip(texts, entries):
                alphabet.encode(t, f"{source}: {e.path.name}")  # rejects unknown symbols
            labels = texts
        return [normaliser(f) for f in featurise([e.path for e in entries], features)], labels

    counts = {
        "train": len(train),
        "valid": len(valid) if valid else 0,
        "test": len(test) if test else 0,
        "train_frames": sum(len(f) for f in frames),
    }
    return Data(
        features,
        normaliser,
        classes,
        alphabet,
        Utterances(frames, targets, ctc=data.task == "ctc", masking=masking),
        split(valid, data.valid or f"{data.train} (held out)"),
        split(test, data.test),
        counts,
        durations.stats([len(f) for f in frames], features.hop_ms),
    )


def _hold_out(train: list[Entry], share: float, seed: int) -> tuple[list, list]:
    """(train, valid): a seeded `share` of the training utterances held out."""
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    n = round(len(train) * share)
    if n < 1 or n >= len(train):
        raise ValueError(
            f"valid_fraction {share} of {len(train)} utterances leaves no "
            "validation or no training set; give --valid or another --valid-fraction"
        )
    held = set(order[:n])
    return (
        [e for i, e in enumerate(train) if i not in held],
        [e for i, e in enumerate(train) if i in held],
    )


def evaluate(model: nn.Module, data: Data, split: tuple[list[Tensor], list], beam: int = 1):
    frames, labels = split
    if data.classes is not None:
        return evaluate_classifier(model, frames, labels, data.classes)
    return evaluate_ctc(model, frames, labels, data.alphabet, beam)


def train(options: dict, out: str | Path, **how) -> Run:
    """Train a SpeechModel on `options` (the fields of SpeechData, FeatureConfig, Masking,
    SpeechConfig and TrainConfig, and `epochs`) into the run directory `out`; `overwrite`
    replaces a run there, `resume` continues the run in `out` from out/last (train/resume.py).
    With a test manifest, the best weights are evaluated on it at the end (summary["test"]).
    `how`: resume, overwrite and on_step, as train/run.py's `train` takes them."""
    run = SpeechRun(options)
    model, summary = run_skeleton.train(run, out, **how)
    return Run(model.eval(), run.data, summary)


class SpeechRun(TaskRun):
    """A SpeechModel over length-bucketed utterances, validated by its error (classify: the
    error rate; ctc: the WER)."""

    task = TASK
    resumable = True
    moves = FILES

    def kept(self, previous) -> dict:
        data, features = previous.config["data"], previous.vocab["features"]
        return {
            **saved_fields(SpeechData, data),
            **saved_fields(FeatureConfig, features),
            **saved_fields(Masking, data["masking"]),
            **saved_fields(SpeechConfig, previous.config["model"], skip=FROM_DATA),
        }

    def prepare(self, previous) -> TrainConfig:
        self.cfg, features, masking, self.model_options, config, self.epochs = plan(self.options)
        absolute_paths(self.cfg, FILES)
        self.masking = masking
        self.data = data = load_data(self.cfg, features, masking, config.seed)
        self.batch = batch = self.cfg.batch
        if len(data.train) < batch:
            logger.warning(
                "%d training utterances: batch %d -> %d", len(data.train), batch, len(data.train)
            )
            self.batch = len(data.train) - len(data.train) % distributed.world_size()
        self.batches = BucketBatches(data.train, self.batch, seed=config.seed)
        if self.epochs is not None:
            config.max_steps = self.epochs * len(self.batches)
        if "eval_every" not in self.options:
            config.eval_every = len(self.batches)  # once an epoch
        return config

    def build(self) -> SpeechModel:
        data = self.data
        num_classes = len(data.classes) if data.classes is not None else data.alphabet.num_classes
        return SpeechModel(self.cfg.task, data.features.size, num_classes, **self.model_options)

    def parts(self, model: SpeechModel) -> Parts:
        data = self.data
        return Parts(
            self.batches,
            _valid_fn(data, self.cfg.beam) if data.valid is not None else None,
            {"data": {**asdict(self.cfg), "masking": asdict(self.masking), "counts": data.counts}},
            vocab=data.vocab,
        )

    def describe(self, model: SpeechModel) -> str:
        return _describe(model, self.data, self.batch, len(self.batches), self.epochs)

    def summary(self, trained: Trained) -> dict:
        result, data = trained.result, self.data
        summary = {
            "out": str(trained.out),
            "task": self.cfg.task,
            "step": result.step,
            "epochs": result.step / len(self.batches),
            "stop_reason": result.stop_reason,
            "seconds": trained.seconds,
            "frames_per_s": result.metrics.get("train/tokens_per_s"),
            "train_loss": result.metrics.get("train/loss"),
            "best_valid_error": result.best,
            "counts": data.counts,
            "test": None,
        }
        if data.test is not None and not trained.interrupted:
            report = evaluate(trained.model, data, data.test, self.cfg.beam)
            report.pop("hypotheses", None)
            summary["test"] = report
        return summary


def _valid_fn(data: Data, beam: int) -> Callable[[nn.Module], dict]:
    keys = ("loss", "error", "accuracy") if data.classes is not None else ("error", "cer", "wer")

    def valid(model: nn.Module) -> dict:
        r = evaluate(model, data, data.valid, beam)
        return {k: r[k] for k in keys}

    return valid


def _describe(model: SpeechModel, data: Data, batch: int, steps: int, epochs) -> str:
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    labels = (
        f"{len(data.classes)} classes"
        if data.classes is not None
        else f"{len(data.alphabet.symbols)} {data.alphabet.units} symbols + blank"
    )
    n = data.counts
    return (
        f"speech {c.task}: {'bidirectional ' if c.bidirectional else ''}{c.layers} x {c.hidden} "
        f"{c.cell} over {data.features.size} {data.features.kind} features, {c.subsample} frames "
        f"a step ({params / 1e6:.2f}M parameters); {labels}; {n['train']:,} training, "
        f"{n['valid']:,} validation, {n['test']:,} test utterances; {steps} steps per epoch of "
        f"batch {batch}" + (f", {epochs} epochs" if epochs else "")
    )
