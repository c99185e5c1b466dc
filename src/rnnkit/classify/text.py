"""Texts and labels to what the classifier reads: token ids through the run's tokenizer and
vocabulary (truncated to max_tokens), and label strings to class ids."""

from __future__ import annotations

from collections.abc import Sequence

from rnnkit.classify.tokenize import Tokenizer
from rnnkit.data.buckets import Sequences
from rnnkit.data.vocab import Vocab

TRUNCATIONS = ("head", "tail", "head+tail")


class TextEncoder:
    """tokenizer -> vocabulary ids -> at most `max_tokens` ids (all when None): the first N
    (truncate="head"), the last N ("tail": where a review's verdict usually is), or the first
    N // 4 and the last N - N // 4 ("head+tail", Sun et al. 2019's best for long reviews).

    A text with no token left after tokenizing (only markup, say) reads as one <unk>, so every
    text gets a prediction. Stored in the checkpoint through to_dict / from_dict.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        vocab: Vocab,
        max_tokens: int | None = None,
        truncate: str = "head",
    ):
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise ValueError(f"max_tokens must be a positive int or None, got {max_tokens!r}")
        if truncate not in TRUNCATIONS:
            raise ValueError(f"truncate must be one of {TRUNCATIONS}, got {truncate!r}")
        self.tokenizer, self.vocab, self.max_tokens = tokenizer, vocab, max_tokens
        self.truncate = truncate

    def ids(self, text: str) -> list[int]:
        ids = self.vocab.encode(self._cut(self.tokenizer(text)))
        return ids or [self.vocab.unk_id]

    def _cut(self, tokens: list[str]) -> list[str]:
        n = self.max_tokens
        if n is None or len(tokens) <= n:
            return tokens
        if self.truncate == "head":
            return tokens[:n]
        if self.truncate == "tail":
            return tokens[-n:]
        head = n // 4
        return tokens[:head] + tokens[len(tokens) - (n - head) :]

    def encode(self, texts: Sequence[str], labels: Sequence[int] | None = None) -> Sequences:
        return Sequences([self.ids(t) for t in texts], labels)

    def to_dict(self) -> dict:
        return {
            "tokenizer": self.tokenizer.to_dict(),
            "vocab": self.vocab.to_dict(),
            "max_tokens": self.max_tokens,
            "truncate": self.truncate,
        }

    @classmethod
    def from_dict(cls, data: dict) -> TextEncoder:
        return cls(
            Tokenizer.from_dict(data["tokenizer"]),
            Vocab.from_dict(data["vocab"]),
            data.get("max_tokens"),
            data.get("truncate", "head"),
        )


def class_ids(labels: Sequence[str], classes: Sequence[str], source: str) -> list[int]:
    """The class id of each label; a label the model was not trained on is an error."""
    index = {c: k for k, c in enumerate(classes)}
    unseen = sorted({label for label in labels if label not in index})
    if unseen:
        shown = ", ".join(repr(u) for u in unseen[:5]) + (" ..." if len(unseen) > 5 else "")
        raise ValueError(
            f"{source} has label(s) the model was not trained on: {shown}; "
            f"its classes are {', '.join(repr(c) for c in classes)}"
        )
    return [index[label] for label in labels]
