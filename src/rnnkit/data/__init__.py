"""Files to tensors and batches, with their vocabularies."""

from rnnkit.data.text import (
    CharVocab,
    TextStreams,
    builtin_corpus,
    read_text,
    split_text,
)

__all__ = ["CharVocab", "TextStreams", "builtin_corpus", "read_text", "split_text"]
