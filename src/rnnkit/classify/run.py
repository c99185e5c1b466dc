"""Training a classify run: its data settings (ClassifyData), the labelled files read, split and
encoded (`load_data`), and the training loop over a SequenceClassifier (`train`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from rnnkit.classify.heldout import split_examples
from rnnkit.classify.labelled import Examples, read_labelled
from rnnkit.classify.model import ClassifierConfig, SequenceClassifier
from rnnkit.classify.predict import evaluate
from rnnkit.classify.text import TextEncoder, class_ids
from rnnkit.classify.tokenize import Tokenizer
from rnnkit.classify.vectors import read_vectors
from rnnkit.data.buckets import BucketBatches, Sequences
from rnnkit.data.vocab import Vocab
from rnnkit.train import run as run_skeleton
from rnnkit.train.config import TrainConfig, plan_by_epochs
from rnnkit.train.options import fraction, option, positive_int, spelled
from rnnkit.train.run import Parts, TaskRun, Trained, absolute_paths

logger = logging.getLogger(__name__)

TASK = "classify"  # the "task" of a classify checkpoint's config
DEFAULT_EPOCHS = 5  # a run given no epochs, max_steps or max_time
TRAIN_DEFAULTS = {"metric": "error"}  # where classify's TrainConfig differs from the dataclass's
DATA_FORMATS = (
    "a CSV, TSV or JSONL file (columns --text-column and --label-column) or a folder with "
    "one sub-folder of .txt files per label"
)


@dataclass
class ClassifyData:
    """Where a run's labelled texts come from and how they become batches."""

    train: str | None = option(  # a CSV/TSV/JSONL file or a folder of label sub-folders
        None, DATA_FORMATS, metavar="FILE|DIR", required=True
    )
    valid: str | None = option(  # None: hold out valid_fraction of train
        None,
        "validation data",
        metavar="FILE|DIR",
        shown="a seeded, stratified --valid-fraction of --train",
    )
    test: str | None = option(  # evaluated once with the best weights after training
        None, "test data, evaluated with the best weights at the end", metavar="FILE|DIR"
    )
    valid_fraction: float = option(  # held out of train (seeded, stratified) when valid is None
        0.1,
        "held out of --train when --valid is not given; 0: no validation",
        type=fraction,
        metavar="F",
    )
    text_column: str = option("text", "CSV/TSV column or JSONL key of the texts", metavar="NAME")
    label_column: str = option(  # any strings
        "label", "CSV/TSV column or JSONL key of the labels", metavar="NAME"
    )
    encoding: str = option("utf-8", "the files' text encoding")
    on_missing: str = option(  # rows with a missing/empty text or label
        "skip",
        "rows with a missing or empty text or label: skip them (and count them) or stop",
        choices=("skip", "error"),
    )
    tokenizer: str = option(
        "word",
        "word: lower-cased words and punctuation; char: characters",
        choices=("word", "char"),
    )
    min_freq: int = option(
        2,
        "tokens seen fewer than N times in training read as <unk>",
        type=positive_int,
        metavar="N",
    )
    max_vocab: int = option(  # <pad> and <unk> included
        50_000, "vocabulary size limit", type=positive_int, metavar="N"
    )
    max_tokens: int | None = option(  # None: no limit
        400, "cut each text to N tokens (which: --truncate)", type=positive_int, metavar="N"
    )
    truncate: str = option(
        "head",
        "keep a long text's first N tokens, its last N (where reviews give their verdict), or "
        "its first N/4 and last 3N/4",
        choices=("head", "tail", "head+tail"),
    )
    batch: int = option(  # over all processes together
        64, "texts per batch", type=positive_int, metavar="N"
    )
    vectors: str | None = option(  # initialises the embedding
        None,
        "pretrained word vectors (GloVe or word2vec text format) for the embedding",
        metavar="FILE",
    )

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
FILES = ("train", "valid", "test", "vectors")  # data options naming files
FROM_DATA = ("vocab_size", "num_classes", "pad_id")  # model sizes the data decides
MODEL_KEYS = tuple(f.name for f in fields(ClassifierConfig) if f.name not in FROM_DATA)
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
    keys = (DATA_KEYS, MODEL_KEYS, TRAIN_KEYS)
    return plan_by_epochs(options, TASK, ClassifyData, keys, TRAIN_DEFAULTS, DEFAULT_EPOCHS)


