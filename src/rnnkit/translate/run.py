"""Training a translate run: its data settings (TranslateData), the parallel text read and
encoded (`load_data`), and the training loop over a Seq2Seq (`train`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from rnnkit.data.buckets import Sequences
from rnnkit.train import run as run_skeleton
from rnnkit.train.config import TrainConfig, plan_by_epochs
from rnnkit.train.options import option, positive_int, probability
from rnnkit.train.run import Parts, TaskRun, Trained, absolute_paths
from rnnkit.translate.batches import Encoded, PairBatches
from rnnkit.translate.evaluate import score
from rnnkit.translate.model import Seq2Seq, Seq2SeqConfig
from rnnkit.translate.pairs import Pairs, read_pairs
from rnnkit.translate.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Codec

logger = logging.getLogger(__name__)

TASK = "translate"  # the "task" of a translate checkpoint's config
DEFAULT_EPOCHS = 10  # a run given no epochs, max_steps or max_time
TRAIN_DEFAULTS = {"lr": 1e-3}  # where translate's TrainConfig differs from the dataclass's


@dataclass
class TranslateData:
    """Where a run's parallel text comes from and how it becomes batches."""

    source: str | None = option(  # or a TSV of pairs when target is None
        None,
        "training sentences in the source language, one per line (.gz read too), or a TSV of "
        "source<TAB>target pairs when --target is left out",
        metavar="FILE",
        required=True,
    )
    target: str | None = option(  # aligned line by line with source
        None, "their translations, line by line", metavar="FILE"
    )
    valid_source: str | None = option(None, "validation source (or TSV)", metavar="FILE")
    valid_target: str | None = option(None, "validation target", metavar="FILE")
    test_source: str | None = option(  # evaluated once with the best weights after training
        None, "test source (or TSV), translated at the end", metavar="FILE"
    )
    test_target: str | None = option(None, "test target", metavar="FILE")
    encoding: str = option("utf-8", "the files' text encoding")
    tokenizer: str = option(
        "word",
        "word: whitespace-separated tokens (give tokenised text); subword: sentencepiece "
        "trained on the training text",
        choices=("word", "subword"),
    )
    min_freq: int = option(
        2, "word: tokens seen fewer than N times read as <unk>", type=positive_int, metavar="N"
    )
    max_vocab: int = option(  # ids per language, specials included
        50_000, "word: vocabulary limit", type=positive_int, metavar="N"
    )
    subword_vocab: int = option(
        8000, "subword: pieces per language", type=positive_int, metavar="N"
    )
    max_tokens: int = option(
        100, "cut longer sentences to N tokens, with a warning", type=positive_int, metavar="N"
    )
    batch: int = option(  # over all processes together
        64, "pairs per batch", type=positive_int, metavar="N"
    )
    beam: int = option(  # validation decodes greedily
        5, "beam size for the test set", type=positive_int, metavar="K"
    )
    alpha: float = option(
        1.0, "beam length normalisation: log p / length^A", type=float, metavar="A"
    )
    teacher_forcing_final: float | None = option(  # None: constant
        None,
        "lower --teacher-forcing linearly to P by the last step (needs --epochs or --max-steps)",
        type=probability,
        metavar="P",
    )

    def __post_init__(self):
        if self.source is None:
            raise ValueError("give the training text (--source FILE --target FILE, or a TSV)")
        for split in ("valid", "test"):
            given = getattr(self, f"{split}_source"), getattr(self, f"{split}_target")
            if given[1] is not None and given[0] is None:
                raise ValueError(f"--{split}-target needs --{split}-source")
        for key in ("min_freq", "max_vocab", "subword_vocab", "max_tokens", "batch", "beam"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        tf = self.teacher_forcing_final
        if tf is not None and not 0 <= tf <= 1:
            raise ValueError(f"teacher_forcing_final must be in [0, 1], got {tf!r}")


DATA_KEYS = tuple(f.name for f in fields(TranslateData))
FILES = tuple(k for k in DATA_KEYS if k.endswith(("source", "target")))  # options naming files
FROM_DATA = ("src_vocab", "tgt_vocab", "pad_id", "bos_id", "eos_id")  # the data decides these
MODEL_KEYS = tuple(f.name for f in fields(Seq2SeqConfig) if f.name not in FROM_DATA)
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))


