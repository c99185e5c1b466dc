"""Training a textgen run: its settings (TextData, `plan`), its text as batch streams
(`load_corpus`) and the training loop over a CharLM with the hidden state carried (`train`)."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from rnnkit.textgen.data import CharVocab, TextStreams, builtin_corpus, read_text, split_text
from rnnkit.textgen.model import CharLM, CharLMConfig, evaluate
from rnnkit.train import distributed
from rnnkit.train import run as run_skeleton
from rnnkit.train.config import TrainConfig, split_options
from rnnkit.train.options import fraction, option, positive_int
from rnnkit.train.run import Parts, TaskRun, Trained

logger = logging.getLogger(__name__)

TASK = "textgen"  # the "task" of a textgen checkpoint's config
BUILTIN = "the built-in corpus (Python's help topics)"


@dataclass
class TextData:
    """The text a run trains on and how it is cut into truncated-BPTT batches."""

    path: str | None = option(  # None: builtin_corpus(), Python's own help topics
        None,
        "text file to train on",
        flag="--data",
        metavar="FILE",
        shown="the built-in corpus, the text of Python's help topics, about 465,000 characters",
    )
    encoding: str = option("utf-8", "the file's text encoding")
    val_fraction: float = option(  # nanoGPT's split
        0.1, "the last F of the text validates; 0: no validation", type=fraction, metavar="F"
    )
    bptt: int = option(  # how far back the gradient reaches
        128, "time steps per batch", type=positive_int, metavar="N"
    )
    batch: int = option(  # streams side by side (the global batch)
        64, "streams per batch, over all processes together", type=positive_int, metavar="N"
    )

    def __post_init__(self):
        for key in ("bptt", "batch"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        split_text("", self.val_fraction)  # checks val_fraction


DATA_KEYS = tuple(f.name for f in fields(TextData))
MODEL_KEYS = tuple(f.name for f in fields(CharLMConfig) if f.name != "vocab_size")
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))


@dataclass
class Corpus:
    """A run's text as ids: the vocabulary and this process's share of the batch streams."""

    vocab: CharVocab
    train: TextStreams
    valid: TextStreams | None  # None when val_fraction is 0
    text: dict  # {"chars": N, "sha256": ...}: a resumed run checks it reads the same text


@dataclass
class Run:
    """What `train` returns: the trained model (last weights), its vocabulary, and a summary."""

    model: CharLM
    vocab: CharVocab
    summary: dict  # step, stop_reason, seconds, tokens_per_s, train and validation losses, out


def load_corpus(data: TextData, vocab: CharVocab | None = None) -> Corpus:
    """Read, split and encode the text; `vocab` defaults to the characters of the whole text."""
    name = BUILTIN if data.path is None else str(data.path)
    text = builtin_corpus() if data.path is None else read_text(data.path, data.encoding)
    train_text, valid_text = split_text(text, data.val_fraction)
    vocab = vocab or CharVocab.from_text(text)
    share = {"rank": distributed.rank(), "world_size": distributed.world_size()}
    kept = 1 - data.val_fraction
    train = TextStreams(
        vocab.encode(train_text),
        data.batch,
        data.bptt,
        name=f"training text (the first {kept:.0%} of {name})",
        **share,
    )
    valid = None
    if valid_text:
        try:
            valid = TextStreams(
                vocab.encode(valid_text),
                data.batch,
                data.bptt,
                name=f"validation text (the last {data.val_fraction:.0%} of {name})",
                **share,
            )
        except ValueError as exc:
            raise ValueError(f"{exc}; or a larger val_fraction (0: no validation)") from None
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return Corpus(vocab, train, valid, {"chars": len(text), "sha256": digest})


def plan(options: dict) -> tuple[TextData, dict, TrainConfig]:
    """(data, model options, training config) from flat `options` over the defaults (a resumed
    run's options are its checkpoint's under the given ones: train/resume.py)."""
    groups = (DATA_KEYS, MODEL_KEYS, TRAIN_KEYS)
    data, model, train = split_options(options, "textgen", *groups, also=())
    return TextData(**data), model, TrainConfig(**train)


def train(options: dict, out: str | Path, **how) -> Run:
    """Train a CharLM on `options` (the fields of TextData, CharLMConfig and TrainConfig) into
    the run directory `out` (see train/run.py); `resume` continues the run in `out` from
    out/last, `overwrite` replaces another run held there.
    `how`: resume, overwrite and on_step, as train/run.py's `train` takes them."""
    run = TextgenRun(options)
    model, summary = run_skeleton.train(run, out, **how)
    return Run(model, run.corpus.vocab, summary)


