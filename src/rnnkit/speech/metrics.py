"""Recognition error rates: the Levenshtein distance between reference and hypothesis,
over characters (CER) and over whitespace-separated words (WER; for digit strings written
"3 1 4", the digit error rate).

    error rate = (substitutions + deletions + insertions) / reference length, summed over the set
"""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """The fewest substitutions, deletions and insertions turning `reference` into `hypothesis`."""
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        current = [i]
        for j, h in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def error_rates(references: list[str], hypotheses: list[str]) -> dict:
    """{"cer", "wer", "sentence_error", "chars", "words", "utterances"} over the whole set."""
    if len(references) != len(hypotheses):
        raise ValueError(
            f"{len(references)} references but {len(hypotheses)} hypotheses: one each expected"
        )
    char_errors = word_errors = chars = words = wrong = 0
    for ref, hyp in zip(references, hypotheses):
        char_errors += edit_distance(ref, hyp)
        word_errors += edit_distance(ref.split(), hyp.split())
        chars, words, wrong = chars + len(ref), words + len(ref.split()), wrong + (ref != hyp)
    n = len(references)
    return {
        "cer": char_errors / max(chars, 1),
        "wer": word_errors / max(words, 1),
        "sentence_error": wrong / max(n, 1),
        "chars": chars,
        "words": words,
        "utterances": n,
    }
