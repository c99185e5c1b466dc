"""Tests for data/metrics.py against counts worked out by hand."""

import pytest
import torch

from rnnkit.data.metrics import confusion_matrix, report


def test_confusion_and_report_by_hand():
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    p = torch.tensor([0, 1, 0, 1, 0, 1])
    m = confusion_matrix(y, p, 3)
    assert m.tolist() == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    r = report(m, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(3 / 6)
    a, b, c = (r["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (b["precision"], b["recall"]) == (pytest.approx(1 / 3), pytest.approx(1 / 2))
    assert c == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}  # never predicted
    f1_b = 2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2)
    assert r["macro_f1"] == pytest.approx((2 / 3 + f1_b + 0) / 3)
    assert r["examples"] == 6 and r["confusion"] == m.tolist()


def test_bad_ids():
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        confusion_matrix(torch.tensor([0, 2]), torch.tensor([0, 1]), 2)
    with pytest.raises(ValueError, match="one shape"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 2)
