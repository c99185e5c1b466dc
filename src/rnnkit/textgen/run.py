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
from rnnkit.train import checkpoint, distributed, rundir
from rnnkit.train.config import TrainConfig, split_options
from rnnkit.train.loop import Trainer
from rnnkit.train.seeding import seed_everything

logger = logging.getLogger(__name__)

TASK = "textgen"  # the "task" of a textgen checkpoint's config
BUILTIN = "the built-in corpus (Python's help topics)"


@dataclass
class TextData:
    """The text a run trains on and how it is cut into truncated-BPTT batches."""

    path: str | None = None  # a text file; None: builtin_corpus(), Python's own help topics
    encoding: str = "utf-8"  # the file's encoding
    val_fraction: float = 0.1  # the last 10 % validates (nanoGPT's split); 0: no validation
    bptt: int = 128  # time steps per batch: how far back the gradient reaches
    batch: int = 64  # streams side by side, over all processes together (the global batch)

    def __post_init__(self):
        for key in ("bptt", "batch"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        split_text("", self.val_fraction)  # checks val_fraction


DATA_KEYS = tuple(f.name for f in fields(TextData))
MODEL_KEYS = tuple(f.name for f in fields(CharLMConfig) if f.name != "vocab_size")
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))
BUDGET_KEYS = ("max_steps", "max_time")


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


def plan(options: dict, saved: dict | None = None) -> tuple[TextData, dict, TrainConfig]:
    """(data, model options, training config) from `options` over the defaults, or over the
    config `saved` in the checkpoint of the run being resumed (see the module docstring)."""
    groups = (DATA_KEYS, MODEL_KEYS, TRAIN_KEYS)
    data, model, train = split_options(options, "textgen", *groups, also=())
    if saved is None:
        return TextData(**data), model, TrainConfig(**train)
    before = {**saved["data"], **saved["model"]}
    for key, value in {**data, **model}.items():
        if key != "path" and value != before[key]:  # the path may move; the text is checked
            raise ValueError(
                f"{key}={value} differs from the run being resumed ({key}={before[key]}): "
                "a resumed run keeps its data and model options"
            )
    data = {**{k: saved["data"][k] for k in DATA_KEYS}, **data}
    model = {**{k: saved["model"][k] for k in MODEL_KEYS}, **model}
    base = {**saved["train"], "device": None}
    if any(k in train for k in BUDGET_KEYS):  # a new budget replaces the old one whole
        base.update(dict.fromkeys(BUDGET_KEYS))
    return TextData(**data), model, TrainConfig(**{**base, **train})


def train(
    options: dict,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> Run:
    """Train a CharLM on `options` into the run directory `out` (see train/rundir.py); `resume`
    continues the run in `out` from out/last, `overwrite` replaces another run held there.

    Everything the user gave is checked before anything is written. Under torchrun every
    process calls this; the streams are shared out and only process 0 writes.
    """
    out = Path(out)
    distributed.setup()
    previous = _previous_run(out, resume, overwrite)
    data, model_options, config = plan(options, previous.config if previous else None)
    if data.path is not None:
        data.path = str(Path(data.path).resolve())
    corpus = load_corpus(data, CharVocab.from_dict(previous.vocab) if previous else None)
    if previous is not None and corpus.text != previous.config["data"]["text"]:
        raise ValueError(
            f"{data.path or BUILTIN} is not the text the run in {out} was trained on "
            f"({previous.config['data']['text']['chars']} characters, another SHA-256)"
        )
    seed_everything(config.seed)  # the same initial weights in every process
    model = CharLM(len(corpus.vocab), **model_options)
    if config.device is None:
        model.to(distributed.device())
    run_config = {
        "task": TASK,
        "model": model.config.to_dict(),
        "data": {**asdict(data), "text": corpus.text},
    }
    trainer = Trainer(
        model,
        _carrying_batches(corpus.train, model),
        config,
        out,
        valid_fn=_valid_fn(corpus.valid) if corpus.valid is not None else None,
        run_config=run_config,
        vocab=corpus.vocab.to_dict(),
        get_state=model.get_state,
        set_state=model.set_state,
        on_step=on_step,
        overwrite=overwrite,
    )
    _log_start(model, data, corpus)
    result = trainer.fit(resume=out / rundir.LAST if resume else None)
    return Run(model, corpus.vocab, _summary(result, trainer.elapsed, data, previous, out))


def _summary(result, elapsed: float, data: TextData, previous, out: Path) -> dict:
    """The numbers `rnnkit textgen train` reports, from the trainer's result."""
    start_step, start_elapsed = 0, 0.0
    if previous is not None:
        start_step, start_elapsed = previous.step, previous.extra_state["trainer"]["elapsed"]
    seconds = elapsed - start_elapsed
    tokens = (result.step - start_step) * data.batch * data.bptt
    best, metrics = result.best, result.metrics
    return {
        "out": str(out),
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


def _previous_run(out: Path, resume: bool, overwrite: bool) -> checkpoint.Checkpoint | None:
    """The checkpoint to resume from, or None; refuses an `out` that holds another run."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory; give a directory for the run")
    if not resume:
        held = rundir.held(out)
        if held and not overwrite:
            raise ValueError(
                f"{out} already holds a training run ({', '.join(held)}): continue it with "
                "--resume, replace it with --force, or choose another directory"
            )
        return None
    last = out / rundir.LAST
    if not checkpoint.exists(last):
        raise ValueError(f"nothing to resume: {last} is not a checkpoint")
    ckpt = checkpoint.load(last)
    rundir.check_task(ckpt, TASK)
    return ckpt


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


def _log_start(model: CharLM, data: TextData, corpus: Corpus) -> None:
    if not distributed.is_main():
        return
    c, world = model.config, distributed.world_size()
    params = sum(p.numel() for p in model.parameters())
    train = corpus.train.stream_len * data.batch
    valid = corpus.valid.stream_len * data.batch if corpus.valid is not None else 0
    logger.info(
        f"textgen: {c.layers} x {c.hidden} {c.cell} ({params / 1e6:.2f}M parameters), "
        f"vocabulary {len(corpus.vocab)}; {data.path or BUILTIN}: {train:,} training and "
        f"{valid:,} validation characters; batch {data.batch} x bptt {data.bptt}"
        + (f" over {world} processes" if world > 1 else "")
    )
