"""Character-level text generation as a task: the data, model and training run behind
`rnnkit textgen`, and a trained model loaded back from its checkpoint to evaluate and sample.

A run's checkpoints carry everything needed to use them: the config
{"task": "textgen", "model": CharLMConfig, "data": TextData + the text's size and SHA-256,
"train": TrainConfig} and the vocabulary (CharVocab.to_dict()), so `load` rebuilds the model
on the CPU without the training text.

Settings are flat `options`, named as the fields of TextData, CharLMConfig and TrainConfig.
A fresh run takes each one missing from its dataclass's default; a resumed run takes it from
the checkpoint, keeps its data and model (a different value given is an error) and lets the
training options given replace the saved ones.

`inspect_text` reads a text through a trained model and correlates its hidden units with
features of the text (inspect.py); `write_page` shows the result as one HTML page (page.py).
"""

from rnnkit.textgen.inspect import (
    FEATURES,
    Inspection,
    bracket_depth,
    correlations,
    hidden_states,
    inside_quotes,
    inspect_text,
    line_position,
    top_units,
)
from rnnkit.textgen.page import render_page, write_page
from rnnkit.textgen.run import TASK, Corpus, Run, TextData, load_corpus, plan, train
from rnnkit.textgen.trained import evaluate_text, load, sample
from rnnkit.train.rundir import find_checkpoint

__all__ = [
    "FEATURES",
    "TASK",
    "Corpus",
    "Inspection",
    "Run",
    "TextData",
    "bracket_depth",
    "correlations",
    "evaluate_text",
    "find_checkpoint",
    "hidden_states",
    "inside_quotes",
    "inspect_text",
    "line_position",
    "load",
    "load_corpus",
    "plan",
    "render_page",
    "sample",
    "top_units",
    "train",
    "write_page",
]
