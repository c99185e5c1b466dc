"""Decoding a Seq2Seq, batched: greedy search and beam search with length normalisation.

Both encode the batch once and advance the decoder one step at a time (`Seq2Seq.step`). A
hypothesis ends at </s> (not part of its tokens) or at `max_length` tokens. Beam search keeps K
live hypotheses per sentence; a candidate that emits </s> is set aside as finished, and a
sentence is done when it has K finished ones (or at max_length, when its live ones finish).
The winner maximises the length-normalised score

    score(y) = log p(y | x) / |y|^alpha        |y| counts </s>; alpha = 0: the raw log-probability

With K = 1 this is greedy search exactly.

    B: batch, K: beam size, S: source length, V: target vocabulary
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.translate.model import Seq2Seq


@dataclass
class Hypothesis:
    tokens: list[int]  # without <s> and </s>
    score: float  # the length-normalised log-probability
    attention: Tensor | None  # (len(tokens) + 1, S_valid): one row per emitted token and </s>


def max_lengths(src_lengths: Tensor, max_length: int | None, ratio: float = 2.0, extra: int = 10):
    """The most tokens (</s> not counted) of each sentence's translation: ratio * source length
    + extra, capped by max_length."""
    budget = (src_lengths.float() * ratio).long() + extra  # (B,)
    return budget.clamp(max=max_length) if max_length is not None else budget


@torch.no_grad()
def greedy(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    max_length: int | None = None,
    attention: bool = False,
) -> list[Hypothesis]:
    """The likeliest next token at every step, for each of the B sentences."""
    c = model.config
    memory, state = model.encode(src, src_lengths)
    budget = max_lengths(src_lengths, max_length).to(src.device)  # (B,)
    B = src.shape[0]
    y = torch.full((B,), c.bos_id, dtype=torch.int64, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    score = torch.zeros(B, device=src.device)
    tokens, weights = [], []
    for t in range(int(budget.max()) + 1):
        logits, state, a = model.step(y, state, memory)  # (B, V), _, (B, S)
        logp = logits.log_softmax(-1)
        y = logp.argmax(-1)  # (B,)
        y = torch.where(t >= budget, torch.full_like(y, c.eos_id), y)  # out of budget: end
        score += torch.where(done, 0.0, logp.gather(1, y.unsqueeze(1)).squeeze(1))
        tokens.append(y)
        weights.append(a)
        done |= y == c.eos_id
        if bool(done.all()):
            break
    tokens = torch.stack(tokens, 1).tolist()  # (B, steps)
    weights = torch.stack(weights, 1) if attention else None  # (B, steps, S)
    out = []
    for b in range(B):
        n = tokens[b].index(c.eos_id) if c.eos_id in tokens[b] else len(tokens[b])
        a = weights[b, : n + 1, : int(src_lengths[b])].cpu() if attention else None
        out.append(Hypothesis(tokens[b][:n], float(score[b]), a))
    return out


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    beam: int = 5,
    alpha: float = 1.0,
    max_length: int | None = None,
    attention: bool = False,
) -> list[Hypothesis]:
    """The best of K hypotheses per sentence by the length-normalised score."""
    _check_beam(beam, alpha)
    c, K, B, device = model.config, beam, src.shape[0], src.device
    memory, state = model.encode(src, src_lengths)
    rows = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,): sentence of each row
    memory, state = memory.index_select(rows), _select(state, rows)
    budget = max_lengths(src_lengths, max_length).tolist()
    y = torch.full((B * K,), c.bos_id, dtype=torch.int64, device=device)
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # K identical starts: only one may expand
    S = src.shape[1] if attention else None  # None: no attention kept
    beams = _Beams(B, K, alpha, c.eos_id, src_lengths, S, device)
    for t in range(max(budget) + 1):
        logits, state, a = model.step(y, state, memory)  # (B*K, V), _, (B*K, S)
        logp = logits.log_softmax(-1).view(B, K, -1) + scores.unsqueeze(2)  # (B, K, V)
        new_scores, pick, next_y = beams.choose(logp, a, t, budget)  # (B, K) each
        if not beams.searching(new_scores):
            break
        index = pick.view(-1)  # (B*K,)
        beams.extend(index, next_y.view(-1), a)
        scores, y, state = new_scores, next_y.view(-1), _select(state, index)
    return beams.best()


def _check_beam(beam: int, alpha: float) -> None:
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam must be a positive int, got {beam!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha < 0:
        raise ValueError(f"alpha (length normalisation) must be a number >= 0, got {alpha!r}")


class _Beams:
    """What beam search keeps between steps: each row's tokens (and attention) so far and each
    sentence's finished hypotheses. Sentence b owns the rows [b*K, (b+1)*K).

        history: (B*K, t) tokens, attn: (B*K, t, S) weights (attention only)
    """

    def __init__(self, B, K, alpha, eos_id, src_lengths: Tensor, S: int | None, device):
        self.K, self.alpha, self.eos_id, self.src_lengths = K, alpha, eos_id, src_lengths
        self.history = torch.empty(B * K, 0, dtype=torch.int64, device=device)  # (B*K, t)
        self.attn = None if S is None else torch.empty(B * K, 0, S, device=device)
        self.finished: list[list[Hypothesis]] = [[] for _ in range(B)]

    def choose(self, logp: Tensor, a: Tensor, t: int, budget: list[int]):
        """(scores, rows, tokens), each (B, K): the live hypotheses after step t, chosen from
        the total log-probabilities logp (B, K, V) of every extension; endings are set aside as
        finished. A slot without a live hypothesis scores -inf. `a` (B*K, S): this step's
        attention."""
        B, K, V = logp.shape
        top, flat = logp.view(B, K * V).topk(2 * K, dim=1)  # (B, 2K): K can end, K live on
        origin, token = flat // V, flat % V  # beam index and next token of each candidate
        scores = torch.full((B, K), float("-inf"), device=logp.device)
        rows = torch.zeros(B, K, dtype=torch.int64, device=logp.device)  # candidate -> row
        tokens = torch.full((B, K), self.eos_id, dtype=torch.int64, device=logp.device)
        top, origin, token = top.tolist(), origin.tolist(), token.tolist()
        for b in range(B):
            if len(self.finished[b]) >= K:
                continue
            if t >= budget[b]:  # out of budget: each live hypothesis ends here with </s>
                self._end_all(b, logp, a)
                continue
            candidates = zip(top[b], origin[b], token[b], strict=True)
            self._expand(b, candidates, a, scores[b], rows[b], tokens[b])
        return scores, rows, tokens

    def _expand(self, b: int, candidates, a: Tensor, scores, rows, tokens) -> None:
        """Sentence b's K best live extensions into scores, rows and tokens (K,), best first;
        a candidate that ends with </s> is finished instead."""
        live = 0
        for j, (s, origin, tok) in enumerate(candidates):
            if s == float("-inf") or live == self.K:
                break
            row = b * self.K + origin
            if tok == self.eos_id:
                if j < self.K:  # only an ending among the K best counts (so K = 1 is greedy)
                    self.finished[b].append(self._ended(row, s, a))
                continue
            scores[live], rows[live], tokens[live] = s, row, tok
            live += 1

    def _end_all(self, b: int, logp: Tensor, a: Tensor) -> None:
        """Sentence b's live hypotheses, each ended with </s>, until it has K finished."""
        for k in range(self.K):
            s = float(logp[b, k, self.eos_id])
            if s > float("-inf") and len(self.finished[b]) < self.K:
                self.finished[b].append(self._ended(b * self.K + k, s, a))

    def _ended(self, row: int, s: float, a: Tensor) -> Hypothesis:
        """Row `row`'s hypothesis, ended by </s> at the total log-probability s."""
        tokens, weights = self.history[row].tolist(), None
        if self.attn is not None:
            weights = torch.cat([self.attn[row], a[row].unsqueeze(0)])
            weights = weights[:, : int(self.src_lengths[row // self.K])].cpu()
        return Hypothesis(tokens, s / (len(tokens) + 1) ** self.alpha, weights)

    def searching(self, scores: Tensor) -> bool:
        """Whether a sentence with fewer than K finished hypotheses has a live one in scores."""
        alive = torch.isfinite(scores).any(1).tolist()  # (B,)
        return any(live and len(f) < self.K for live, f in zip(alive, self.finished, strict=True))

    def extend(self, index: Tensor, tokens: Tensor, a: Tensor) -> None:
        """Rows `index` (B*K,) of the history, each extended by its token (B*K,)."""
        self.history = torch.cat([self.history[index], tokens.view(-1, 1)], dim=1)
        if self.attn is not None:
            self.attn = torch.cat([self.attn[index], a[index].unsqueeze(1)], dim=1)

    def best(self) -> list[Hypothesis]:
        """Each sentence's finished hypothesis of the highest score."""
        return [max(f, key=lambda h: h.score) for f in self.finished]


def _select(state, index: Tensor):
    """The decoder state's rows `index` (its batch dim is 1: (L, B, H))."""
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)
