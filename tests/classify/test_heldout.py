"""Tests for rnnkit.classify.heldout: the seeded, stratified held-out split."""

from collections import Counter

import pytest

from rnnkit.classify.heldout import split_examples
from rnnkit.classify.labelled import Examples


def labelled(n_pos: int, n_neg: int) -> Examples:
    labels = ["pos"] * n_pos + ["neg"] * n_neg
    labels = labels[::2] + labels[1::2]  # interleave a little so order matters
    return Examples([f"t{i}" for i in range(len(labels))], labels, "mem")


def test_split_sizes_and_partition():
    ex = labelled(60, 40)
    rest, held = split_examples(ex, 0.2, seed=3)
    assert (len(rest), len(held)) == (80, 20)
    assert sorted(rest.texts + held.texts) == sorted(ex.texts)
    assert held.source == "mem (held-out 20%)"
    assert rest.source == "mem (rest)"
    for part in (rest, held):  # order follows the original, texts keep their labels
        idx = [int(t[1:]) for t in part.texts]
        assert idx == sorted(idx)
        assert part.labels == [ex.labels[i] for i in idx]


def test_split_is_stratified():
    ex = labelled(90, 10)
    for seed in range(20):  # a plain random draw would miss 27/3 for some of these seeds
        _, held = split_examples(ex, 0.3, seed=seed)
        assert Counter(held.labels) == {"pos": 27, "neg": 3}


def test_split_stratified_rounding_sums_to_the_target():
    ex = Examples([str(i) for i in range(10)], list("aaabbbcccc"), "mem")
    for seed in range(20):
        _, held = split_examples(ex, 0.5, seed=seed)
        assert Counter(held.labels) == {"c": 2, "a": 2, "b": 1}  # largest remainder, ties by name


def test_split_is_deterministic_for_a_seed():
    ex = labelled(50, 50)
    assert split_examples(ex, 0.25, seed=7) == split_examples(ex, 0.25, seed=7)
    assert split_examples(ex, 0.25, seed=7)[1].texts != split_examples(ex, 0.25, seed=8)[1].texts


def test_split_without_labels():
    ex = Examples([f"t{i}" for i in range(10)], None, "mem")
    rest, held = split_examples(ex, 0.3)
    assert (len(rest), len(held)) == (7, 3)
    assert rest.labels is None and held.labels is None
    assert set(rest.texts).isdisjoint(held.texts)


@pytest.mark.parametrize(("fraction", "n_held"), [(0.01, 1), (0.99, 2)])
def test_split_holds_out_at_least_one_and_keeps_one(fraction, n_held):
    ex = labelled(2, 1)
    rest, held = split_examples(ex, fraction)
    assert (len(rest), len(held)) == (3 - n_held, n_held)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan"), True, "0.1"])
def test_split_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction must be"):
        split_examples(labelled(5, 5), fraction)


def test_split_needs_two_examples():
    with pytest.raises(ValueError, match="mem has 1 example"):
        split_examples(Examples(["a"], ["x"], "mem"), 0.5)
