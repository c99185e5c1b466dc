"""A trained translator read back from its checkpoint: loading it, translating sentences (greedy
or beam), evaluating BLEU and chrF on parallel text, and the attention of one translation."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnkit.data.buckets import Sequences
from rnnkit.train import rundir
from rnnkit.translate.decode import Hypothesis
from rnnkit.translate.evaluate import score, translate_ids
from rnnkit.translate.model import Seq2Seq
from rnnkit.translate.pairs import Pairs
from rnnkit.translate.run import TASK, encode_pairs
from rnnkit.translate.text import UNK_ID, Codec

logger = logging.getLogger(__name__)


@dataclass
class Translator:
    """A trained Seq2Seq with the codecs of its two languages."""

    model: Seq2Seq  # in eval mode
    source: Codec
    target: Codec
    info: dict  # {"path", "step", "config", "metrics"}

    @property
    def max_tokens(self) -> int:
        return self.info["config"].get("data", {}).get("max_tokens", 100)

    def encode(self, sentences: list[str]) -> Sequences:
        """The sentences' ids, each cut to max_tokens (warned); unknown tokens are logged."""
        if isinstance(sentences, str):
            raise TypeError("sentences must be a list of strings, not one string")
        ids, cut, unknown = [], 0, []
        for n, text in enumerate(sentences):
            if not isinstance(text, str):
                raise TypeError(f"sentence {n} must be a str, got {type(text).__name__}")
            x = self.source.encode(text)
            cut += len(x) > self.max_tokens
            if UNK_ID in x:
                unknown.extend(self.source.unknown(text))
            ids.append(x[: self.max_tokens] or [UNK_ID])
        if cut:
            logger.warning(
                "%d sentences longer than %d tokens were truncated", cut, self.max_tokens
            )
        if unknown:
            shown = ", ".join(sorted(set(unknown))[:8])
            logger.warning(
                "%d source tokens are not in the model's vocabulary and read as <unk>: %s%s",
                len(unknown),
                shown,
                ", ..." if len(set(unknown)) > 8 else "",
            )
        return Sequences(ids)

    def hypotheses(
        self,
        sentences: list[str],
        beam: int = 5,
        alpha: float = 1.0,
        attention: bool = False,
        max_length: int | None = None,
    ) -> list[Hypothesis]:
        """The best hypothesis per sentence; max_length caps the tokens of each (default:
        2 x the source length + 10)."""
        if not sentences:
            return []
        ids = self.encode(sentences)
        return translate_ids(
            self.model, ids, beam=beam, alpha=alpha, attention=attention, max_length=max_length
        )

    def translate(
        self, sentences: list[str], beam: int = 5, alpha: float = 1.0, max_length: int | None = None
    ) -> list[str]:
        """One translation per sentence, in order; beam 1 is greedy search."""
        hyps = self.hypotheses(sentences, beam, alpha, max_length=max_length)
        return [self.target.decode(h.tokens) for h in hyps]

    def evaluate(
        self, pairs: Pairs, beam: int = 5, alpha: float = 1.0, max_length: int | None = None
    ) -> dict:
        """BLEU and chrF (sacrebleu) of the translations of pairs.source against pairs.target,
        and the teacher-forced loss and perplexity."""
        encoded, _ = encode_pairs(pairs, self.source, self.target, self.max_tokens, pairs.origin)
        result, translations = score(
            self.model, encoded, pairs.target, self.target, beam=beam, alpha=alpha,
            max_length=max_length,
        )  # fmt: skip
        return {**result, "skipped": pairs.skipped, "translations": translations}

    def attention(self, sentence: str, beam: int = 5) -> tuple[list[str], list[str], torch.Tensor]:
        """(source tokens, target tokens with </s>, weights (target, source)) of one sentence."""
        (h,) = self.hypotheses([sentence], beam, attention=True)
        src = self.source.tokens(sentence)[: self.max_tokens]
        tgt = [self.target.decode([i]) or "?" for i in h.tokens] + ["</s>"]
        return src, tgt, h.attention


def load(path: str | Path, device: str | torch.device = "cpu") -> Translator:
    """The translator in a checkpoint or a run directory (its best/, else its last/)."""
    ckpt = rundir.load_task(path, TASK)
    with rundir.usable(ckpt, TASK):
        source = Codec.from_dict(ckpt.vocab["source"])
        target = Codec.from_dict(ckpt.vocab["target"])
        model = rundir.build_model(ckpt, Seq2Seq)
    model.to(device).eval()
    info = rundir.info(ckpt)
    return Translator(model, source, target, info)
