"""Classification metrics from the confusion matrix: accuracy, per-class precision, recall and
F1, and their macro average.

    confusion[i, j]: examples of true class i predicted as class j (C x C)
    precision_j = confusion[j, j] / sum_i confusion[i, j]     (0 when class j is never predicted)
    recall_i    = confusion[i, i] / sum_j confusion[i, j]     (0 when class i never occurs)
    F1 = 2 P R / (P + R)  (0 when P + R = 0),  macro-F1 = the mean of F1 over the C classes
"""

from __future__ import annotations

import torch
from torch import Tensor


def confusion_matrix(targets: Tensor, predictions: Tensor, num_classes: int) -> Tensor:
    """(C, C) int64 counts, rows the true class, columns the predicted one."""
    if targets.shape != predictions.shape or targets.dim() != 1:
        raise ValueError(
            f"targets and predictions must be 1-D of one shape, got {tuple(targets.shape)} "
            f"and {tuple(predictions.shape)}"
        )
    for name, ids in (("targets", targets), ("predictions", predictions)):
        if len(ids) and not (0 <= int(ids.min()) and int(ids.max()) < num_classes):
            raise ValueError(f"{name} must be class ids in [0, {num_classes}), got {ids.tolist()}")
    flat = targets.long().cpu() * num_classes + predictions.long().cpu()
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def report(confusion: Tensor, labels: list[str]) -> dict:
    """{"accuracy", "macro_f1", "per_class": {label: {precision, recall, f1, support}},
    "confusion": rows as lists, "labels", "examples"}; fractions, not percentages."""
    c = confusion.double()
    correct = c.diagonal()  # (C,)
    predicted, actual = c.sum(0), c.sum(1)  # (C,) columns and rows
    precision = torch.where(predicted > 0, correct / predicted.clamp(min=1), 0.0)
    recall = torch.where(actual > 0, correct / actual.clamp(min=1), 0.0)
    both = precision + recall
    f1 = torch.where(both > 0, 2 * precision * recall / both.clamp(min=1e-300), 0.0)
    total = int(confusion.sum())
    return {
        "accuracy": float(correct.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()),
        "examples": total,
        "labels": list(labels),
        "per_class": {
            label: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(actual[k]),
            }
            for k, label in enumerate(labels)
        },
        "confusion": confusion.tolist(),
    }
