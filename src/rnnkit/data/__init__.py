"""Files to tensors and batches, with their vocabularies."""

from rnnkit.data.buckets import BucketBatches, Sequences, sorted_batches
from rnnkit.data.labelled import Examples, read_labelled, split_examples
from rnnkit.data.text import (
    CharVocab,
    TextStreams,
    builtin_corpus,
    read_text,
    split_text,
)
from rnnkit.data.tokenize import Tokenizer
from rnnkit.data.vectors import read_vectors
from rnnkit.data.vocab import Vocab

__all__ = [
    "BucketBatches",
    "CharVocab",
    "Examples",
    "Sequences",
    "TextStreams",
    "Tokenizer",
    "Vocab",
    "builtin_corpus",
    "read_labelled",
    "read_text",
    "read_vectors",
    "sorted_batches",
    "split_examples",
    "split_text",
]
