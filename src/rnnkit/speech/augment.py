"""SpecAugment-style masking of normalised feature frames for training (Park et al. 2019,
without time warping): bands of consecutive features and spans of consecutive frames set to 0,
the training mean after normalisation.

    T: frames, F: features
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.train.options import nonnegative_int, option


@dataclass
class Masking:
    """How many masks of what width; all zero: off."""

    freq_masks: int = option(  # bands masked per utterance
        0,
        "SpecAugment: bands of features zeroed per training utterance",
        type=nonnegative_int,
        metavar="N",
    )
    freq_width: int = 8  # each band: f ~ U{0..freq_width} consecutive features
    time_masks: int = option(  # spans masked per utterance
        0,
        "SpecAugment: spans of frames zeroed per training utterance",
        type=nonnegative_int,
        metavar="N",
    )
    time_width: int = 10  # each span: t ~ U{0..min(time_width, T // 5)} consecutive frames

    def __post_init__(self):
        for key in ("freq_masks", "freq_width", "time_masks", "time_width"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be an int >= 0, got {value!r}")

    @property
    def active(self) -> bool:
        return bool(self.freq_masks and self.freq_width or self.time_masks and self.time_width)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A masked copy of x (T, F); the masks' places from `generator` (torch's by default)."""
        x = x.clone()
        T, F = x.shape
        for _ in range(self.freq_masks):
            _mask(x, 1, F, min(self.freq_width, F), generator)
        for _ in range(self.time_masks):
            _mask(x, 0, T, min(self.time_width, T // 5), generator)
        return x


def _mask(x: Tensor, dim: int, size: int, width: int, generator) -> None:
    if width < 1:
        return
    w = int(torch.randint(0, width + 1, (), generator=generator))
    start = int(torch.randint(0, size - w + 1, (), generator=generator))
    x.narrow(dim, start, w).zero_()