@dataclass
class Data:
    """A run's text read and encoded: the two codecs, the encoded splits and their references."""

    source: Codec
    target: Codec
    train: Encoded
    valid: Encoded | None
    valid_references: list[str] | None  # the validation targets as written, for BLEU
    test: Encoded | None
    test_references: list[str] | None
    counts: dict  # {"train": N, "valid": N, "test": N, "skipped": {...}, "truncated": {...}}


@dataclass
class Run:
    """What `train` returns: the trained model (best weights when validated), its codecs and a
    summary."""

    model: Seq2Seq
    source: Codec
    target: Codec
    summary: dict


def encode_pairs(pairs: Pairs, source: Codec, target: Codec, max_tokens: int, what: str):
    """(Encoded, sentences truncated); a truncation is logged as a warning."""
    src = [source.encode(s) for s in pairs.source]
    tgt = [target.encode(t) for t in pairs.target]
    cut = sum(len(s) > max_tokens for s in src) + sum(len(t) > max_tokens for t in tgt)
    if cut:
        logger.warning(
            "%s: %d sentences longer than %d tokens were truncated (--max-tokens)",
            what,
            cut,
            max_tokens,
        )
    src = [s[:max_tokens] or [UNK_ID] for s in src]  # a text that encodes to nothing: <unk>
    tgt = [t[:max_tokens] or [UNK_ID] for t in tgt]
    return Encoded(Sequences(src), Sequences(tgt)), cut


def _read(data: TranslateData, split: str) -> Pairs | None:
    prefix = "" if split == "train" else f"{split}_"
    source = getattr(data, f"{prefix}source")
    if source is None:
        return None
    pairs = read_pairs(source, getattr(data, f"{prefix}target"), data.encoding)
    if pairs.skipped:
        logger.warning("%s: %d pairs with an empty side were skipped", pairs.origin, pairs.skipped)
    return pairs


def load_data(data: TranslateData) -> Data:
    """Read the files, fit both codecs on the training text only, and encode every split."""
    splits = {split: _read(data, split) for split in ("train", "valid", "test")}
    train = splits["train"]
    build = dict(min_freq=data.min_freq, max_vocab=data.max_vocab, vocab_size=data.subword_vocab)
    source = Codec.build(train.source, data.tokenizer, **build)
    target = Codec.build(train.target, data.tokenizer, **build)
    encoded, counts = {}, {"skipped": {}, "truncated": {}}
    for split, pairs in splits.items():
        counts[split] = len(pairs) if pairs else 0
        if pairs is None:
            encoded[split] = None
            continue
        counts["skipped"][split] = pairs.skipped
        encoded[split], counts["truncated"][split] = encode_pairs(
            pairs, source, target, data.max_tokens, pairs.origin
        )
    refs = {s: (p.target if p else None) for s, p in splits.items()}
    return Data(
        source,
        target,
        encoded["train"],
        encoded["valid"],
        refs["valid"],
        encoded["test"],
        refs["test"],
        counts,
    )


def plan(options: dict) -> tuple[TranslateData, dict, TrainConfig, int | None]:
    """(data, model options, training config, epochs) from flat `options` over the defaults."""
    keys = (DATA_KEYS, MODEL_KEYS, TRAIN_KEYS)
    return plan_by_epochs(options, TASK, TranslateData, keys, TRAIN_DEFAULTS, DEFAULT_EPOCHS)


