"""Sequence classification (sentiment analysis and the like) as a task: the data, model and
training run behind `rnnkit classify`, and a trained classifier loaded back to predict and
evaluate.

A run's checkpoints carry everything needed to use them: the config {"task": "classify",
"model": ClassifierConfig, "data": ClassifyData + counts, "classes", "train": TrainConfig} and,
as the checkpoint's vocabulary, {"encoder": TextEncoder (tokenizer, vocabulary, max_tokens),
"classes": [...]}, so `load` needs nothing else.
"""

from rnnkit.classify.run import TASK, ClassifyData, Data, Run, load_data, plan, train
from rnnkit.classify.text import TextEncoder, class_ids
from rnnkit.classify.trained import Classifier, load
from rnnkit.data.metrics import confusion_matrix, report

__all__ = [
    "TASK",
    "Classifier",
    "ClassifyData",
    "Data",
    "Run",
    "TextEncoder",
    "class_ids",
    "confusion_matrix",
    "load",
    "load_data",
    "plan",
    "report",
    "train",
]
