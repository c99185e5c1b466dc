"""Tokens to ids for classification: the word (or character) vocabulary and its JSON form."""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterable

from torch import Tensor


class Vocab:
    """Tokens to ids: <pad> = 0, <unk> = 1, then the kept tokens by descending frequency (ties:
    first seen first).

    Any token not in the vocabulary encodes to unk_id. `to_dict` / `from_dict` give the JSON
    form stored in checkpoints.
    """

    PAD = "<pad>"
    UNK = "<unk>"
    pad_id = 0
    unk_id = 1

    def __init__(self, tokens: list[str]):
        if not isinstance(tokens, (list, tuple)):
            raise TypeError(f"tokens must be a list of str, got {type(tokens).__name__}")
        if list(tokens[:2]) != [self.PAD, self.UNK]:
            raise ValueError(
                f"a vocabulary starts with {self.PAD!r}, {self.UNK!r}, got {list(tokens[:2])!r}"
            )
        index: dict[str, int] = {}
        for i, token in enumerate(tokens):
            if not isinstance(token, str):
                raise TypeError(f"token {i} must be a str, got {type(token).__name__} {token!r}")
            if token in index:
                raise ValueError(f"token {token!r} is in the vocabulary twice: {index[token]}, {i}")
            index[token] = i
        self._tokens = list(tokens)
        self._index = index

    @classmethod
    def build(
        cls, token_lists: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """The tokens seen at least min_freq times, the most frequent first, at most max_size ids.

        max_size counts <pad> and <unk> too (so len(vocab) <= max_size; it must be >= 3). The
        special tokens themselves, when met in the token lists, keep their ids 0 and 1.
        """
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an int >= 1, got {min_freq!r}")
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 3
        ):
            raise ValueError(
                f"max_size must be None or an int >= 3 (<pad>, <unk> and a token), got {max_size!r}"
            )
        counts = _count(token_lists)
        kept = [t for t, c in counts.items() if c >= min_freq and t not in (cls.PAD, cls.UNK)]
        if not kept:
            raise ValueError(
                f"no token occurs at least min_freq={min_freq} times in the token lists "
                f"({len(counts)} distinct tokens); give more text or a lower min_freq"
            )
        kept.sort(key=counts.__getitem__, reverse=True)  # stable: ties stay in first-seen order
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls([cls.PAD, cls.UNK, *kept])

    def __len__(self) -> int:
        return len(self._tokens)

    def __getitem__(self, token: str) -> int:
        """The id of `token`; unk_id when it is not in the vocabulary."""
        if not isinstance(token, str):
            raise TypeError(f"vocabulary tokens are str, got {type(token).__name__} {token!r}")
        return self._index.get(token, self.unk_id)

    def __contains__(self, token) -> bool:
        return isinstance(token, str) and token in self._index

    def encode(self, tokens: list[str]) -> list[int]:
        """One id per token; tokens not in the vocabulary become unk_id."""
        if isinstance(tokens, str):
            raise TypeError(f"encode takes a list of tokens, got the str {tokens[:40]!r}")
        get, unk = self._index.get, self.unk_id
        try:
            ids = [get(token, unk) for token in tokens]
        except TypeError:
            raise TypeError(f"encode takes a list of str tokens, got {tokens!r:.80}") from None
        if unk in ids:  # only an unknown id can hide a token that is not a str
            for token in tokens:
                if not isinstance(token, str):
                    raise TypeError(f"tokens must be str, got {type(token).__name__} {token!r}")
        return ids

    def decode(self, ids) -> list[str]:
        """Ids (a 1-D tensor or a sequence of ints) back to tokens; an id out of range raises."""
        if isinstance(ids, Tensor):
            if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex():
                raise TypeError(
                    f"decode takes a 1-D integer tensor, got {ids.dtype} shape {tuple(ids.shape)}"
                )
            ids = ids.tolist()
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"decode takes a sequence of int ids, got {type(ids).__name__}")
        return [self._token(i) for i in ids]

    def _token(self, i) -> str:
        try:
            if isinstance(i, bool):
                raise TypeError
            k = operator.index(i)
        except TypeError:
            raise TypeError(f"ids must be ints, got {type(i).__name__} {i!r}") from None
        if not 0 <= k < len(self._tokens):
            raise ValueError(f"id {k} is out of range: the vocabulary has ids 0..{len(self) - 1}")
        return self._tokens[k]

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order, <pad> and <unk> first (a copy)."""
        return list(self._tokens)

    def to_dict(self) -> dict:
        """JSON-able; `Vocab.from_dict` inverts it."""
        return {"tokens": list(self._tokens)}

    @classmethod
    def from_dict(cls, data: dict) -> Vocab:
        if not isinstance(data, dict) or set(data) != {"tokens"}:
            got = f"the keys {sorted(map(str, data))}" if isinstance(data, dict) else type(data)
            raise ValueError(f"not a vocabulary: expected {{'tokens': [...]}}, got {got}")
        if not isinstance(data["tokens"], list):
            raise ValueError(
                f"not a vocabulary: 'tokens' must be a list, got {type(data['tokens']).__name__}"
            )
        return cls(data["tokens"])

    def __eq__(self, other) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return self._tokens == other._tokens

    def __repr__(self) -> str:
        head = ", ".join(self._tokens[2:5]) + (", ..." if len(self) > 5 else "")
        return f"Vocab({len(self)} tokens: <pad>, <unk>, {head})"


def _count(token_lists: Iterable[list[str]]) -> Counter:
    """Token counts over all lists, in first-seen order; each list checked to be one."""
    if isinstance(token_lists, (str, bytes)) or not isinstance(token_lists, Iterable):
        raise TypeError(
            f"token_lists must be an iterable of token lists, got {type(token_lists).__name__}"
        )
    counts: Counter = Counter()
    for n, tokens in enumerate(token_lists):
        if not isinstance(tokens, (list, tuple)):
            raise TypeError(
                f"token list {n} must be a list of str tokens, got {type(tokens).__name__} "
                f"{tokens!r:.40}; for a single text pass [tokens]"
            )
        try:
            counts.update(tokens)
        except TypeError:
            raise TypeError(f"token list {n} holds a non-str token: {tokens!r:.80}") from None
    for token in counts:
        if not isinstance(token, str):
            raise TypeError(f"tokens must be str, got {type(token).__name__} {token!r}")
    return counts
