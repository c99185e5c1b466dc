"""SequenceClassifier: token sequences of any length to class logits (embedding, a recurrent
stack run with `lengths=`, pooling over the valid steps, a linear head).

    B: batch, T: time (the longest sequence of the batch), V: vocabulary size, E: embedding
    size, H: hidden size, D: directions (1 or 2), L: layers, C: classes
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from rnnkit.layers import LAYERS
from rnnkit.regularisers import Dropout
from rnnkit.train.options import fraction, option, positive_int
from rnnkit.train.regularise import RegulariserOptions

POOLINGS = ("last", "mean", "max")


@dataclass
class ClassifierConfig(RegulariserOptions):
    """Everything needed to rebuild a SequenceClassifier; JSON-able via to_dict / from_dict."""

    vocab_size: int  # tokens, <pad> (id 0) and <unk> included: len(Vocab)
    num_classes: int  # C >= 2
    cell: str = option("lstm", "the recurrent cell", choices=tuple(LAYERS))  # rnn: tanh
    embed: int = option(  # E
        128, "embedding size (default with --vectors: theirs)", type=positive_int, metavar="N"
    )
    hidden: int = option(  # H, per direction
        256, "hidden size of each layer and direction", type=positive_int, metavar="N"
    )
    layers: int = option(1, "stacked layers", type=positive_int, metavar="N")  # L
    bidirectional: bool = option(  # D = 2: a forward and a backward pass over each sequence
        False, "read each text in both directions", action="store_true"
    )
    pooling: str = option(  # how the valid steps of the top layer become one vector
        "max",
        "how the steps of a text become one vector: the final states, or the mean or max over "
        "its steps",
        choices=POOLINGS,
    )
    dropout: float = option(  # on the embedding, between layers and before the head
        0.3, "", type=fraction, metavar="P"
    )
    pad_id: int = 0  # the id of <pad>: its embedding row stays zero

    def __post_init__(self):
        if self.cell not in LAYERS:
            raise ValueError(f"cell must be one of {tuple(LAYERS)}, got {self.cell!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        for key in ("vocab_size", "embed", "hidden", "layers"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        c = self.num_classes
        if isinstance(c, bool) or not isinstance(c, int) or c < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {c!r}")
        if isinstance(self.dropout, bool) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a float in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bidirectional, bool):
            raise TypeError(f"bidirectional must be a bool, got {self.bidirectional!r}")
        self.check_regularisers(self.cell)
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(
                f"pad_id must be a token id below {self.vocab_size}, got {self.pad_id}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClassifierConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown classifier config keys: {sorted(unknown)}")
        return cls(**data)


class SequenceClassifier(nn.Module):
    """Class logits for each sequence of a padded batch.

        e_t = Embedding(x_t)                                         (B, T, E)
        h_t = RNN/LSTM/GRU stack(dropout(e_t), lengths)              (B, T, D*H)
        v   = pool(h_t over t < length): last | mean | max           (B, D*H)
        logits = W_hy dropout(v) + b_y                                (B, C)

    "last" is each direction's final state: the forward one at the sequence's own last step,
    the backward one at its first. Padding never reaches a result: the layer stops each
    sequence at its length, and mean/max pool over the valid steps only.

    Call contract: `output, loss = model(inputs, targets)`: inputs = (ids (B, T) int64,
    lengths (B,) int64), targets the class ids (B,) or None; output the logits (B, C), loss the
    mean cross-entropy (None without targets).
    """

    def __init__(self, vocab_size: int, num_classes: int, **options):
        super().__init__()
        self.config = c = ClassifierConfig(vocab_size, num_classes, **options)
        self.embedding = nn.Embedding(c.vocab_size, c.embed, padding_idx=c.pad_id)
        self.rnn = LAYERS[c.cell](
            c.embed,
            c.hidden,
            c.layers,
            batch_first=True,
            dropout=c.dropout if c.layers > 1 else 0.0,
            bidirectional=c.bidirectional,
            **c.layer_kwargs(),
        )
        self.drop = Dropout(c.dropout)
        self.head = nn.Linear(c.hidden * (2 if c.bidirectional else 1), c.num_classes)

    @classmethod
    def from_config(cls, config: ClassifierConfig | dict) -> SequenceClassifier:
        if isinstance(config, dict):
            config = ClassifierConfig.from_dict(config)
        return cls(**config.to_dict())

    def forward(self, inputs: tuple[Tensor, Tensor], targets: Tensor | None = None):
        """(logits (B, C), mean cross-entropy or None)."""
        ids, lengths = self._check_inputs(inputs)
        e = self.drop(self.embedding(ids))  # (B, T, E)
        h, state = self.rnn(e, lengths=lengths)  # (B, T, D*H); padded steps are zeros
        logits = self.head(self.drop(self._pool(h, state, lengths)))  # (B, C)
        if targets is None:
            return logits, None
        if not isinstance(targets, Tensor) or targets.shape != lengths.shape:
            got = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
            raise ValueError(f"targets must be class ids of shape ({len(lengths)},), got {got}")
        return logits, nn.functional.cross_entropy(logits, targets)

    def _pool(self, h: Tensor, state, lengths: Tensor) -> Tensor:
        pooling = self.config.pooling
        if pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
            D = 2 if self.config.bidirectional else 1
            return torch.cat(list(h_n[-D:]), dim=-1)  # (B, D*H): the top layer's directions
        if pooling == "mean":
            return h.sum(1) / lengths.to(h.dtype).unsqueeze(1)  # (B, D*H)
        steps = torch.arange(h.shape[1], device=h.device)  # (T,)
        padded = steps.unsqueeze(0) >= lengths.unsqueeze(1)  # (B, T)
        return h.masked_fill(padded.unsqueeze(2), float("-inf")).amax(1)  # (B, D*H)

    def _check_inputs(self, inputs) -> tuple[Tensor, Tensor]:
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            raise TypeError(
                "inputs must be (ids (B, T) int64, lengths (B,) int64), "
                f"got {type(inputs).__name__}"
            )
        ids, lengths = inputs
        if not isinstance(ids, Tensor) or ids.dtype != torch.int64 or ids.dim() != 2:
            got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, Tensor) else type(ids)
            raise ValueError(f"ids must be int64 token ids of shape (B, T), got {got}")
        lengths = torch.as_tensor(lengths, device=ids.device)
        return ids, lengths