class TextgenRun(TaskRun):
    """A CharLM over a text cut into batch streams, its hidden state carried between batches;
    the last weights are the ones returned (sample and eval read best/)."""

    task = TASK
    data_fields, model_fields, from_data = TextData, CharLMConfig, ("vocab_size",)
    resumable = True
    moves = ("path",)  # the text may move; a resumed run checks it reads the same text
    best_weights = False

    def prepare(self, previous) -> TrainConfig:
        saved = previous.config if previous else None
        self.data, self.model_options, config = plan(self.options)
        if self.data.path is not None:
            self.data.path = str(Path(self.data.path).resolve())
        vocab = CharVocab.from_dict(previous.vocab) if previous else None
        self.corpus = load_corpus(self.data, vocab)
        if previous is not None and self.corpus.text != saved["data"]["text"]:
            raise ValueError(
                f"{self.data.path or BUILTIN} is not the text the run being resumed was "
                f"trained on ({saved['data']['text']['chars']} characters, another SHA-256)"
            )
        return config

    def build(self) -> CharLM:
        return CharLM(len(self.corpus.vocab), **self.model_options)

    def parts(self, model: CharLM) -> Parts:
        valid = self.corpus.valid
        return Parts(
            _carrying_batches(self.corpus.train, model),
            _valid_fn(valid) if valid is not None else None,
            {"data": {**asdict(self.data), "text": self.corpus.text}},
            vocab=self.corpus.vocab.to_dict(),
            hooks={"get_state": model.get_state, "set_state": model.set_state},
        )

    def describe(self, model: CharLM) -> str:
        return _describe(model, self.data, self.corpus)

    def summary(self, trained: Trained) -> dict:
        return _summary(trained, self.data)


def _summary(trained: Trained, data: TextData) -> dict:
    """The numbers `rnnkit textgen train` reports, from the trainer's result."""
    result, elapsed, previous = trained.result, trained.seconds, trained.previous
    start_step, start_elapsed = 0, 0.0
    if previous is not None:
        start_step, start_elapsed = previous.step, previous.extra_state["trainer"]["elapsed"]
    seconds = elapsed - start_elapsed
    tokens = (result.step - start_step) * data.batch * data.bptt
    best, metrics = result.best, result.metrics
    return {
        "out": str(trained.out),
        "step": result.step,
        "stop_reason": result.stop_reason,
        "seconds": elapsed,  # of training in all, resumed sessions included
        "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,  # this session's, validation in
        "train_loss": metrics.get("train/loss"),
        "valid_nats_per_char": metrics.get("valid/nats_per_char"),
        "valid_bits_per_char": metrics.get("valid/bits_per_char"),
        "best_valid_nats_per_char": best,
        "best_valid_bits_per_char": None if best is None else best / math.log(2),
    }


def _carrying_batches(streams: TextStreams, model: CharLM) -> Callable[[int], tuple]:
    """`batches(step)` for the trainer; the carried state is reset where the streams restart."""

    def batches(step: int):
        if streams.is_epoch_start(step):
            model.reset_state()
        return streams(step)

    return batches


def _valid_fn(streams: TextStreams) -> Callable[[nn.Module], dict]:
    """Validation over every process's share of the streams, weighted by characters."""

    def valid(model: nn.Module) -> dict:
        result = evaluate(model, streams)
        device = next(model.parameters()).device
        totals = [result["loss"] * result["chars"], result["chars"]]
        totals = torch.tensor(totals, dtype=torch.float64, device=device)
        nats_sum, chars = distributed.all_reduce_sum(totals).tolist()
        nats = nats_sum / chars
        return {"loss": nats, "nats_per_char": nats, "bits_per_char": nats / math.log(2)}

    return valid


def _describe(model: CharLM, data: TextData, corpus: Corpus) -> str:
    c, world = model.config, distributed.world_size()
    params = sum(p.numel() for p in model.parameters())
    train = corpus.train.stream_len * data.batch
    valid = corpus.valid.stream_len * data.batch if corpus.valid is not None else 0
    return (
        f"textgen: {c.layers} x {c.hidden} {c.cell} ({params / 1e6:.2f}M parameters), "
        f"vocabulary {len(corpus.vocab)}; {data.path or BUILTIN}: {train:,} training and "
        f"{valid:,} validation characters; batch {data.batch} x bptt {data.bptt}"
        + (f" over {world} processes" if world > 1 else "")
    )
