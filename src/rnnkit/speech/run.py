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
from rnnkit.speech.augment import Masking
from rnnkit.speech.data import Utterances, featurise
from rnnkit.speech.features import FeatureConfig, Normaliser
from rnnkit.speech.manifest import Entry, read_manifest
from rnnkit.speech.model import TASKS, SpeechConfig, SpeechModel
from rnnkit.speech.predict import evaluate_classifier, evaluate_ctc
from rnnkit.speech.text import UNITS, Alphabet, class_ids
from rnnkit.train import checkpoint, distributed, rundir
from rnnkit.train.config import TrainConfig, epochs_budget, split_options
from rnnkit.train.loop import Trainer
from rnnkit.train.seeding import seed_everything

logger = logging.getLogger(__name__)

TASK = "speech"  # the "task" of a speech checkpoint's config
DEFAULT_EPOCHS = 30  # a run given no epochs, max_steps or max_time


@dataclass
class SpeechData:
    """Where a run's utterances come from and what it learns from them."""

    train: str | None = None  # a manifest (CSV or JSONL of path, transcript); required
    valid: str | None = None  # validation manifest; None: hold out valid_fraction of train
    test: str | None = None  # evaluated once with the best weights after training
    valid_fraction: float = 0.1  # held out of train (seeded) when valid is None
    task: str = "classify"  # "classify": a transcript is one class | "ctc": a label sequence
    units: str = "char"  # ctc: the symbols are characters (spaces too) or whitespace words
    batch: int = 32  # utterances per batch, over all processes together
    beam: int = 1  # ctc: beam of the validation and test decoding (1: greedy)

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
MODEL_KEYS = _names(SpeechConfig, ("task", "input_size", "num_classes"))
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

    @property
    def vocab(self) -> dict:
        """What the checkpoint stores besides the weights to featurise and decode."""
        vocab = {"features": self.features.to_dict(), "normaliser": self.normaliser.to_dict()}
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
    train = {"metric": "error", **train}
    epochs = epochs_budget(options.get("epochs"), train, DEFAULT_EPOCHS)
    data, features, masking = SpeechData(**data), FeatureConfig(**features), Masking(**masking)
    return data, features, masking, model, TrainConfig(**train), epochs


def load_data(data: SpeechData, features: FeatureConfig, masking: Masking, seed: int) -> Data:
    """Read the manifests and audio, hold out validation, fit the normalisation and the labels
    on the training utterances only, and encode every split."""
    train = read_manifest(data.train)
    valid = read_manifest(data.valid) if data.valid is not None else None
    if valid is None and data.valid_fraction > 0:
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        n = round(len(train) * data.valid_fraction)
        if n < 1 or n >= len(train):
            raise ValueError(
                f"valid_fraction {data.valid_fraction} of {len(train)} utterances leaves no "
                "validation or no training set; give --valid or another --valid-fraction"
            )
        held = set(order[:n])
        valid = [e for i, e in enumerate(train) if i in held]
        train = [e for i, e in enumerate(train) if i not in held]
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
    )


def evaluate(model: nn.Module, data: Data, split: tuple[list[Tensor], list], beam: int = 1):
    frames, labels = split
    if data.classes is not None:
        return evaluate_classifier(model, frames, labels, data.classes)
    return evaluate_ctc(model, frames, labels, data.alphabet, beam)


def train(
    options: dict,
    out: str | Path,
    *,
    overwrite: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> Run:
    """Train a SpeechModel on `options` (the fields of SpeechData, FeatureConfig, Masking,
    SpeechConfig and TrainConfig, and `epochs`) into the run directory `out`; `overwrite`
    replaces a run there. With a test manifest, the best weights are evaluated on it at the end
    (summary["test"])."""
    out = Path(out)
    distributed.setup()
    rundir.check_out(out, overwrite)
    data_cfg, features, masking, model_options, config, epochs = plan(options)
    for key in ("train", "valid", "test"):
        if getattr(data_cfg, key) is not None:
            setattr(data_cfg, key, str(Path(getattr(data_cfg, key)).resolve()))
    data = load_data(data_cfg, features, masking, config.seed)
    batch = data_cfg.batch
    if len(data.train) < batch:
        logger.warning(
            "%d training utterances: batch %d -> %d", len(data.train), batch, len(data.train)
        )
        batch = len(data.train) - len(data.train) % distributed.world_size()
    batches = BucketBatches(data.train, batch, seed=config.seed)
    if epochs is not None:
        config.max_steps = epochs * len(batches)
    if "eval_every" not in options:
        config.eval_every = len(batches)  # once an epoch
    seed_everything(config.seed)
    num_classes = len(data.classes) if data.classes is not None else data.alphabet.num_classes
    model = SpeechModel(data_cfg.task, features.size, num_classes, **model_options)
    if config.device is None:
        model.to(distributed.device())
    run_config = {
        "task": TASK,
        "model": model.config.to_dict(),
        "data": {**asdict(data_cfg), "masking": asdict(masking), "counts": data.counts},
    }
    valid_fn = None
    if data.valid is not None:

        def valid_fn(m: nn.Module) -> dict:
            r = evaluate(m, data, data.valid, data_cfg.beam)
            keys = (
                ("loss", "error", "accuracy")
                if data.classes is not None
                else ("error", "cer", "wer")
            )
            return {k: r[k] for k in keys}

    trainer = Trainer(
        model,
        batches,
        config,
        out,
        valid_fn=valid_fn,
        run_config=run_config,
        vocab=data.vocab,
        on_step=on_step,
        overwrite=overwrite,
    )
    _log_start(model, data, batch, len(batches), epochs)
    result = trainer.fit()
    distributed.barrier()
    if result.best_path is not None:
        model.load_state_dict(checkpoint.load(result.best_path).model_state)
    summary = {
        "out": str(out),
        "task": data_cfg.task,
        "step": result.step,
        "epochs": result.step / len(batches),
        "stop_reason": result.stop_reason,
        "seconds": trainer.elapsed,
        "frames_per_s": result.metrics.get("train/tokens_per_s"),
        "train_loss": result.metrics.get("train/loss"),
        "best_valid_error": result.best,
        "counts": data.counts,
        "test": None,
    }
    if data.test is not None:
        report = evaluate(model, data, data.test, data_cfg.beam)
        report.pop("hypotheses", None)
        summary["test"] = report
    return Run(model.eval(), data, summary)


def _log_start(model: SpeechModel, data: Data, batch: int, steps: int, epochs) -> None:
    if not distributed.is_main():
        return
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    labels = (
        f"{len(data.classes)} classes"
        if data.classes is not None
        else f"{len(data.alphabet.symbols)} {data.alphabet.units} symbols + blank"
    )
    n = data.counts
    logger.info(
        f"speech {c.task}: {'bidirectional ' if c.bidirectional else ''}{c.layers} x {c.hidden} "
        f"{c.cell} over {data.features.size} {data.features.kind} features, {c.subsample} frames "
        f"a step ({params / 1e6:.2f}M parameters); {labels}; {n['train']:,} training, "
        f"{n['valid']:,} validation, {n['test']:,} test utterances; {steps} steps per epoch of "
        f"batch {batch}" + (f", {epochs} epochs" if epochs else "")
    )
