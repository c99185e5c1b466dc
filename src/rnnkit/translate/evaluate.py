"""A Seq2Seq over many sentences: translating encoded sources in batches (greedy or beam), the
teacher-forced loss, and corpus BLEU and chrF with sacrebleu.

BLEU is sacrebleu's corpus BLEU with its standard "13a" tokenisation of hypotheses and
references as given (for Multi30k's tok/ files: lower-cased, Moses-tokenised text); chrF is
sacrebleu's chrF2. The signature of each metric is returned with it.
"""

from __future__ import annotations

import math

import torch

from rnnkit.data.buckets import Sequences
from rnnkit.extras import need
from rnnkit.translate.batches import Encoded, sorted_pair_batches
from rnnkit.translate.decode import Hypothesis, beam_search, greedy
from rnnkit.translate.model import Seq2Seq
from rnnkit.translate.text import PAD_ID, Codec

BLEU_TOKENIZE = "13a"


def translate_ids(
    model: Seq2Seq,
    source: Sequences,
    *,
    beam: int = 1,
    alpha: float = 1.0,
    batch: int = 64,
    max_length: int | None = None,
    attention: bool = False,
) -> list[Hypothesis]:
    """The best hypothesis of each source sequence, in their order; beam 1 is greedy."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[Hypothesis | None] = [None] * len(source)
    order = torch.argsort(source.lengths, descending=True, stable=True)
    for index in order.split(batch):
        (src, lengths), _, _ = source.batch(index)
        src, lengths = src.to(device), lengths.to(device)
        if beam == 1:
            hyps = greedy(model, src, lengths, max_length, attention=attention)
        else:
            hyps = beam_search(model, src, lengths, beam, alpha, max_length, attention=attention)
        for i, h in zip(index.tolist(), hyps, strict=True):
            out[i] = h
    model.train(was_training)
    return out


@torch.no_grad()
def loss(model: Seq2Seq, data: Encoded, batch: int = 64) -> dict:
    """The teacher-forced cross-entropy per target token (no label smoothing) and perplexity."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    for _, (inputs, targets, _) in sorted_pair_batches(data, batch):
        inputs = tuple(x.to(device) for x in inputs)
        logits, _ = model(inputs)
        targets = targets.to(device)
        total += float(
            torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), targets.flatten(), ignore_index=PAD_ID, reduction="sum"
            )
        )
        tokens += int((targets != PAD_ID).sum())
    model.train(was_training)
    mean = total / tokens
    return {"loss": mean, "ppl": math.exp(min(mean, 50.0))}


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
    """{"bleu", "chrf", "bleu_signature", "chrf_signature"} of the hypotheses."""
    sacrebleu = need("sacrebleu", "BLEU and chrF")

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu = sacrebleu.metrics.BLEU(tokenize=BLEU_TOKENIZE, force=True)
    chrf = sacrebleu.metrics.CHRF()
    # tokenised text is expected here (and stated): no "forgot to detokenize" warning
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": b.score,
        "chrf": c.score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def score(
    model: Seq2Seq,
    data: Encoded,
    references: list[str],
    target: Codec,
    *,
    beam: int = 1,
    alpha: float = 1.0,
    max_length: int | None = None,
) -> tuple[dict, list[str]]:
    """({bleu, chrf, their signatures, loss, ppl, sentences, beam}, the translations) of the
    model on `data` against the reference texts."""
    hyps = translate_ids(model, data.source, beam=beam, alpha=alpha, max_length=max_length)
    translations = [target.decode(h.tokens) for h in hyps]
    result = {**corpus_scores(translations, references), **loss(model, data)}
    return {**result, "sentences": len(hyps), "beam": beam}, translations
