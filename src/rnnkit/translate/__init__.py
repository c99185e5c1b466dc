"""Machine translation as a task: parallel text, the attentional Seq2Seq training run behind
`rnnkit translate`, greedy and beam decoding, BLEU and chrF, and a trained translator loaded back.

A run's checkpoints carry everything needed to use them: the config {"task": "translate",
"model": Seq2SeqConfig, "data": TranslateData + counts, "train": TrainConfig} and, as the
checkpoint's vocabulary, {"source": Codec, "target": Codec} (word vocabularies, or the
sentencepiece models themselves), so `load` needs nothing else.
"""

from rnnkit.translate.decode import Hypothesis, beam_search, greedy
from rnnkit.translate.evaluate import corpus_scores
from rnnkit.translate.pairs import Pairs, read_pairs
from rnnkit.translate.run import TASK, Data, Run, TranslateData, load_data, plan, train
from rnnkit.translate.text import Codec
from rnnkit.translate.trained import Translator, load

__all__ = [
    "TASK",
    "Codec",
    "Data",
    "Hypothesis",
    "Pairs",
    "Run",
    "TranslateData",
    "Translator",
    "beam_search",
    "corpus_scores",
    "greedy",
    "load",
    "load_data",
    "plan",
    "read_pairs",
    "train",
]
