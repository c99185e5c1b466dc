"""Text to tokens for classification: the word and character tokenizers and their JSON form."""

from __future__ import annotations

import re
import unicodedata

KINDS = ("word", "char")

# An HTML tag such as <br />, <br/>, <i> or </i>: "<" then a letter (so "<3" and "a < b" stay).
_TAG = re.compile(r"<\s*/?\s*[A-Za-z][^<>]*>")
# A word: letters/digits (any script; not "_") with internal apostrophes ("isn't", "rock'n'roll").
# Anything else that is not whitespace is a token of its own: one punctuation mark (or "_").
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]|_")
_SPACES = re.compile(r"\s+")


class Tokenizer:
    """Text to tokens. word: HTML tags such as <br /> become spaces, lower-cased (if lower), split
    into words (letters/digits, keeping internal apostrophes as in "isn't" and "don't") and single
    punctuation marks; char: every character (after the same HTML-tag removal and lower-casing),
    whitespace runs collapsed to one space.

    Both kinds first put the text in Unicode NFC form (so a decomposed "é" is one letter). The word
    kind reads the typographic apostrophe U+2019 as "'" ("wasn’t" gives "wasn't"). The char kind
    drops whitespace at the two ends. Non-ASCII letters (é, ü, Cyrillic) are letters; "_" is not.
    """

    def __init__(self, kind: str = "word", lower: bool = True):
        if kind not in KINDS:
            raise ValueError(f"tokenizer kind must be one of {KINDS}, got {kind!r}")
        if not isinstance(lower, bool):
            raise TypeError(f"lower must be True or False, got {lower!r}")
        self.kind = kind
        self.lower = lower

    def __call__(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"the tokenizer takes a str, got {type(text).__name__}")
        text = self._clean(text)
        if self.kind == "word":
            return _WORD.findall(text.replace("\u2019", "'"))
        return list(_SPACES.sub(" ", text).strip())

    def _clean(self, text: str) -> str:
        """NFC form, HTML tags to spaces, lower case if asked."""
        text = _TAG.sub(" ", unicodedata.normalize("NFC", text))
        return text.lower() if self.lower else text

    def recipe(self) -> dict:
        """The steps of __call__ as data, for reproducing it without rnnkit (an exported model's
        sidecar): the patterns are Python `re` syntax."""
        return {
            "kind": self.kind,
            "lower": self.lower,
            "steps": "NFC-normalise; replace each match of html_tag by a space; lower-case if "
            "lower; word: replace U+2019 by ' then the tokens are re.findall(word, text); "
            "char: replace each match of spaces by one space, strip, then every character",
            "html_tag": _TAG.pattern,
            "word": _WORD.pattern,
            "spaces": _SPACES.pattern,
        }

    def to_dict(self) -> dict:
        """JSON-able; `Tokenizer.from_dict` inverts it."""
        return {"kind": self.kind, "lower": self.lower}

    @classmethod
    def from_dict(cls, data: dict) -> Tokenizer:
        expected = "expected {'kind': 'word' or 'char', 'lower': True or False}"
        if not isinstance(data, dict):
            raise ValueError(f"not a tokenizer: {expected}, got a {type(data).__name__}")
        if set(data) != {"kind", "lower"}:
            raise ValueError(f"not a tokenizer: {expected}, got the keys {sorted(map(str, data))}")
        if data["kind"] not in KINDS or not isinstance(data["lower"], bool):
            raise ValueError(f"not a tokenizer: {expected}, got {data!r}")
        return cls(data["kind"], data["lower"])

    def __eq__(self, other) -> bool:
        if not isinstance(other, Tokenizer):
            return NotImplemented
        return (self.kind, self.lower) == (other.kind, other.lower)

    def __hash__(self) -> int:
        return hash((self.kind, self.lower))

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, lower={self.lower})"
