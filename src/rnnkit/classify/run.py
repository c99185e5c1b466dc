"""Training a classify run: its data settings (ClassifyData), the labelled files read, split and
encoded (`load_data`), and the training loop over a SequenceClassifier (`train`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from rnnkit.classify.labelled import Examples, read_labelled, split_examples
from rnnkit.classify.model import ClassifierConfig, SequenceClassifier
from rnnkit.classify.predict import evaluate
from rnnkit.classify.text import TextEncoder, class_ids
from rnnkit.classify.tokenize import Tokenizer
from rnnkit.classify.vectors import read_vectors
from rnnkit.data.buckets import BucketBatches, Sequences
from rnnkit.data.vocab import Vocab
from rnnkit.train import checkpoint, distributed, rundir
from rnnkit.train.config import TrainConfig, epochs_budget, split_options
from rnnkit.train.loop import Trainer
from rnnkit.train.seeding import seed_everything

logger = logging.getLogger(__name__)

TASK = "classify"  # the "task" of a classify checkpoint's config
DEFAULT_EPOCHS = 5  # a run given no epochs, max_steps or max_time


@dataclass
class ClassifyData:
    """Where a run's labelled texts come from and how they become batches."""

    train: str | None = None  # a CSV/TSV/JSONL file or a folder of label sub-folders (required)
    valid: str | None = None  # validation file/folder; None: hold out valid_fraction of train
    test: str | None = None  # evaluated once with the best weights after training
    valid_fraction: float = 0.1  # held out of train (seeded, stratified) when valid is None
    text_column: str = "text"  # CSV/TSV column or JSONL key of the text
    label_column: str = "label"  # ... and of the label (any strings)
    encoding: str = "utf-8"
    on_missing: str = "skip"  # rows with a missing/empty text or label: "skip" (counted) | "error"
    tokenizer: str = "word"  # "word" (lower-cased words and punctuation) | "char"
    min_freq: int = 2  # tokens seen fewer times in the training texts read as <unk>
    max_vocab: int = 50_000  # at most this many tokens, <pad> and <unk> included
    max_tokens: int | None = 400  # each text is cut to N tokens; None: no limit
    truncate: str = "head"  # which N: "head" (the first), "tail" (the last), "head+tail"
    batch: int = 64  # texts per batch, over all processes together
    vectors: str | None = None  # GloVe/word2vec text file initialising the embedding

    def __post_init__(self):
        if self.train is None:
            raise ValueError("give the training data (train=FILE or folder; --train)")
        if not 0 <= self.valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in [0, 1), got {self.valid_fraction!r}")
        for key in ("min_freq", "batch"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")


DATA_KEYS = tuple(f.name for f in fields(ClassifyData))
MODEL_KEYS = tuple(
    f.name
    for f in fields(ClassifierConfig)
    if f.name not in ("vocab_size", "num_classes", "pad_id")
)
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))


@dataclass
class Data:
    """A run's data read and encoded: the encoder, the classes and the encoded splits."""

    encoder: TextEncoder
    classes: list[str]  # class id k <-> classes[k], sorted
    train: Sequences
    valid: Sequences | None
    test: Sequences | None
    counts: dict  # {"train": N, "valid": N, "test": N, "skipped": {...}}


@dataclass
class Run:
    """What `train` returns: the trained model (best weights when validated), its encoder,
    classes, and a summary."""

    model: SequenceClassifier
    encoder: TextEncoder
    classes: list[str]
    summary: dict


def _read(path: str, data: ClassifyData) -> Examples:
    return read_labelled(
        path,
        text_column=data.text_column,
        label_column=data.label_column,
        encoding=data.encoding,
        on_missing=data.on_missing,
    )


def load_data(data: ClassifyData, seed: int) -> Data:
    """Read the files, hold out validation, build the vocabulary on the training texts only,
    and encode every split."""
    train = _read(data.train, data)
    skipped = {"train": train.skipped}
    valid = None
    if data.valid is not None:
        valid = _read(data.valid, data)
        skipped["valid"] = valid.skipped
    elif data.valid_fraction > 0:
        train, valid = split_examples(train, data.valid_fraction, seed)
    test = _read(data.test, data) if data.test is not None else None
    if test is not None:
        skipped["test"] = test.skipped
    classes = sorted(set(train.labels))
    if len(classes) < 2:
        raise ValueError(
            f"the label column of {data.train} has one class ({classes[0]!r}); "
            "a classifier needs at least two (check --label-column)"
        )
    tokenizer = Tokenizer(data.tokenizer)
    vocab = Vocab.build(
        (tokenizer(t) for t in train.texts), min_freq=data.min_freq, max_size=data.max_vocab
    )
    encoder = TextEncoder(tokenizer, vocab, data.max_tokens, data.truncate)

    def encode(examples: Examples | None) -> Sequences | None:
        if examples is None:
            return None
        return encoder.encode(examples.texts, class_ids(examples.labels, classes, examples.source))

    counts = {
        "train": len(train),
        "valid": len(valid) if valid else 0,
        "test": len(test) if test else 0,
        "skipped": skipped,
    }
    return Data(encoder, classes, encode(train), encode(valid), encode(test), counts)


