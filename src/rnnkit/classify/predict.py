"""Running a classifier over encoded sequences: class probabilities in the input order, and the
evaluation report (loss and the metrics of `metrics.report`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.data.buckets import Sequences, sorted_batches
from rnnkit.data.metrics import confusion_matrix, report

EVAL_BATCH = 256  # sequences per forward pass when predicting (longest first, little padding)


@torch.no_grad()
def predict_proba(model: nn.Module, data: Sequences, batch_size: int = EVAL_BATCH) -> Tensor:
    """(N, C) class probabilities for every sequence of `data`, in its order; model in eval mode
    for the pass (a DDP wrapper is looked through)."""
    model = getattr(model, "module", model)
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        probs = None
        for index, ((ids, lengths), _, _) in sorted_batches(data, batch_size):
            logits, _ = model((ids.to(device), lengths.to(device)))  # (B, C)
            if probs is None:
                probs = torch.empty(len(data), logits.shape[1])
            probs[index] = logits.float().softmax(-1).cpu()
    finally:
        model.train(was_training)
    return probs


def evaluate(
    model: nn.Module, data: Sequences, classes: list[str], batch_size: int = EVAL_BATCH
) -> dict:
    """`metrics.report` of the model on labelled `data`, plus "loss" (mean cross-entropy) and
    "error" (1 - accuracy, what the training loop minimises)."""
    if data.labels is None:
        raise ValueError("evaluation needs labels")
    probs = predict_proba(model, data, batch_size)  # (N, C)
    picked = probs.gather(1, data.labels.unsqueeze(1)).squeeze(1)  # (N,)
    loss = float(-picked.double().clamp(min=1e-45).log().mean())
    result = report(confusion_matrix(data.labels, probs.argmax(1), len(classes)), classes)
    return {"loss": loss, "error": 1.0 - result["accuracy"], **result}
