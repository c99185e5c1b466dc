"""Acoustic models over feature frames: an isolated-word classifier (recurrent encoder and
pooling) and a CTC recogniser (recurrent encoder and per-frame class log-probabilities).

    B: batch, T: frames, F: features per frame, k: frames stacked per step (subsampling),
    T' = ceil(T / k) steps, H: hidden size, D: directions (1 or 2), C: classes
    (the classifier's words; the recogniser's symbols + the blank, class 0)
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from rnnkit.layers import LAYERS
from rnnkit.regularisers import Dropout
from rnnkit.train.options import fraction, option, positive_int

TASKS = ("classify", "ctc")
POOLINGS = ("mean", "max", "last")


@dataclass
class SpeechConfig:
    """Everything needed to rebuild a speech model; JSON-able via to_dict / from_dict."""

    task: str  # "classify": one class per utterance | "ctc": a label sequence per utterance
    input_size: int  # F
    num_classes: int  # C: classes (classify) or symbols + 1 (ctc, blank = 0)
    cell: str = option("lstm", "", choices=tuple(LAYERS))  # rnnkit.layers.LAYERS
    hidden: int = option(  # H, per direction
        128, "hidden units per direction", type=positive_int, metavar="N"
    )
    layers: int = option(2, "stacked layers", type=positive_int, metavar="N")
    bidirectional: bool = option(  # D = 2; a streaming recogniser needs False
        True,
        "a forward and a backward pass; --no-bidirectional for a model that can stream",
        action=argparse.BooleanOptionalAction,
    )
    subsample: int = option(  # k consecutive frames stacked into one step (k x fewer steps)
        2, "frames stacked into one step", type=positive_int, metavar="N"
    )
    pooling: str = option(  # how the steps become one vector
        "mean", "classify", choices=POOLINGS
    )
    dropout: float = option(  # between layers and before the head
        0.2, "", type=fraction, metavar="P"
    )

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.cell not in LAYERS:
            raise ValueError(f"cell must be one of {tuple(LAYERS)}, got {self.cell!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        for key in ("input_size", "hidden", "layers", "subsample"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            raise ValueError(f"num_classes must be an int >= 2, got {self.num_classes!r}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {self.num_classes!r}")
        if isinstance(self.dropout, bool) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a float in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bidirectional, bool):
            raise TypeError(f"bidirectional must be a bool, got {self.bidirectional!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SpeechConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown speech model config keys: {sorted(unknown)}")
        return cls(**data)


def stack_frames(x: Tensor, lengths: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Subsampling by stacking: (B, T, F) -> (B, ceil(T / k), k F), step s holding frames
    s k .. s k + k - 1; frames past each length (and the padding of the last group) are zeros,
    so a sequence's steps never depend on the rest of the batch. Lengths -> ceil(lengths / k)."""
    B, T, F = x.shape
    valid = torch.arange(T, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    S = (T + k - 1) // k  # T'
    # Always padded, by S k - T >= 0 frames (no branch, no modulo): torch.export then keeps T
    # dynamic for every T, rather than specialising the program to T's remainder mod k.
    x = nn.functional.pad(x * valid.unsqueeze(2), (0, 0, 0, S * k - T))  # (B, S k, F)
    return x.reshape(B, S, k * F), (lengths + k - 1) // k


class SpeechModel(nn.Module):
    """A recurrent encoder over stacked frames and a linear head; config.task picks the output.

        u_s = [x_{sk}; ...; x_{sk+k-1}]                                 (B, T', k F)
        h_s = RNN/LSTM/GRU stack(u_s, lengths')                         (B, T', D H)
      classify:  v = pool(h_s over s < length'); logits = W dropout(v) + b    (B, C)
                 loss = cross-entropy(logits, class ids)
      ctc:       log y_s = log_softmax(W dropout(h_s) + b)                    (B, T', C)
                 loss = CTC(log y, labels), mean over the batch of -log p(labels) / |labels|

    Call contract: `output, loss = model(inputs, targets)` with inputs = (frames (B, T, F),
    lengths (B,) int64). classify: targets the class ids (B,), output the logits (B, C).
    ctc: targets = (labels (B, S) int64 in [1, C), label_lengths (B,)), output =
    (log-probabilities (B, T', C), lengths' (B,)). loss is None without targets.
    """

    def __init__(self, task: str, input_size: int, num_classes: int, **options):
        super().__init__()
        self.config = c = SpeechConfig(task, input_size, num_classes, **options)
        self.rnn = LAYERS[c.cell](
            c.input_size * c.subsample,
            c.hidden,
            c.layers,
            batch_first=True,
            dropout=c.dropout if c.layers > 1 else 0.0,
            bidirectional=c.bidirectional,
        )
        self.drop = Dropout(c.dropout)
        self.head = nn.Linear(c.hidden * (2 if c.bidirectional else 1), c.num_classes)

    @classmethod
    def from_config(cls, config: SpeechConfig | dict) -> SpeechModel:
        if isinstance(config, dict):
            config = SpeechConfig.from_dict(config)
        return cls(**config.to_dict())

    def forward(self, inputs: tuple[Tensor, Tensor], targets=None):
        x, lengths = self._check_inputs(inputs)
        u, steps = stack_frames(x, lengths, self.config.subsample)  # (B, T', kF), (B,)
        h, state = self.rnn(u, lengths=steps)  # (B, T', D H)
        if self.config.task == "classify":
            return self._classify(h, state, steps, targets)
        log_probs = self.head(self.drop(h)).log_softmax(-1)  # (B, T', C)
        if targets is None:
            return (log_probs, steps), None
        labels, label_lengths = targets
        loss = nn.functional.ctc_loss(
            log_probs.transpose(0, 1).float(),  # (T', B, C)
            labels,
            steps,
            label_lengths,
            blank=0,
            reduction="mean",
            zero_infinity=True,  # an utterance too short for its labels adds nothing
        )
        return (log_probs, steps), loss

    def _classify(self, h: Tensor, state, steps: Tensor, targets):
        pooling = self.config.pooling
        if pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (L D, B, H)
            D = 2 if self.config.bidirectional else 1
            v = torch.cat(list(h_n[-D:]), dim=-1)  # (B, D H)
        elif pooling == "mean":
            v = h.sum(1) / steps.to(h.dtype).unsqueeze(1)  # padded steps are zeros
        else:
            padded = torch.arange(h.shape[1], device=h.device).unsqueeze(0) >= steps.unsqueeze(1)
            v = h.masked_fill(padded.unsqueeze(2), float("-inf")).amax(1)  # (B, D H)
        logits = self.head(self.drop(v))  # (B, C)
        if targets is None:
            return logits, None
        return logits, nn.functional.cross_entropy(logits, targets)

    @torch.no_grad()
    def step(self, u: Tensor, state=None):
        """One step of a unidirectional CTC model on stacked frames u (B, k F), carrying the
        recurrent state: (log-probabilities (B, C), state')."""
        if self.config.task != "ctc":
            raise ValueError("step() streams a CTC model; this one classifies")
        h, state = self.rnn.step(u, state)  # (B, H)
        return self.head(h).log_softmax(-1), state

    def _check_inputs(self, inputs) -> tuple[Tensor, Tensor]:
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            raise TypeError(
                f"inputs must be (frames (B, T, F), lengths (B,)), got {type(inputs).__name__}"
            )
        x, lengths = inputs
        F = self.config.input_size
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[2] != F:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"frames must be a tensor of shape (B, T, {F}), got {got}")
        return x, torch.as_tensor(lengths, device=x.device)
