"""Utterances as training batches: audio files read and featurised once, normalised, and
served padded in the shape rnnkit.data.buckets.BucketBatches batches (grouped by length).

A batch is ((frames (B, T, F), lengths (B,)), targets, n_frames), T the batch's longest
utterance, frames past each length zero. targets: class ids (B,) for classify, or
(labels (B, S) zero-padded, label_lengths (B,)) for CTC.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.speech.audio import read_wav
from rnnkit.speech.augment import Masking
from rnnkit.speech.features import FeatureConfig, compute

logger = logging.getLogger(__name__)


def featurise(paths: list[Path], config: FeatureConfig) -> list[Tensor]:
    """The (T, F) features of each audio file, unnormalised, logging progress on long lists."""
    out, last = [], time.perf_counter()
    for n, path in enumerate(paths, 1):
        out.append(compute(read_wav(path, config.sample_rate), config))
        if time.perf_counter() - last > 10:
            last = time.perf_counter()
            logger.info("featurised %d of %d files", n, len(paths))
    return out


class Utterances:
    """N normalised utterances and their targets; `masking` applies to training batches."""

    def __init__(
        self,
        frames: list[Tensor],  # [(T_n, F)], normalised
        targets: list,  # class ids (int) or label id lists
        ctc: bool,
        masking: Masking | None = None,
    ):
        if not frames:
            raise ValueError("there are no utterances")
        self.frames, self.targets, self.ctc, self.masking = frames, targets, ctc, masking
        self.lengths = torch.tensor([len(f) for f in frames], dtype=torch.int64)  # (N,)
        self.labels = self.lengths  # what BucketBatches asks for: every utterance has targets

    def __len__(self) -> int:
        return len(self.frames)

    def batch(self, index: Tensor, pad_id: int = 0, pad_to: int | None = None):
        """The utterances at `index` (B,) as ((frames, lengths), targets, n_frames)."""
        picked = [self.frames[i] for i in index.tolist()]
        if self.masking is not None and self.masking.active:
            picked = [self.masking(f) for f in picked]
        lengths = self.lengths[index]
        T = pad_to or int(lengths.max())
        x = torch.zeros(len(picked), T, picked[0].shape[1])  # (B, T, F)
        for b, f in enumerate(picked):
            x[b, : len(f)] = f
        if self.ctc:
            seqs = [self.targets[i] for i in index.tolist()]
            label_lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
            labels = torch.zeros(len(seqs), int(label_lengths.max()), dtype=torch.int64)
            for b, s in enumerate(seqs):
                labels[b, : len(s)] = torch.tensor(s, dtype=torch.int64)
            targets = (labels, label_lengths)
        else:
            targets = torch.tensor([self.targets[i] for i in index.tolist()], dtype=torch.int64)
        return (x, lengths), targets, int(lengths.sum())
