"""CTC decoding: from per-frame log-probabilities over the symbols and the blank to a label
sequence, by the best path (greedy) or by prefix beam search.

    T: frames, C: classes (blank = 0, symbol k = class k)

A CTC path pi (one class per frame) reads as a labelling by B(pi): merge repeats, then drop
blanks ("aa-ab-" -> "aab"). Greedy decoding returns B(argmax_t): the labelling of the single
best path. Prefix beam search (Hannun et al. 2014) instead ranks labellings l by
p(l) = sum over pi in B^-1(l) of prod_t y[t, pi_t], keeping the `beam` best prefixes each frame,
each with p_b (its paths ending in a blank) and p_nb (ending in its last symbol), in log space.
"""

from __future__ import annotations

import math

from torch import Tensor

BLANK = 0


def greedy(log_probs: Tensor, blank: int = BLANK) -> list[int]:
    """B(argmax path) of log_probs (T, C): repeats merged, then blanks dropped."""
    _check(log_probs)
    best = log_probs.argmax(-1).tolist()  # (T,)
    return collapse(best, blank)


def collapse(path: list[int], blank: int = BLANK, previous: int | None = None) -> list[int]:
    """B(path); `previous`: the class of the frame before the path (to continue a stream)."""
    out = []
    for k in path:
        if k != previous and k != blank:
            out.append(k)
        previous = k
    return out


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def _add(beams: dict, prefix: tuple, pb: float = -math.inf, pnb: float = -math.inf) -> None:
    """beams[prefix] += (p_b, p_nb), in log space."""
    cur = beams.setdefault(prefix, [-math.inf, -math.inf])
    cur[0], cur[1] = _logaddexp(cur[0], pb), _logaddexp(cur[1], pnb)


def beam_search(log_probs: Tensor, beam: int = 8, blank: int = BLANK) -> list[int]:
    """The likeliest labelling of log_probs (T, C) found by CTC prefix beam search."""
    _check(log_probs)
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam must be a positive int, got {beam!r}")
    NEG = -math.inf
    beams: dict[tuple, tuple[float, float]] = {(): (0.0, NEG)}  # prefix -> (log p_b, log p_nb)
    for row in log_probs.double().tolist():  # row: (C,)
        new: dict[tuple, list[float]] = {}
        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            _add(new, prefix, pb=total + row[blank])  # a blank keeps the prefix
            for k, lp in enumerate(row):
                if k == blank:
                    continue
                if prefix and prefix[-1] == k:
                    _add(new, prefix, pnb=pnb + lp)  # the repeat merges into the last symbol
                    _add(new, prefix + (k,), pnb=pb + lp)  # after a blank it is a new symbol
                else:
                    _add(new, prefix + (k,), pnb=total + lp)
        ranked = sorted(new.items(), key=lambda kv: _logaddexp(*kv[1]), reverse=True)
        beams = {prefix: tuple(p) for prefix, p in ranked[:beam]}
    best = max(beams.items(), key=lambda kv: _logaddexp(*kv[1]))
    return list(best[0])


def _check(log_probs: Tensor) -> None:
    if not isinstance(log_probs, Tensor) or log_probs.dim() != 2:
        got = tuple(log_probs.shape) if isinstance(log_probs, Tensor) else type(log_probs)
        raise ValueError(f"expected log-probabilities of shape (T, C), got {got}")
