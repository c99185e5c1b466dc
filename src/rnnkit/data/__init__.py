"""Data code that several tasks share: length-bucketed batches, vocabularies, the
classification metrics (classify and speech) and writing output files atomically (files)."""

from rnnkit.data.buckets import BucketBatches, Sequences, sorted_batches
from rnnkit.data.vocab import Vocab

__all__ = ["BucketBatches", "Sequences", "Vocab", "sorted_batches"]
