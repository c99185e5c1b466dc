"""Seq2Seq: an attentional encoder-decoder for translation (a bidirectional recurrent encoder, a
recurrent decoder attending over the encoder states, a softmax over the target vocabulary).

    m_j  = [h_fwd_j; h_bwd_j] = BiRNN(E_src x)_j                          (B, S, 2H)
    s_0  = tanh(W_b [h_fwd_S; h_bwd_1])     per layer                       (L, B, H)
  luong (Luong et al. 2015, no input feeding):
    s_t  = RNN(E_tgt y_{t-1}, s_{t-1});  c_t, a_t = attention(s_t, m)
  bahdanau (Bahdanau et al. 2015):
    c_t, a_t = attention(s_{t-1}, m);  s_t = RNN([E_tgt y_{t-1}; c_t], s_{t-1})
  both:
    h~_t = tanh(W_c [s_t; c_t])                                             (B, H)
    p(y_t | y_<t, x) = softmax(W_y dropout(h~_t) + b_y)                     (B, V)

With tied embeddings W_y = E_tgt P (P: H -> E), so the output layer shares the target
embedding's V x E weights. The decoder advances one step at a time with the core layers'
stepping API (`rnn.step`); a teacher-forced Luong decoder runs the whole target at once
(the hand-written BPTT kernel) since its recurrence does not read the context.

Call contract: `output, loss = model(inputs, targets)`: inputs = (src (B, S), src_lengths (B,),
tgt_in (B, T)) int64 with tgt_in = <s> y_1 .. y_{T-1} padded with pad_id; targets (B, T) =
y_1 .. y_T </s>, pad_id where there is no token (ignored by the loss). output: logits (B, T, V);
loss: the mean label-smoothed cross-entropy per target token (None without targets).

    B: batch, S: source length, T: target length, E: embedding size, H: hidden size,
    L: layers, V: target vocabulary size, M = 2H: memory size
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from rnnkit.layers import LAYERS
from rnnkit.regularisers import Dropout
from rnnkit.train.options import fraction, option, positive_int, probability
from rnnkit.translate.attention import ATTENTIONS, make_attention

RECURRENT = ("gru", "lstm", "rnn")  # the cells an encoder-decoder is built of (of LAYERS)


@dataclass
class Seq2SeqConfig:
    """Everything needed to rebuild a Seq2Seq; JSON-able via to_dict / from_dict."""

    src_vocab: int  # source tokens, specials included
    tgt_vocab: int  # V: target tokens, specials included
    cell: str = option("gru", "", choices=RECURRENT)  # the encoder's and the decoder's
    embed: int = option(256, "embedding size", type=positive_int, metavar="N")  # E, both sides
    hidden: int = option(  # H
        512, "hidden size (the encoder's per direction)", type=positive_int, metavar="N"
    )
    layers: int = option(  # L
        1, "stacked layers of the encoder and of the decoder", type=positive_int, metavar="N"
    )
    attention: str = option(
        "bahdanau",
        "additive (Bahdanau) or multiplicative (Luong: trains faster)",
        choices=ATTENTIONS,
    )
    dropout: float = option(  # on embeddings, between layers and before the output layer
        0.3, "", type=fraction, metavar="P"
    )
    tie_embeddings: bool = option(  # W_y = E_tgt P
        False, "share the target embedding with the output layer", action="store_true", shown=""
    )
    label_smoothing: float = option(  # of the training cross-entropy
        0.1, "", type=fraction, metavar="E"
    )
    teacher_forcing: float = option(  # probability the decoder reads the true y_{t-1}
        1.0,
        "probability the decoder reads the true previous token in training; below 1, its own "
        "prediction otherwise (scheduled sampling)",
        type=probability,
        metavar="P",
    )
    pad_id: int = 0
    bos_id: int = 2  # <s>: the decoder's first input
    eos_id: int = 3  # </s>: the end of a translation

    def __post_init__(self):
        if self.cell not in RECURRENT:
            raise ValueError(f"cell must be one of {RECURRENT}, got {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        for key in ("src_vocab", "tgt_vocab", "embed", "hidden", "layers"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        for key in ("dropout", "label_smoothing"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"{key} must be a number in [0, 1), got {value!r}")
        tf = self.teacher_forcing
        if isinstance(tf, bool) or not isinstance(tf, (int, float)) or not 0 <= tf <= 1:
            raise ValueError(f"teacher_forcing must be a probability in [0, 1], got {tf!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"tie_embeddings must be a bool, got {self.tie_embeddings!r}")
        for key in ("pad_id", "bos_id", "eos_id"):
            value = getattr(self, key)
            if not 0 <= value < min(self.src_vocab, self.tgt_vocab):
                raise ValueError(f"{key}={value} is not a token id of both vocabularies")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Seq2SeqConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown seq2seq config keys: {sorted(unknown)}")
        return cls(**data)


@dataclass
class Memory:
    """What the decoder reads from one encoded batch: the encoder states m, their attention keys
    and the mask of valid source positions."""

    memory: Tensor  # (B, S, M)
    keys: Tensor  # (B, S, A)
    mask: Tensor  # (B, S) bool: True where j < the source length

    def index_select(self, index: Tensor) -> Memory:
        """The rows `index` (B',), e.g. each sentence repeated once per beam."""
        return Memory(self.memory[index], self.keys[index], self.mask[index])


class Seq2Seq(nn.Module):
    """The attentional encoder-decoder of the module docstring."""

    def __init__(self, src_vocab: int, tgt_vocab: int, **options):
        super().__init__()
        self.config = c = Seq2SeqConfig(src_vocab, tgt_vocab, **options)
        H, E, M = c.hidden, c.embed, 2 * c.hidden
        layer, between = LAYERS[c.cell], c.dropout if c.layers > 1 else 0.0
        self.src_embedding = nn.Embedding(c.src_vocab, E, padding_idx=c.pad_id)
        self.tgt_embedding = nn.Embedding(c.tgt_vocab, E, padding_idx=c.pad_id)
        self.encoder = layer(E, H, c.layers, batch_first=True, dropout=between, bidirectional=True)
        self.bridge = nn.Linear(M, H)  # W_b
        decoder_input = E + (M if c.attention == "bahdanau" else 0)
        self.decoder = layer(decoder_input, H, c.layers, batch_first=True, dropout=between)
        self.attention = make_attention(c.attention, H, M)
        self.combine = nn.Linear(H + M, H, bias=False)  # W_c
        self.drop = Dropout(c.dropout)
        if c.tie_embeddings:
            self.project = nn.Linear(H, E, bias=False)  # P
            self.out_bias = nn.Parameter(torch.zeros(c.tgt_vocab))  # b_y
        else:
            self.out = nn.Linear(H, c.tgt_vocab)  # W_y, b_y

    @classmethod
    def from_config(cls, config: Seq2SeqConfig | dict) -> Seq2Seq:
        if isinstance(config, dict):
            config = Seq2SeqConfig.from_dict(config)
        return cls(**config.to_dict())

    # ---- the parts ----------------------------------------------------------------------

    def encode(self, src: Tensor, src_lengths: Tensor):
        """(Memory, the decoder's initial state s_0)."""
        c = self.config
        e = self.drop(self.src_embedding(src))  # (B, S, E)
        m, final = self.encoder(e, lengths=src_lengths)  # (B, S, M)
        h_n = final[0] if isinstance(final, tuple) else final  # (L*2, B, H)
        L, B = c.layers, src.shape[0]
        h_n = h_n.view(L, 2, B, c.hidden).transpose(1, 2).reshape(L, B, 2 * c.hidden)
        s_0 = torch.tanh(self.bridge(h_n))  # (L, B, H)
        state = (s_0, torch.zeros_like(s_0)) if c.cell == "lstm" else s_0
        steps = torch.arange(src.shape[1], device=src.device)  # (S,)
        mask = steps.unsqueeze(0) < src_lengths.to(src.device).unsqueeze(1)  # (B, S)
        return Memory(m, self.attention.keys(m), mask), state

    def logits(self, s: Tensor, context: Tensor) -> Tensor:
        """W_y dropout(tanh(W_c [s; c])) + b_y: (B, [T,] V)."""
        h = self.drop(torch.tanh(self.combine(torch.cat([s, context], dim=-1))))  # (B, [T,] H)
        if self.config.tie_embeddings:
            return nn.functional.linear(self.project(h), self.tgt_embedding.weight, self.out_bias)
        return self.out(h)

    def step(self, y_prev: Tensor, state, memory: Memory):
        """One decoder step: y_prev (B,) -> (logits (B, V), state, attention weights (B, S))."""
        e = self.drop(self.tgt_embedding(y_prev))  # (B, E)
        if self.config.attention == "luong":
            s, state = self.decoder.step(e, state)  # (B, H)
            context, a = self.attention(s, memory.keys, memory.memory, memory.mask)
        else:
            query = (state[0] if isinstance(state, tuple) else state)[-1]  # s_{t-1}: (B, H)
            context, a = self.attention(query, memory.keys, memory.memory, memory.mask)
            s, state = self.decoder.step(torch.cat([e, context], dim=-1), state)
        return self.logits(s, context), state, a

    # ---- the contract -------------------------------------------------------------------

    def forward(self, inputs, targets: Tensor | None = None):
        """(logits (B, T, V), mean cross-entropy or None); see the module docstring."""
        src, src_lengths, tgt_in = self._check_inputs(inputs)
        memory, state = self.encode(src, src_lengths)
        c = self.config
        forced = not self.training or c.teacher_forcing >= 1
        if c.attention == "luong" and forced:  # the whole target at once
            s, _ = self.decoder(self.drop(self.tgt_embedding(tgt_in)), state)  # (B, T, H)
            context, _ = self.attention(s, memory.keys, memory.memory, memory.mask)
            logits = self.logits(s, context)  # (B, T, V)
        else:
            logits = self._unroll(tgt_in, state, memory, forced)
        if targets is None:
            return logits, None
        if not isinstance(targets, Tensor) or targets.shape != tgt_in.shape:
            got = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
            raise ValueError(f"targets must have tgt_in's shape {tuple(tgt_in.shape)}, got {got}")
        loss = nn.functional.cross_entropy(
            logits.flatten(0, 1),
            targets.flatten(),
            ignore_index=c.pad_id,
            label_smoothing=c.label_smoothing if self.training else 0.0,
        )
        return logits, loss

    def _unroll(self, tgt_in: Tensor, state, memory: Memory, forced: bool) -> Tensor:
        """Step by step; in training each y_{t-1} is the true token with probability
        teacher_forcing, else the model's own likeliest token at t-1 (scheduled sampling)."""
        logits, y = [], tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            if t and not forced:
                own = logits[-1].argmax(-1)  # (B,)
                keep = torch.rand(y.shape, device=y.device) < self.config.teacher_forcing
                y = torch.where(keep | (tgt_in[:, t] == self.config.pad_id), tgt_in[:, t], own)
            elif t:
                y = tgt_in[:, t]
            step_logits, state, _ = self.step(y, state, memory)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)  # (B, T, V)

    def _check_inputs(self, inputs) -> tuple[Tensor, Tensor, Tensor]:
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 3):
            raise TypeError(
                "inputs must be (src (B, S), src_lengths (B,), tgt_in (B, T)) int64 tensors, "
                f"got {type(inputs).__name__}"
            )
        src, src_lengths, tgt_in = inputs
        for name, ids in (("src", src), ("tgt_in", tgt_in)):
            if not isinstance(ids, Tensor) or ids.dtype != torch.int64 or ids.dim() != 2:
                got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, Tensor) else type(ids)
                raise ValueError(f"{name} must be int64 token ids of shape (B, T), got {got}")
        if src.shape[0] != tgt_in.shape[0]:
            raise ValueError(f"src has {src.shape[0]} sentences but tgt_in {tgt_in.shape[0]}")
        return src, torch.as_tensor(src_lengths, device=src.device), tgt_in