def train(options: dict, out: str | Path, **how) -> Run:
    """Train a Seq2Seq on `options` (the fields of TranslateData, Seq2SeqConfig and
    TrainConfig, and `epochs`) into the run directory `out`; `resume` continues the run in
    `out` from out/last (train/resume.py), `overwrite` replaces a run there.

    Everything the user gave is checked and read before anything is written. With a test set,
    the best weights translate it at the end with beam search (summary["test"]: BLEU, chrF).

    `how`: resume, overwrite and on_step, as train/run.py's `train` takes them.
    """
    run = TranslateRun(options)
    model, summary = run_skeleton.train(run, out, **how)
    return Run(model.eval(), run.data.source, run.data.target, summary)


class TranslateRun(TaskRun):
    """A Seq2Seq over length-bucketed sentence pairs, validated by greedy BLEU."""

    task = TASK
    data_fields, model_fields, from_data = TranslateData, Seq2SeqConfig, FROM_DATA
    resumable = True
    moves = FILES

    def prepare(self, previous) -> TrainConfig:
        self.cfg, self.model_options, config, self.epochs = plan(self.options)
        absolute_paths(self.cfg, FILES)
        self.data = load_data(self.cfg)
        self.batches = PairBatches(self.data.train, self.cfg.batch, seed=config.seed)
        if self.epochs is not None:
            config.max_steps = self.epochs * len(self.batches)
        if "eval_every" not in self.options:
            config.eval_every = len(self.batches)  # once an epoch
        self.config = config
        return config

    def build(self) -> Seq2Seq:
        source, target = len(self.data.source), len(self.data.target)
        ids = {"pad_id": PAD_ID, "bos_id": BOS_ID, "eos_id": EOS_ID}
        return Seq2Seq(source, target, **ids, **self.model_options)

    def parts(self, model: Seq2Seq) -> Parts:
        data = self.data
        return Parts(
            self.batches,
            _valid_fn(data) if data.valid is not None else None,
            {"data": {**asdict(self.cfg), "counts": data.counts}},
            vocab={"source": data.source.to_dict(), "target": data.target.to_dict()},
            on_step=_teacher_forcing(model, self.cfg, self.config),
        )

    def describe(self, model: Seq2Seq) -> str:
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
            "best_valid_loss": result.best,
            "valid_bleu_greedy": result.metrics.get("valid/bleu"),
            "counts": data.counts,
            "test": None,
        }
        if data.test is not None and not trained.interrupted:
            beam = {"beam": self.cfg.beam, "alpha": self.cfg.alpha}
            test = score(trained.model, data.test, data.test_references, data.target, **beam)
            summary["test"] = test[0]
        return summary


def _valid_fn(data: Data) -> Callable:
    def valid(model) -> dict:
        result, _ = score(model, data.valid, data.valid_references, data.target)  # greedy
        return {k: result[k] for k in ("loss", "ppl", "bleu", "chrf")}

    return valid


def _teacher_forcing(model: Seq2Seq, data: TranslateData, config: TrainConfig):
    """on_step of scheduled sampling: the teacher-forcing ratio falls linearly to
    teacher_forcing_final by the last step (None when not asked)."""
    final = data.teacher_forcing_final
    if final is None:
        return None
    if config.max_steps is None:
        raise ValueError("teacher_forcing_final needs a step budget: give --epochs or --max-steps")
    start = model.config.teacher_forcing

    def step(n: int, metrics: dict) -> None:
        model.config.teacher_forcing = start + (final - start) * min(1.0, n / config.max_steps)

    return step


def _describe(model: Seq2Seq, data: Data, cfg: TranslateData, steps: int, epochs) -> str:
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    n = data.counts
    return (
        f"translate: bidirectional {c.layers} x {c.hidden} {c.cell} encoder, {c.attention} "
        f"attention decoder ({params / 1e6:.2f}M parameters); {cfg.tokenizer} vocabularies "
        f"{len(data.source):,} source, {len(data.target):,} target; {n['train']:,} training, "
        f"{n['valid']:,} validation, {n['test']:,} test pairs; {steps} steps per epoch of "
        f"batch {cfg.batch}" + (f", {epochs} epochs" if epochs else "")
    )
