"""The seeded, stratified held-out split of labelled examples (a validation set carved from
the training examples)."""

from __future__ import annotations

import random

from rnnkit.classify.labelled import Examples


def split_examples(examples: Examples, fraction: float, seed: int = 0) -> tuple[Examples, Examples]:
    """(rest, held_out): a seeded random split holding out round(fraction * n) examples.

    At least 1 and at most n - 1 are held out. With labels the split is stratified: each label
    gives about `fraction` of its examples. Both parts keep the original order.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n = len(examples)
    if n < 2:
        raise ValueError(
            f"{examples.source} has {n} example(s); a split needs at least 2, give more examples"
        )
    k = min(max(round(fraction * n), 1), n - 1)
    rng = random.Random(seed)
    if examples.labels is None:
        held = set(rng.sample(range(n), k))
    else:
        held = _stratified_sample(examples.labels, k, rng)
    rest_idx = [i for i in range(n) if i not in held]
    held_idx = sorted(held)
    return (
        _subset(examples, rest_idx, f"{examples.source} (rest)"),
        _subset(examples, held_idx, f"{examples.source} (held-out {fraction * 100:g}%)"),
    )


def _stratified_sample(labels: list[str], k: int, rng: random.Random) -> set[int]:
    """k indices, each label giving its share of k (largest remainders settle the rounding)."""
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    n, names = len(labels), sorted(groups)
    counts = {name: k * len(groups[name]) // n for name in names}
    by_remainder = sorted(names, key=lambda name: (-(k * len(groups[name]) % n), name))
    for name in by_remainder[: k - sum(counts.values())]:
        counts[name] += 1
    held: set[int] = set()
    for name in names:
        held.update(rng.sample(groups[name], counts[name]))
    return held


def _subset(examples: Examples, indices: list[int], source: str) -> Examples:
    texts = [examples.texts[i] for i in indices]
    labels = None if examples.labels is None else [examples.labels[i] for i in indices]
    return Examples(texts, labels, source)
