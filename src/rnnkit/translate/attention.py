"""Attention over encoder states, masked by source length: additive (Bahdanau et al. 2015) and
multiplicative (Luong et al. 2015, "general").

Both score every source position j against a decoder query, then

    a_j = softmax_j(e_j) over j < S_valid   (exactly 0 on padding)      (B, [T,] S)
    c   = sum_j a_j m_j                                                 (B, [T,] M)

    B: batch, S: source length, T: target steps, M: memory size (2H for a bidirectional
    encoder), Q: query size (the decoder's hidden size), A: attention size (Bahdanau only)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

ATTENTIONS = ("bahdanau", "luong")


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """softmax over the last dim where mask is True; 0 where it is False.

    scores: (B, ..., S); mask: (B, S) bool, True on valid source positions (at least one per row).
    """
    while mask.dim() < scores.dim():
        mask = mask.unsqueeze(1)  # (B, 1, S): the same mask for every query
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


class LuongAttention(nn.Module):
    """Multiplicative ("general") attention: e_j = q^T W_a m_j.

    The keys k_j = W_k m_j (W_k = W_a: (Q, M)) are computed once per source sentence (`keys`),
    so a score is one dot product: e_j = q . k_j. The scores live in the query's space, so there
    is no attention size to choose. Queries may be (B, Q) (one step) or (B, T, Q) (every step of
    a teacher-forced target at once).
    """

    def __init__(self, query_size: int, memory_size: int):
        super().__init__()
        self.key = nn.Linear(memory_size, query_size, bias=False)  # W_k

    def keys(self, memory: Tensor) -> Tensor:
        return self.key(memory)  # (B, S, Q)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor):
        """(context (B, [T,] M), weights (B, [T,] S))."""
        step = query.dim() == 2
        q = query.unsqueeze(1) if step else query  # (B, T, Q)
        e = torch.bmm(q, keys.transpose(1, 2))  # (B, T, S)
        a = masked_softmax(e, mask)  # (B, T, S)
        c = torch.bmm(a, memory)  # (B, T, M)
        return (c.squeeze(1), a.squeeze(1)) if step else (c, a)


class BahdanauAttention(nn.Module):
    """Additive attention: e_j = v^T tanh(W_q q + W_k m_j), W_q: (A, Q), W_k: (A, M), v: (A,).

    W_k m_j is computed once per source sentence (`keys`); each step adds its query. The
    attention size A defaults to the query size Q, which is what Seq2Seq uses (make_attention
    passes no attention_size).
    """

    def __init__(self, query_size: int, memory_size: int, attention_size: int | None = None):
        super().__init__()
        A = attention_size or query_size
        self.query = nn.Linear(query_size, A, bias=False)  # W_q
        self.key = nn.Linear(memory_size, A)  # W_k (its bias is the score's bias)
        self.v = nn.Linear(A, 1, bias=False)  # v

    def keys(self, memory: Tensor) -> Tensor:
        return self.key(memory)  # (B, S, A)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor):
        """(context (B, [T,] M), weights (B, [T,] S))."""
        step = query.dim() == 2
        q = self.query(query.unsqueeze(1) if step else query)  # (B, T, A)
        e = self.v(torch.tanh(q.unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)  # (B, T, S)
        a = masked_softmax(e, mask)  # (B, T, S)
        c = torch.bmm(a, memory)  # (B, T, M)
        return (c.squeeze(1), a.squeeze(1)) if step else (c, a)


def make_attention(kind: str, query_size: int, memory_size: int) -> nn.Module:
    """The attention `kind` (one of ATTENTIONS) of a decoder with query_size Q over memory_size M;
    Bahdanau's attention size is Q."""
    if kind not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}, got {kind!r}")
    cls = BahdanauAttention if kind == "bahdanau" else LuongAttention
    return cls(query_size, memory_size)