def train(options: dict, out: str | Path, **how) -> Run:
    """Train a SequenceClassifier on `options` (the fields of ClassifyData, ClassifierConfig and
    TrainConfig, and `epochs`) into the run directory `out`; `resume` continues the run in
    `out` from out/last (train/resume.py), `overwrite` replaces a run there.

    Everything the user gave is checked and read before anything is written. With a test set,
    the best weights are evaluated on it at the end (summary["test"]).

    `how`: resume, overwrite and on_step, as train/run.py's `train` takes them.
    """
    run = ClassifyRun(options)
    model, summary = run_skeleton.train(run, out, **how)
    return Run(model.eval(), run.data.encoder, run.data.classes, summary)


class ClassifyRun(TaskRun):
    """A SequenceClassifier over length-bucketed labelled texts, validated by accuracy."""

    task = TASK
    data_fields, model_fields, from_data = ClassifyData, ClassifierConfig, FROM_DATA
    resumable = True
    moves = FILES

    def prepare(self, previous) -> TrainConfig:
        self.cfg, self.model_options, config, self.epochs = plan(self.options)
        absolute_paths(self.cfg, FILES)
        self.data = load_data(self.cfg, config.seed)
        self.batches = BucketBatches(self.data.train, self.cfg.batch, seed=config.seed)
        if self.epochs is not None:
            config.max_steps = self.epochs * len(self.batches)
        if "eval_every" not in self.options:
            config.eval_every = len(self.batches)  # once an epoch
        return config

    def build(self) -> SequenceClassifier:
        return _model(self.data, self.cfg, self.model_options)

    def parts(self, model: SequenceClassifier) -> Parts:
        data = self.data
        return Parts(
            self.batches,
            _valid_fn(data) if data.valid is not None else None,
            {"data": {**asdict(self.cfg), "counts": data.counts}, "classes": data.classes},
            vocab={"encoder": data.encoder.to_dict(), "classes": data.classes},
        )

    def describe(self, model: SequenceClassifier) -> str:
        return _describe(model, self.data, self.cfg, len(self.batches), self.epochs)

    def summary(self, trained: Trained) -> dict:
        result, data = trained.result, self.data
        summary = {
            "out": str(trained.out),
            "step": result.step,
            "epochs": result.step / len(self.batches),
            "stop_reason": result.stop_reason,
            "seconds": trained.seconds,
            "tokens_per_s": result.metrics.get("train/tokens_per_s"),
            "train_loss": result.metrics.get("train/loss"),
            "best_valid_accuracy": None if result.best is None else 1.0 - result.best,
            "counts": data.counts,
            "test": None,
        }
        if data.test is not None and not trained.interrupted:
            summary["test"] = evaluate(trained.model, data.test, data.classes)
        return summary


def _model(data: Data, cfg: ClassifyData, options: dict) -> SequenceClassifier:
    vocab = data.encoder.vocab
    if cfg.vectors is None:
        return SequenceClassifier(len(vocab), len(data.classes), pad_id=vocab.pad_id, **options)
    vectors, found = read_vectors(cfg.vectors, vocab, encoding=cfg.encoding)  # (V, E), (V,)
    embed = options.setdefault("embed", vectors.shape[1])
    if embed != vectors.shape[1]:
        raise ValueError(
            f"{spelled(f'embed={embed}', f'--embed {embed}')} but the vectors in {cfg.vectors} "
            f"have {vectors.shape[1]} dimensions; leave {spelled('embed', '--embed')} out to "
            "take theirs"
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


def _describe(model, data: Data, cfg: ClassifyData, steps: int, epochs: int | None) -> str:
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    n = data.counts
    skipped = sum(n["skipped"].values())
    return (
        f"classify: {'bidirectional ' if c.bidirectional else ''}{c.layers} x {c.hidden} "
        f"{c.cell}, {c.pooling} pooling ({params / 1e6:.2f}M parameters); {len(data.classes)} "
        f"classes; vocabulary {len(data.encoder.vocab):,}; {n['train']:,} training, "
        f"{n['valid']:,} validation, {n['test']:,} test texts"
        + (f" ({skipped:,} rows skipped for a missing field)" if skipped else "")
        + f"; {steps} steps per epoch of batch {cfg.batch}"
        + (f", {epochs} epochs" if epochs else "")
    )
