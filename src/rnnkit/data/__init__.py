"""Data code that several tasks share: length-bucketed batches, vocabularies, and the
classification metrics (classify and speech)."""

from rnnkit.data.buckets import BucketBatches, Sequences, sorted_batches
from rnnkit.data.vocab import Vocab

__all__ = ["BucketBatches", "Sequences", "Vocab", "sorted_batches"]
