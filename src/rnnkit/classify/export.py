"""`rnnkit classify export`: a trained classifier as token ids and lengths in, class
probabilities out (`Probabilities`), with its sidecar (the tokenizer as regular expressions,
the vocabulary, the truncation, the labels) and its held-back texts for the parity check.

    B: batch, T: the batch's longest text in tokens, C: classes
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit import classify
from rnnkit.classify.heldout import split_examples
from rnnkit.classify.labelled import read_labelled
from rnnkit.export.task import Export, batches, check_cells, tensor

BATCH = 64  # texts per held-back batch


class Probabilities(nn.Module):
    """softmax(SequenceClassifier(ids, lengths)): ids (B, T) int64, each row padded with pad_id
    past its length, and lengths (B,) int64 -> class probabilities (B, C)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        logits, _ = self.model((ids, lengths))  # (B, C)
        return logits.softmax(-1)


def build(args: argparse.Namespace) -> tuple[Export, dict]:
    """The classifier in args.dir as an Export, checked on args.limit held-back texts."""
    classifier = classify.load(args.dir)
    check_cells(classifier.model.config.cell)
    texts, source = held_back(args, classifier)
    texts = texts[: args.limit]
    encoder, pad_id = classifier.encoder, classifier.model.config.pad_id
    items = [torch.tensor(encoder.ids(t), dtype=torch.int64) for t in texts]

    def pad(chunk: list[Tensor], min_time: int = 1) -> tuple[Tensor, Tensor]:
        lengths = torch.tensor([len(x) for x in chunk], dtype=torch.int64)  # (B,)
        ids = torch.full((len(chunk), max(min_time, int(lengths.max()))), pad_id)  # (B, T)
        for b, x in enumerate(chunk):
            ids[b, : len(x)] = x
        return ids, lengths

    batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=1)
    export = Export(
        module=Probabilities(classifier.model).eval(),
        example=pad((items * 2)[:2], min_time=2),  # batch 2, at least 2 steps: both dynamic
        dynamic_shapes=({0: batch, 1: time}, {0: batch}),
        input_names=["ids", "lengths"],
        output_names=["probabilities"],
        sidecar=sidecar(classifier),
        held_back=batches(items, BATCH, pad),
        what=f"{len(texts)} texts ({source})",
    )
    return export, classifier.info


def held_back(args: argparse.Namespace, classifier: classify.Classifier) -> tuple[list, str]:
    """(texts, where from): --data, else the run's test texts, else its validation texts (a
    file, or the seeded share of the training texts it held out)."""
    run = classifier.data_config
    if args.data:
        return _texts(args.data, run, args), args.data
    for key, name in (("test", "test split"), ("valid", "validation split")):
        if run.get(key):
            return _texts(run[key], run, args, name), name
    if run.get("train") and run.get("valid_fraction"):
        seed = classifier.info["config"].get("train", {}).get("seed", 0)
        train = read_labelled(run["train"], **_reading(run, args), labels=True)
        _, valid = split_examples(train, run["valid_fraction"], seed)
        return valid.texts, "validation split"
    raise ValueError("the run has no test or validation texts; give held-back texts: --data FILE")


def _texts(path: str, run: dict, args, name: str | None = None) -> list[str]:
    if name is not None and not Path(path).exists():
        raise ValueError(f"the run's {name}, {path}, is not there; give texts with --data FILE")
    return read_labelled(path, **_reading(run, args), labels=False).texts


def _reading(run: dict, args: argparse.Namespace) -> dict:
    return {
        "text_column": args.text_column or run.get("text_column", "text"),
        "label_column": run.get("label_column", "label"),
        "encoding": args.encoding or run.get("encoding", "utf-8"),
        "on_missing": "skip",
    }


def sidecar(classifier: classify.Classifier) -> dict:
    """What a user needs to turn texts into the model's inputs and its output into labels."""
    encoder, classes = classifier.encoder, classifier.classes
    return {
        "task": "classify",
        "inputs": [
            tensor(
                "ids",
                ["batch", "time"],
                "int64",
                "token ids (vocabulary index); each row padded with pad_id past its length",
            ),
            tensor("lengths", ["batch"], "int64", "the tokens of each row, 1 to time"),
        ],
        "outputs": [
            tensor(
                "probabilities",
                ["batch", len(classes)],
                "float32",
                "class probabilities (the softmax of the logits): column k is labels[k]",
            ),
        ],
        "labels": list(classes),
        "tokenizer": encoder.tokenizer.recipe(),
        "vocabulary": encoder.vocab.tokens,
        "pad_id": encoder.vocab.pad_id,
        "unk_id": encoder.vocab.unk_id,
        "max_tokens": encoder.max_tokens,
        "truncate": encoder.truncate,
        "truncation": "a text of more than max_tokens tokens keeps, for head, its first "
        "max_tokens; for tail, its last max_tokens; for head+tail, its first max_tokens // 4 "
        "and its last max_tokens - max_tokens // 4. A token outside the vocabulary reads as "
        "unk_id; a text with no token reads as [unk_id].",
    }
