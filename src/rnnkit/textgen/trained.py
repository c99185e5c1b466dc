"""A trained textgen model read back from its checkpoint: finding and loading it, evaluating it
on a text, and sampling from it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from rnnkit.textgen.data import CharVocab, TextStreams
from rnnkit.textgen.generate import generate
from rnnkit.textgen.model import CharLM, evaluate
from rnnkit.textgen.run import TASK, TextData
from rnnkit.train import rundir

logger = logging.getLogger(__name__)


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[CharLM, CharVocab, dict]:
    """(model in eval mode on `device`, vocabulary, checkpoint info) from a checkpoint or a run
    directory (`find_checkpoint`); info: {"path", "step", "config", "metrics"}."""
    ckpt = rundir.load_task(path, TASK)
    with rundir.usable(ckpt, TASK):
        vocab = CharVocab.from_dict(ckpt.vocab)
        model = rundir.build_model(ckpt, CharLM)
    model.to(device).eval()
    info = rundir.info(ckpt)
    return model, vocab, info


def evaluate_text(
    model: CharLM,
    vocab: CharVocab,
    text: str,
    *,
    batch: int = TextData.batch,
    bptt: int = TextData.bptt,
) -> dict:
    """{"nats_per_char", "bits_per_char", "chars", "unknown_chars"} of `model` on `text`.

    The text is read as `batch` streams of `bptt`-step windows with the state carried, as in
    validation (fewer streams and shorter windows when it is short); "chars" counts the
    characters predicted, "unknown_chars" those of the text missing from the vocabulary.
    """
    ids = vocab.encode(text)  # (N,)
    if len(ids) < 2:
        raise ValueError("the text has fewer than 2 characters: there is nothing to predict")
    bptt = min(bptt, len(ids) - 1)
    batch = max(1, min(batch, len(ids) // (bptt + 1)))
    result = evaluate(model, TextStreams(ids, batch, bptt))
    return {
        "nats_per_char": result["nats_per_char"],
        "bits_per_char": result["bits_per_char"],
        "chars": result["chars"],
        "unknown_chars": int((ids == vocab.unk_id).sum()),
    }


def sample(model: CharLM, vocab: CharVocab, prime: str = "", **options) -> Iterator[str]:
    """`generate(model, vocab, prime, **options)`, options checked at once, with a warning when
    the prime holds characters the model never saw (they read as <unk>)."""
    chars = generate(model, vocab, prime, **options)
    unknown = int((vocab.encode(prime) == vocab.unk_id).sum()) if prime else 0
    if unknown:
        logger.warning("%d character(s) of the prime are not in the vocabulary", unknown)
    return chars
