"""Sampling text from a CharLM one character at a time, through the core's stepping API."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from rnnkit.textgen.data import CharVocab
from rnnkit.textgen.model import CharLM


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Reject a bad sampling option with a message naming the value."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an int >= 1 (or None for all), got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] (or None for all), got {top_p!r}")


def pick(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The next id, shape (1,), drawn from logits (V,).

    temperature 0: the arg max (greedy). Otherwise softmax(logits / temperature) restricted
    to the top_k most likely ids, then to the smallest prefix of those (most likely first)
    whose probability sums to at least top_p, renormalised and sampled with `generator`.
    So top_k=1, or a tiny top_p, is greedy. Ties keep the lower id first, as argmax does.
    """
    if temperature == 0:
        return logits.argmax().reshape(1)
    logits = logits / temperature
    if top_k is None and top_p is None:
        return torch.multinomial(logits.softmax(-1), 1, generator=generator)
    logits, ids = logits.sort(descending=True, stable=True)  # (V,) most likely first
    if top_k is not None:
        logits, ids = logits[:top_k], ids[:top_k]
    probs = logits.softmax(-1)
    if top_p is not None:
        keep = int(((probs.cumsum(-1) - probs) < top_p).sum())  # mass before each < top_p
        probs, ids = probs[:keep], ids[:keep]
    return ids[torch.multinomial(probs, 1, generator=generator)]


def generate(
    model: CharLM,
    vocab: CharVocab,
    prime: str = "",
    length: int = 500,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    seed: int | None = None,
) -> Iterator[str]:
    """An iterator over `length` characters sampled after `prime`, one at a time, batch 1.

    The options are checked here, before any character is produced. The priming text is fed
    through the model first (characters outside the vocabulary become <unk>) and is not
    yielded; an empty prime starts from "\\n" when the vocabulary has it, else from <unk>.
    greedy=True is temperature 0. <unk> itself is never sampled. seed: a torch.Generator
    seeded with it makes the output repeat; None uses torch's global random state. While
    it runs the model is in eval mode (restored when the iterator ends or is closed); its
    carried training state (`model.state`) is not touched.
    """
    check_sampling(temperature, top_k, top_p)
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be an int >= 0, got {length!r}")
    if len(vocab) != model.config.vocab_size:
        raise ValueError(
            f"the vocabulary has {len(vocab)} ids but the model {model.config.vocab_size}"
        )
    device = next(model.parameters()).device
    generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    if not prime:
        prime = "\n" if "\n" in vocab.chars else ""
    ids = vocab.encode(prime) if prime else torch.tensor([vocab.unk_id])  # (P,)
    temperature = 0.0 if greedy else float(temperature)
    return _sample(model, vocab, ids.to(device), length, temperature, top_k, top_p, generator)


@torch.no_grad()  # torch's decorator turns grad off around each step of a generator only
def _sample(model, vocab, ids, length, temperature, top_k, top_p, generator) -> Iterator[str]:
    was_training = model.training
    model.eval()
    try:
        logits, state = model.run(ids.unsqueeze(0))  # (1, P, V): the prime in one call
        logits = logits[0, -1]  # (V,)
        for i in range(length):
            logits[vocab.unk_id] = -math.inf
            nxt = pick(logits, temperature, top_k, top_p, generator)  # (1,)
            yield vocab.chars[nxt.item()]
            if i + 1 < length:
                logits, state = model.step(nxt, state)  # (1, V)
                logits = logits[0]
    finally:
        model.train(was_training)
