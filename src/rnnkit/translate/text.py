"""One language's text to token ids and back: word vocabularies over whitespace-separated tokens,
or sentencepiece subwords trained on the training text; their JSON form for checkpoints.

Both kinds share the ids of the specials: <pad> 0, <unk> 1, <s> 2, </s> 3.
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Iterable

from rnnkit.data.vocab import Vocab
from rnnkit.extras import need

KINDS = ("word", "subword")
BOS, EOS = "<s>", "</s>"
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


class Codec:
    """Text <-> ids for one language.

    word: the text split on whitespace (give tokenised text, such as Moses' output), the
    tokens seen at least min_freq times in training kept; decode joins tokens with spaces.
    subword: a sentencepiece unigram model of about `vocab_size` pieces trained on the training
    sentences; decode restores the text's own spacing. Unknown tokens encode to <unk>.
    """

    def __init__(self, kind: str, vocab: Vocab | None = None, model: bytes | None = None):
        if kind not in KINDS:
            raise ValueError(f"tokenizer kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.vocab, self.model = kind, vocab, model
        self._sp = None
        if kind == "subword":
            sentencepiece = need("sentencepiece", "a subword (sentencepiece) tokenizer")
            self._sp = sentencepiece.SentencePieceProcessor(model_proto=model)

    @classmethod
    def build(
        cls,
        texts: list[str],
        kind: str = "word",
        *,
        min_freq: int = 2,
        max_vocab: int | None = 50_000,
        vocab_size: int = 8000,
    ) -> Codec:
        """A codec fitted on the training `texts`."""
        if kind == "word":
            counts = Vocab.build((t.split() for t in texts), min_freq=min_freq, max_size=max_vocab)
            kept = [t for t in counts.tokens[2:] if t not in (BOS, EOS)]
            return cls(kind, Vocab([Vocab.PAD, Vocab.UNK, BOS, EOS, *kept]))
        if kind == "subword":
            return cls(kind, model=_train_sentencepiece(texts, vocab_size))
        raise ValueError(f"tokenizer kind must be one of {KINDS}, got {kind!r}")

    def __len__(self) -> int:
        return len(self.vocab) if self.kind == "word" else self._sp.get_piece_size()

    def tokens(self, text: str) -> list[str]:
        if self.kind == "word":
            return text.split()
        return self._sp.encode(text, out_type=str)

    def encode(self, text: str) -> list[int]:
        """The ids of `text`, without <s> and </s>."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        if self.kind == "word":
            return self.vocab.encode(text.split())
        return self._sp.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        ids = [i for i in ids if i not in (PAD_ID, BOS_ID, EOS_ID)]
        if self.kind == "word":
            return " ".join(self.vocab.decode(ids))
        return self._sp.decode(ids)

    def unknown(self, text: str) -> list[str]:
        """The tokens of `text` this codec reads as <unk>."""
        return [tok for tok, i in zip(self.tokens(text), self.encode(text)) if i == UNK_ID]

    def to_dict(self) -> dict:
        if self.kind == "word":
            return {"kind": "word", "vocab": self.vocab.to_dict()}
        return {"kind": "subword", "model": base64.b64encode(self.model).decode("ascii")}

    @classmethod
    def from_dict(cls, data: dict) -> Codec:
        if not isinstance(data, dict) or data.get("kind") not in KINDS:
            raise ValueError(f"not a translation codec: {str(data)[:80]!r}")
        if data["kind"] == "word":
            return cls("word", Vocab.from_dict(data["vocab"]))
        return cls("subword", model=base64.b64decode(data["model"]))

    def __repr__(self) -> str:
        return f"Codec({self.kind!r}, {len(self)} ids)"


def _train_sentencepiece(texts: list[str], vocab_size: int) -> bytes:
    """A unigram sentencepiece model of the texts, with rnnkit's special ids."""
    sentencepiece = need("sentencepiece", "--tokenizer subword")

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 8:
        raise ValueError(f"subword vocab_size must be an int >= 8, got {vocab_size!r}")
    chars = Counter(ch for t in texts for ch in t if not ch.isspace())
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small corpus may not have that many pieces
        model_type="unigram",
        character_coverage=1.0 if len(chars) < 1000 else 0.9995,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        num_threads=1,
        minloglevel=2,  # no log on stderr
    )
    return model.getvalue()
