"""Sentence pairs as padded batches for a Seq2Seq: training batches bucketed by source length,
evaluation batches sorted by it.

A batch is ((src (B, S), src_lengths (B,), tgt_in (B, T)), tgt_out (B, T), n_tokens) with
tgt_in = <s> y_1 .. y_n and tgt_out = y_1 .. y_n </s>, both padded with <pad> (T = the longest
target + 1); n_tokens counts the target tokens the loss reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.data.buckets import BucketBatches, Sequences
from rnnkit.translate.text import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Encoded:
    """Pairs as token ids: source and target sequences (no <s>, </s>), aligned by index."""

    source: Sequences
    target: Sequences

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, index: Tensor):
        (src, src_lengths), _, _ = self.source.batch(index, PAD_ID)  # (B, S), (B,)
        (y, lengths), _, n = self.target.batch(index, PAD_ID)  # (B, T-1), (B,)
        B = len(index)
        bos = torch.full((B, 1), BOS_ID, dtype=torch.int64)
        pad = torch.full((B, 1), PAD_ID, dtype=torch.int64)
        tgt_in = torch.cat([bos, y], dim=1)  # (B, T)
        tgt_out = torch.cat([y, pad], dim=1)  # (B, T)
        tgt_out[torch.arange(B), lengths] = EOS_ID
        return (src, src_lengths, tgt_in), tgt_out, n + B


class PairBatches(BucketBatches):
    """`batches(step)` for the Trainer: pairs grouped by source length (see BucketBatches)."""

    needs_labels = False

    def __init__(self, data: Encoded, batch_size: int, *, seed: int = 0):
        super().__init__(data.source, batch_size, seed=seed)
        self.pairs = data

    def __call__(self, step: int):
        return self.pairs.batch(self.indices(step))


def sorted_pair_batches(data: Encoded, batch_size: int) -> Iterator[tuple[Tensor, tuple]]:
    """Every pair once, longest source first: (index (B,) into data, batch)."""
    order = torch.argsort(data.source.lengths, descending=True, stable=True)
    for index in order.split(batch_size):
        yield index, data.batch(index)