def plan(options: dict) -> tuple[ClassifyData, dict, TrainConfig, int | None]:
    """(data, model options, training config, epochs) from flat `options` over the defaults."""
    data, model, train = split_options(options, TASK, DATA_KEYS, MODEL_KEYS, TRAIN_KEYS)
    train = {"metric": "error", **train}
    epochs = epochs_budget(options.get("epochs"), train, DEFAULT_EPOCHS)
    return ClassifyData(**data), model, TrainConfig(**train), epochs


def train(
    options: dict,
    out: str | Path,
    *,
    overwrite: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> Run:
    """Train a SequenceClassifier on `options` (the fields of ClassifyData, ClassifierConfig and
    TrainConfig, and `epochs`) into the run directory `out`; `overwrite` replaces a run there.

    Everything the user gave is checked and read before anything is written. With a test set,
    the best weights are evaluated on it at the end (summary["test"]).
    """
    out = Path(out)
    distributed.setup()
    rundir.check_out(out, overwrite)
    data_cfg, model_options, config, epochs = plan(options)
    for key in ("train", "valid", "test", "vectors"):
        if getattr(data_cfg, key) is not None:
            setattr(data_cfg, key, str(Path(getattr(data_cfg, key)).resolve()))
    data = load_data(data_cfg, config.seed)
    batches = BucketBatches(data.train, data_cfg.batch, seed=config.seed)
    if epochs is not None:
        config.max_steps = epochs * len(batches)
    if "eval_every" not in options:
        config.eval_every = len(batches)  # once an epoch
    seed_everything(config.seed)  # the same initial weights in every process
    model = _model(data, data_cfg, model_options)
    if config.device is None:
        model.to(distributed.device())
    run_config = {
        "task": TASK,
        "model": model.config.to_dict(),
        "data": {**asdict(data_cfg), "counts": data.counts},
        "classes": data.classes,
    }
    trainer = Trainer(
        model,
        batches,
        config,
        out,
        valid_fn=_valid_fn(data) if data.valid is not None else None,
        run_config=run_config,
        vocab={"encoder": data.encoder.to_dict(), "classes": data.classes},
        on_step=on_step,
        overwrite=overwrite,
    )
    _log_start(model, data, data_cfg, len(batches), epochs)
    result = trainer.fit()
    distributed.barrier()  # process 0 has written OUT/best
    if result.best_path is not None:  # evaluate and return the best weights, not the last
        model.load_state_dict(checkpoint.load(result.best_path).model_state)
    summary = {
        "out": str(out),
        "step": result.step,
        "epochs": result.step / len(batches),
        "stop_reason": result.stop_reason,
        "seconds": trainer.elapsed,
        "tokens_per_s": result.metrics.get("train/tokens_per_s"),
        "train_loss": result.metrics.get("train/loss"),
        "best_valid_accuracy": None if result.best is None else 1.0 - result.best,
        "counts": data.counts,
        "test": None,
    }
    if data.test is not None:
        summary["test"] = evaluate(model, data.test, data.classes)
    return Run(model.eval(), data.encoder, data.classes, summary)


def _model(data: Data, cfg: ClassifyData, options: dict) -> SequenceClassifier:
    vocab = data.encoder.vocab
    if cfg.vectors is None:
        return SequenceClassifier(len(vocab), len(data.classes), pad_id=vocab.pad_id, **options)
    vectors, found = read_vectors(cfg.vectors, vocab, encoding=cfg.encoding)  # (V, E), (V,)
    embed = options.setdefault("embed", vectors.shape[1])
    if embed != vectors.shape[1]:
        raise ValueError(
            f"embed={embed} but the vectors in {cfg.vectors} have {vectors.shape[1]} dimensions; "
            "leave --embed out to take theirs"
        )
    model = SequenceClassifier(len(vocab), len(data.classes), pad_id=vocab.pad_id, **options)
    with torch.no_grad():
        model.embedding.weight[found] = vectors[found]
    logger.info(
        "pretrained vectors: %d of %d vocabulary tokens found in %s",
        int(found.sum()),
        len(vocab),
        cfg.vectors,
    )
    return model


def _valid_fn(data: Data) -> Callable[[nn.Module], dict]:
    def valid(model: nn.Module) -> dict:
        result = evaluate(model, data.valid, data.classes)
        return {k: result[k] for k in ("loss", "error", "accuracy", "macro_f1")}

    return valid


def _log_start(model, data: Data, cfg: ClassifyData, steps: int, epochs: int | None) -> None:
    if not distributed.is_main():
        return
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    n = data.counts
    skipped = sum(n["skipped"].values())
    logger.info(
        f"classify: {'bidirectional ' if c.bidirectional else ''}{c.layers} x {c.hidden} "
        f"{c.cell}, {c.pooling} pooling ({params / 1e6:.2f}M parameters); {len(data.classes)} "
        f"classes; vocabulary {len(data.encoder.vocab):,}; {n['train']:,} training, "
        f"{n['valid']:,} validation, {n['test']:,} test texts"
        + (f" ({skipped:,} rows skipped for a missing field)" if skipped else "")
        + f"; {steps} steps per epoch of batch {cfg.batch}"
        + (f", {epochs} epochs" if epochs else "")
    )
