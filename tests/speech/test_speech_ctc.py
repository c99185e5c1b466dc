"""CTC decoding and the error rates: greedy collapsing, prefix beam search against greedy and
against brute force, edit distances."""

import itertools
import math

import pytest
import torch

from rnnkit.speech import ctc
from rnnkit.speech.metrics import edit_distance, error_rates


def one_hot_log_probs(path: list[int], C: int = 4) -> torch.Tensor:
    p = torch.full((len(path), C), 0.01)
    p[torch.arange(len(path)), torch.tensor(path)] = 1.0
    return (p / p.sum(1, keepdim=True)).log()


def test_greedy_merges_repeats_then_drops_blanks():
    assert ctc.greedy(one_hot_log_probs([0, 1, 1, 0, 1, 2, 2, 0, 0, 3])) == [1, 1, 2, 3]
    assert ctc.greedy(one_hot_log_probs([0, 0, 0])) == []
    assert ctc.greedy(one_hot_log_probs([2, 2, 2])) == [2]
    assert ctc.collapse([1, 1, 0, 2], previous=1) == [2]  # a stream continuing a 1


def test_beam_one_equals_greedy_on_peaked_outputs():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        logits = torch.randn(15, 5, generator=g) * 4  # peaked: one class dominates each frame
        log_probs = logits.log_softmax(-1)
        if (log_probs.exp().max(-1).values < 0.5).any():
            continue  # beam 1 ranks prefixes by their total probability, not one path
        assert ctc.beam_search(log_probs, beam=1) == ctc.greedy(log_probs)


def test_beam_finds_the_likeliest_labelling_where_the_best_path_misleads():
    # two frames, P(blank) = 0.6, P(a) = 0.4 each: the best path is "--" (0.36) -> "", but
    # p("a") = P(aa) + P(a-) + P(-a) = 0.16 + 0.24 + 0.24 = 0.64
    log_probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()
    assert ctc.greedy(log_probs) == []
    assert ctc.beam_search(log_probs, beam=4) == [1]


def brute_force_best(log_probs: torch.Tensor) -> tuple[list[int], float]:
    T, C = log_probs.shape
    totals: dict[tuple, float] = {}
    for path in itertools.product(range(C), repeat=T):
        label = tuple(ctc.collapse(list(path)))
        p = math.exp(sum(float(log_probs[t, k]) for t, k in enumerate(path)))
        totals[label] = totals.get(label, 0.0) + p
    best = max(totals, key=totals.get)
    return list(best), totals[best]


def test_wide_beam_agrees_with_brute_force():
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        log_probs = torch.randn(5, 3, generator=g).log_softmax(-1)
        best, _ = brute_force_best(log_probs)
        assert ctc.beam_search(log_probs, beam=50) == best


def test_decoders_reject_bad_input():
    with pytest.raises(ValueError, match=r"shape \(T, C\)"):
        ctc.greedy(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="beam must be a positive int"):
        ctc.beam_search(torch.zeros(2, 3), beam=0)


def test_edit_distance_and_error_rates():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], [1, 2]) == 2
    r = error_rates(["1 2 3", "4 5"], ["1 3", "4 5 6"])
    assert r["wer"] == pytest.approx(2 / 5)  # one deletion, one insertion over 5 digits
    assert r["cer"] == pytest.approx((2 + 2) / (5 + 3))
    assert r["sentence_error"] == 1.0 and r["utterances"] == 2
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        error_rates(["a", "b"], ["a"])
