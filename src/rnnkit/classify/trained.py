"""A trained classifier read back from its checkpoint: loading it, predicting labels and
probabilities for texts, and evaluating it on labelled examples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.classify.labelled import Examples
from rnnkit.classify.model import SequenceClassifier
from rnnkit.classify.predict import evaluate, predict_proba
from rnnkit.classify.run import TASK
from rnnkit.classify.text import TextEncoder, class_ids
from rnnkit.train import rundir


@dataclass
class Classifier:
    """A trained model with what it needs to read text: its encoder and class names."""

    model: SequenceClassifier  # in eval mode
    encoder: TextEncoder
    classes: list[str]
    info: dict  # {"path", "step", "config", "metrics"}

    @property
    def data_config(self) -> dict:
        """The run's data settings (text_column, label_column, encoding, ...)."""
        return self.info["config"].get("data", {})

    def predict_proba(self, texts: list[str]) -> Tensor:
        """(N, C) class probabilities, in the order of `texts`."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        if not texts:
            return torch.empty(0, len(self.classes))
        return predict_proba(self.model, self.encoder.encode(texts))

    def predict(self, texts: list[str]) -> list[str]:
        """The likeliest class name of each text."""
        return [self.classes[k] for k in self.predict_proba(texts).argmax(1).tolist()]

    def evaluate(self, examples: Examples) -> dict:
        """`predict.evaluate` on labelled examples; a label the model does not know is an error."""
        if examples.labels is None:
            raise ValueError(f"{examples.source} has no labels to evaluate against")
        labels = class_ids(examples.labels, self.classes, examples.source)
        return evaluate(self.model, self.encoder.encode(examples.texts, labels), self.classes)


def load(path: str | Path, device: str | torch.device = "cpu") -> Classifier:
    """The classifier in a checkpoint or a run directory (its best/, else its last/)."""
    ckpt = rundir.load_task(path, TASK)
    with rundir.usable(ckpt, TASK):
        encoder = TextEncoder.from_dict(ckpt.vocab["encoder"])
        classes = list(ckpt.vocab["classes"])
        model = rundir.build_model(ckpt, SequenceClassifier)
    model.to(device).eval()
    info = rundir.info(ckpt)
    return Classifier(model, encoder, classes, info)
