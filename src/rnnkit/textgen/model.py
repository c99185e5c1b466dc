"""CharLM, a character-level language model (embedding, recurrent stack, linear head), and
its evaluation in nats and bits per character.

    B: batch, T: time, V: vocabulary size (with <unk>), E: embedding size, H: hidden size,
    P: an LSTM's proj_size (the size of h; H without a projection), L: layers
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from rnnkit.layer_checks import check_proj_size
from rnnkit.layers import LAYERS
from rnnkit.regularisers import Dropout
from rnnkit.train.options import fraction, nonnegative_int, option, positive_int
from rnnkit.train.regularise import RegulariserOptions

State = tuple[Tensor, ...]  # (h,) for GRU and RNN, (h, c) for LSTM; h (L, B, P), c (L, B, H)


@dataclass
class CharLMConfig(RegulariserOptions):
    """Everything needed to rebuild a CharLM; JSON-able through to_dict / from_dict."""

    vocab_size: int  # characters + 1 for <unk>: len(CharVocab)
    cell: str = option("lstm", "the recurrent cell", choices=tuple(LAYERS))  # rnn: tanh
    hidden: int = option(512, "hidden size of each layer", type=positive_int, metavar="N")
    proj_size: int = option(  # torch.nn.LSTM's: h_t = W_hr (o * tanh(c_t)), fewer FLOPs
        0,
        "LSTM only: project h to N < --hidden units (0: no projection)",
        type=nonnegative_int,
        metavar="N",
    )
    layers: int = option(2, "stacked layers", type=positive_int, metavar="N")
    dropout: float = option(  # on the embedding, between layers and before the head
        0.2, "", type=fraction, metavar="P"
    )
    # None: min(hidden, vocab_size). The input map one-hot -> gates has rank <= vocab_size,
    # so a wider embedding adds nothing but bytes read at every generated character.
    embed: int | None = option(
        None,
        "embedding size",
        type=positive_int,
        metavar="N",
        shown="the smaller of --hidden and the vocabulary size",
    )

    def __post_init__(self):
        if self.cell not in LAYERS:
            raise ValueError(f"cell must be one of {tuple(LAYERS)}, got {self.cell!r}")
        for key in ("vocab_size", "hidden", "layers"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        if isinstance(self.dropout, bool) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a float in [0, 1), got {self.dropout!r}")
        if self.proj_size and self.cell != "lstm":
            raise ValueError(
                f"proj_size is an LSTM option; cell {self.cell!r} takes none, "
                f"got proj_size={self.proj_size}"
            )
        check_proj_size(self.proj_size, self.hidden)
        self.check_regularisers(self.cell)
        if self.embed is None:
            self.embed = min(self.hidden, self.vocab_size)
        elif isinstance(self.embed, bool) or not isinstance(self.embed, int) or self.embed < 1:
            raise ValueError(f"embed must be a positive int or None, got {self.embed!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CharLMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown CharLM config keys: {sorted(unknown)}")
        return cls(**data)


class CharLM(nn.Module):
    """Character language model: logits_t = W_hy h_t + b_y over h_t of a recurrent stack.

        e_t = Embedding(x_t)                              (B, T, E)
        h_t = RNN/LSTM/GRU stack(dropout(e_t), state)     (B, T, P)
        logits_t = Linear(dropout(h_t))                   (B, T, V)

    Call contract: `output, loss = model(inputs, targets)`: inputs (B, T) int64 ids, output
    the logits (B, T, V), loss the mean cross-entropy in nats per character (None without
    targets).

    Carried state (truncated BPTT): the model keeps the final hidden state of each forward
    in `self.state`, detached from the graph, and starts the next forward from it, so
    consecutive batches of `TextStreams` continue one another with no change to the
    training loop. Call `reset_state()` before unrelated input (optional where the streams
    start again, `TextStreams.is_epoch_start(k)`); a carried state whose batch size
    differs from the input's is an error. `get_state()` / `set_state(s)` hand
    it to a checkpoint and back (the training loop's hooks of the same names): a tuple of
    plain tensors, (h,) or (h, c), each (L, B, H), or None. `run` and `step` are the
    stateless functions underneath.

    Options (keywords, defaults and meaning in CharLMConfig): cell, hidden, proj_size,
    layers, dropout, embed, and the layer's regularisers recurrent_dropout, weight_drop,
    zoneout (train/regularise.py). `model.config` rebuilds the model:
    CharLM.from_config(model.config).
    """

    def __init__(self, vocab_size: int, **options):
        super().__init__()
        self.config = config = CharLMConfig(vocab_size, **options)
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        self.rnn = LAYERS[config.cell](
            config.embed,
            config.hidden,
            config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
            **({"proj_size": config.proj_size} if config.proj_size else {}),
            **config.layer_kwargs(),
        )
        self.drop = Dropout(config.dropout)
        self.head = nn.Linear(config.proj_size or config.hidden, config.vocab_size)
        self.state: State | None = None

    @classmethod
    def from_config(cls, config: CharLMConfig | dict) -> CharLM:
        if isinstance(config, dict):
            config = CharLMConfig.from_dict(config)
        return cls(**config.to_dict())

    def reset_state(self) -> None:
        """Forget the carried state: the next forward starts from zeros."""
        self.state = None

    def get_state(self) -> State | None:
        return self.state

    def set_state(self, state: State | None) -> None:
        n = 2 if self.config.cell == "lstm" else 1
        if state is not None and not (
            isinstance(state, (tuple, list))
            and len(state) == n
            and all(isinstance(s, Tensor) for s in state)
        ):
            raise ValueError(f"a {self.config.cell} state is None or a tuple of {n} tensors")
        self.state = None if state is None else tuple(state)

    def forward(self, inputs: Tensor, targets: Tensor | None = None):
        """(logits (B, T, V), mean cross-entropy in nats/char or None); carries self.state."""
        state = self.state
        if state is not None and state[0].shape[1] != inputs.shape[0]:
            raise ValueError(
                f"the carried state has batch {state[0].shape[1]} but the input has "
                f"{inputs.shape[0]}; call reset_state() first"
            )
        logits, state = self.run(inputs, state)
        self.state = tuple(s.detach() for s in state)
        if targets is None:
            return logits, None
        if targets.shape != inputs.shape:
            raise ValueError(
                f"targets must have the inputs' shape {tuple(inputs.shape)}, "
                f"got {tuple(targets.shape)}"
            )
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

    def run(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Logits (B, T, V) and the final state for ids (B, T) from `state` (zeros if None)."""
        self._check_ids(inputs, 2)
        e = self.drop(self.embedding(inputs))  # (B, T, E)
        h, state = self.rnn(e, self._hx(state))  # (B, T, P)
        return self.head(self.drop(h)), self._tuple(state)  # (B, T, V)

    def step(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One character per row through the core's stepping API: ids (B,) -> logits (B, V)."""
        self._check_ids(ids, 1)
        e = self.drop(self.embedding(ids))  # (B, E)
        h, state = self.rnn.step(e, self._hx(state))  # (B, P)
        return self.head(self.drop(h)), self._tuple(state)  # (B, V)

    def _hx(self, state: State | None):
        if state is None or self.config.cell == "lstm":
            return state
        return state[0]

    @staticmethod
    def _tuple(state) -> State:
        return tuple(state) if isinstance(state, tuple) else (state,)

    def _check_ids(self, ids: Tensor, dim: int) -> None:
        if not isinstance(ids, Tensor) or ids.dtype != torch.int64 or ids.dim() != dim:
            shape = "(B, T)" if dim == 2 else "(B,)"
            got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, Tensor) else type(ids)
            raise ValueError(f"inputs must be int64 character ids of shape {shape}, got {got}")


@torch.no_grad()
def evaluate(model: nn.Module, streams) -> dict:
    """Mean cross-entropy over every target of `streams` (a TextStreams), state carried.

    Returns {"loss", "nats_per_char", "bits_per_char", "chars"}, loss being nats_per_char
    under the name the training loop validates on by default. The model is put in eval mode and
    its carried state set aside for the pass, then both are restored. A DDP wrapper is
    looked through (`.module`); across processes, weight each rank's result by "chars".
    """
    lm = getattr(model, "module", model)
    was_training, saved = lm.training, lm.state
    device = next(lm.parameters()).device
    lm.eval()
    lm.reset_state()
    total, chars = 0.0, 0
    try:
        for x, y in streams.eval_batches():
            _, loss = lm(x.to(device), y.to(device))
            total += loss.item() * y.numel()
            chars += y.numel()
    finally:
        lm.state = saved
        lm.train(was_training)
    nats = total / chars
    bits = nats / math.log(2)
    return {"loss": nats, "nats_per_char": nats, "bits_per_char": bits, "chars": chars}
