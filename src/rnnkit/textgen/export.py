"""`rnnkit textgen export`: a trained character model as a step model (`Step`: one character
and the recurrent state in, the next character's logits and the new state out), with its sidecar
(the vocabulary, the state's names and shapes) and a held-back text run step by step through
the export and through rnnkit, each carrying its own state, for the parity check.

    B: batch (streams), L: layers, H: hidden size, P: an LSTM's proj_size (h's size; H
    without a projection), V: vocabulary size (<unk> included)
"""

from __future__ import annotations

import argparse

import torch
from torch import Tensor, nn

from rnnkit import textgen
from rnnkit.export.task import Export, Runner, check_cells, compare_outputs, tensor
from rnnkit.textgen.data import builtin_corpus, read_text, split_text

STREAMS = 4  # the batch of the second held-back pass (the first is one stream, batch 1)


class Step(nn.Module):
    """char (B,) int64 and the state h (L, B, P) (and an LSTM's c (L, B, H)) -> logits (B, V)
    and the new h (and c): the CharLM's layer run over a sequence of one step from the state."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, char: Tensor, h: Tensor, c: Tensor | None = None):
        e = self.lm.embedding(char).unsqueeze(1)  # (B, 1, E)
        y, state = self.lm.rnn(e, h if c is None else (h, c))  # (B, 1, H)
        logits = self.lm.head(y[:, 0])  # (B, V)
        return (logits, *state) if isinstance(state, tuple) else (logits, state)


def build(args: argparse.Namespace) -> tuple[Export, dict]:
    """The model in args.dir as a step Export, checked on args.limit held-back characters."""
    model, vocab, info = textgen.load(args.dir)
    c = model.config
    check_cells(c.cell)
    text, source = held_back(args, info)
    ids = vocab.encode(text[: args.limit])  # (N,)
    if len(ids) < STREAMS:
        raise ValueError(f"the held-back text has {len(ids)} characters; give a longer --data")
    names = ["h", "c"] if c.cell == "lstm" else ["h"]
    batch = torch.export.Dim("batch", min=1)
    zeros = [torch.zeros(c.layers, 2, state_size(c, n)) for n in names]
    streams = [ids[None], ids[: len(ids) // STREAMS * STREAMS].view(STREAMS, -1)]  # (B, steps)
    export = Export(
        module=Step(model).eval(),
        example=(ids[:2], *zeros),
        dynamic_shapes=({0: batch}, *({1: batch} for _ in names)),
        input_names=["char", *names],
        output_names=["logits", *(f"{n}_next" for n in names)],
        sidecar=sidecar(model, vocab, names),
        held_back=[(s,) for s in streams],  # each (B, steps): one character a step
        what=f"{len(ids)} characters ({source}) read one at a time",
        compare=lambda exported, eager: _stepwise(
            streams, [z[:, :1] for z in zeros], exported, eager
        ),
    )
    return export, info


def _stepwise(streams: list[Tensor], zeros: list[Tensor], exported: Runner, eager: Runner):
    """(max |export - eager|, max |eager|) over every step's logits and state, each side
    carrying its own state from zeros (`zeros`: one (L, 1, H) per state tensor), so that
    differences may grow as they would in use."""
    diff = scale = 0.0
    for chars in streams:  # (B, steps)
        mine = theirs = [z.expand(-1, chars.shape[0], -1).contiguous() for z in zeros]
        for t in range(chars.shape[1]):
            got, want = exported(chars[:, t], *mine), eager(chars[:, t], *theirs)
            d, s = compare_outputs(got, want)
            diff, scale = max(diff, d), max(scale, s)
            mine = [torch.from_numpy(a) for a in got[1:]]
            theirs = [torch.from_numpy(a) for a in want[1:]]
    return diff, scale


def state_size(c, name: str) -> int:
    """The last dimension of state `name`: h is proj_size wide with a projection, c hidden."""
    return (c.proj_size or c.hidden) if name == "h" else c.hidden


def held_back(args: argparse.Namespace, info: dict) -> tuple[str, str]:
    """(text, where from): --data, else the validation tail of the run's text."""
    if args.data:
        return read_text(args.data, args.encoding or "utf-8"), args.data
    data = info["config"].get("data", {})
    path, fraction = data.get("path"), data.get("val_fraction") or 0.1
    try:
        text = builtin_corpus() if path is None else read_text(path, data.get("encoding", "utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"the run's text, {path}, is not there; give a text with --data FILE"
        ) from None
    return split_text(text, fraction)[1], f"the last {fraction:.0%} of the run's text"


def sidecar(model: nn.Module, vocab, names: list[str]) -> dict:
    """What a user needs to feed characters in and read the next one out."""
    c = model.config
    shapes = {n: [c.layers, "batch", state_size(c, n)] for n in names}
    about = {"h": "the hidden state of every layer", "c": "the LSTM's cell state of every layer"}
    return {
        "task": "textgen",
        "inputs": [
            tensor("char", ["batch"], "int64", "the id of each row's current character"),
            *(tensor(n, shapes[n], "float32", f"{about[n]}: zeros to start") for n in names),
        ],
        "outputs": [
            tensor(
                "logits",
                ["batch", len(vocab)],
                "float32",
                "the next character's logits: softmax(logits / temperature) to sample",
            ),
            *(
                tensor(f"{n}_next", shapes[n], "float32", f"{n} after this character: feed it back")
                for n in names
            ),
        ],
        "vocabulary": list(vocab.chars),
        "unk_id": vocab.unk_id,
        "unknown": "a character outside vocabulary reads as unk_id; the model may predict "
        "unk_id too (skip it, or resample)",
        "cell": c.cell,
        "layers": c.layers,
        "hidden": c.hidden,
        "proj_size": c.proj_size,
        "state": names,
    }
