"""The long-range benchmarks, generated: the adding problem and copy memory.

Adding problem (Hochreiter & Schmidhuber 1997; the version of Le et al. 2015), length T:

    x (N, T, 2)   channel 0: values ~ U[0, 1]; channel 1: a marker, 1 at one step chosen
                  uniformly in [0, T/2) and at one in [T/2, T), 0 elsewhere
    y (N,)        the sum of the two marked values

Predicting the mean, 1, scores MSE = Var(u_1 + u_2) = 2/12 = 1/6 (ADDING_BASELINE_MSE).

Copy memory (Arjovsky et al. 2016), delay T, alphabet 0 blank, 1..8 symbols, 9 delimiter:

    x (N, T + 20)   10 symbols ~ U{1..8}, T - 1 blanks, the delimiter, 10 blanks
    y (N, T + 20)   T + 10 blanks, then the 10 symbols

A memoryless model outputs blank until the delimiter and a uniform guess over the 8 symbols
after it: cross-entropy 10 ln 8 / (T + 20) per step (copy_baseline_ce).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

ADDING_BASELINE_MSE = 1.0 / 6.0
COPY_SYMBOLS, COPY_LENGTH = 8, 10  # symbols 1..8, 10 of them to remember
COPY_BLANK, COPY_DELIMITER = 0, 9
COPY_VOCAB = 10  # input classes: blank, 8 symbols, the delimiter
COPY_CLASSES = 9  # output classes: blank and the 8 symbols


def _check_args(n: int, length: int, least: int) -> None:
    for name, value, low in (("n", n, 1), ("length", length, least)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def adding_problem(
    n: int, length: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """(x (n, T, 2), y (n,)) float32 of the adding problem with T = length >= 2."""
    _check_args(n, length, 2)
    half = length // 2
    values = torch.rand(n, length, generator=generator)
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, length, (n,), generator=generator)
    marks = torch.zeros(n, length)
    rows = torch.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return torch.stack([values, marks], dim=-1), y


def copy_memory(
    n: int, length: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """(x (n, T + 20), y (n, T + 20)) int64 of copy memory with delay T = length >= 1."""
    _check_args(n, length, 1)
    K, total = COPY_LENGTH, length + 2 * COPY_LENGTH
    symbols = torch.randint(1, COPY_SYMBOLS + 1, (n, K), generator=generator)
    x = torch.full((n, total), COPY_BLANK, dtype=torch.int64)
    y = torch.full((n, total), COPY_BLANK, dtype=torch.int64)
    x[:, :K] = symbols
    x[:, length + K - 1] = COPY_DELIMITER
    y[:, -K:] = symbols
    return x, y


def copy_baseline_ce(length: int) -> float:
    """The memoryless cross-entropy per step, 10 ln 8 / (T + 20)."""
    return COPY_LENGTH * math.log(COPY_SYMBOLS) / (length + 2 * COPY_LENGTH)
