"""What a trained CharLM's hidden units do on a text: each unit's activation after every
character, simple features of the text, and which units follow which feature (Pearson r).

    N: characters of the text, H: hidden size, L: layers

The activation of unit u at character t is the chosen layer's state after reading x_0 .. x_t
from zeros, h_t (or an LSTM's cell state c_t), computed with `CharLM.step`, the core layers'
stepping API. A feature is a number per character, known after reading that character, so
feature[t] lines up with h_t.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.textgen.data import CharVocab
from rnnkit.textgen.model import CharLM

MAX_CHARS = 3000  # characters inspected by default: a page that opens at once
TOP = 5  # units listed per feature
QUOTE = '"'
OPENERS, CLOSERS = "([{", ")]}"


# ---- features: (N,) float32, one value per character of the text


def inside_quotes(text: str) -> Tensor:
    """1 inside a pair of double quotes ("), else 0, as known after reading each character.

    An opening quote is inside (1: after reading it the text is quoted), its closing quote
    outside (0). Quotes pair left to right; characters after an unpaired last quote are 0.
    inside_quotes('a"bc"d') == [0, 1, 1, 1, 0, 0].
    """
    seen = 0  # quotes read so far
    inside = []
    for ch in text:
        seen += ch == QUOTE
        inside.append(seen % 2)
    if seen % 2:  # the last quote opens no pair
        last = text.rindex(QUOTE)
        inside[last:] = [0] * (len(text) - last)
    return torch.tensor(inside, dtype=torch.float32)


def line_position(text: str) -> Tensor:
    """Characters read since the last newline: 0 at a newline, 1 at the character after it.

    The text starts as if after a newline: line_position('ab\\ncd') == [1, 2, 0, 1, 2].
    """
    position, column = [], 0
    for ch in text:
        column = 0 if ch == "\n" else column + 1
        position.append(column)
    return torch.tensor(position, dtype=torch.float32)


def bracket_depth(text: str) -> Tensor:
    """Nesting depth of ( [ { after reading each character: an opener adds 1, a closer takes 1
    away, never below 0 (a stray closer is ignored); the kinds are not matched.

    bracket_depth('a(b[c])d') == [0, 1, 1, 2, 2, 1, 0, 0].
    """
    depths, depth = [], 0
    for ch in text:
        if ch in OPENERS:
            depth += 1
        elif ch in CLOSERS:
            depth = max(depth - 1, 0)
        depths.append(depth)
    return torch.tensor(depths, dtype=torch.float32)


FEATURES: dict[str, Callable[[str], Tensor]] = {
    "inside quotes": inside_quotes,
    "position in line": line_position,
    "bracket depth": bracket_depth,
}


# ---- correlations


def correlations(activations: Tensor, feature: Tensor) -> Tensor:
    """Pearson r of each unit with the feature: activations (N, H), feature (N,) -> r (H,).

        r_u = sum_t (a_tu - a_u)(f_t - f) / sqrt(sum_t (a_tu - a_u)^2 * sum_t (f_t - f)^2)

    a_u and f being the means over t.

    In float64; r_u is 0 where the unit or the feature is constant (r is undefined there).
    """
    if activations.dim() != 2 or feature.shape != activations.shape[:1]:
        raise ValueError(
            f"expected activations (N, H) and a feature (N,), "
            f"got {tuple(activations.shape)} and {tuple(feature.shape)}"
        )
    a = activations.double() - activations.double().mean(0)  # (N, H)
    f = feature.double() - feature.double().mean()  # (N,)
    spread = (a.square().sum(0) * f.square().sum()).sqrt()  # (H,)
    r = (a * f[:, None]).sum(0) / spread.clamp_min(1e-300)
    r = torch.where(spread > 1e-12, r, torch.zeros_like(r))
    return r.clamp(-1.0, 1.0)


def top_units(r: Tensor, k: int = TOP) -> list[int]:
    """The k units of largest |r|, largest first (the lower unit first on a tie)."""
    order = sorted(range(len(r)), key=lambda u: (-abs(float(r[u])), u))
    return order[:k]


# ---- activations of a model on a text


@torch.no_grad()
def hidden_states(model: CharLM, ids: Tensor, *, layer: int | None = None, state: str = "h"):
    """Layer `layer`'s state after each character: ids (N,) -> (N, H) float32 on the CPU.

    `layer` counts from 0 (None: the top layer, L - 1); `state` is "h" or, for an LSTM, "c".
    The model reads the ids one at a time from a zero state in eval mode (no dropout); its
    carried state and training mode are left as they were.
    """
    layers, cell = model.config.layers, model.config.cell
    layer = layers - 1 if layer is None else layer
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < layers:
        raise ValueError(
            f"layer must be in 0..{layers - 1} (the model has {layers} layer(s)), got {layer!r}"
        )
    if state not in ("h", "c"):
        raise ValueError(f"state must be 'h' or 'c' (an LSTM's cell state), got {state!r}")
    if state == "c" and cell != "lstm":
        raise ValueError(f"state 'c' needs an LSTM; this model is a {cell}: use 'h'")
    which = 1 if state == "c" else 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        carry, out = None, []
        for x in ids.to(device).view(-1, 1):  # (1,) each: a batch of one
            _, carry = model.step(x, carry)  # each part of carry: (L, 1, H)
            out.append(carry[which][layer, 0])  # (H,)
    finally:
        model.train(was_training)
    return torch.stack(out).float().cpu()  # (N, H)


@dataclass
class Inspection:
    """What `inspect_text` found; the page (page.py) shows it."""

    text: str  # the characters inspected (the first max_chars of the text)
    total_chars: int  # of the whole text
    activations: Tensor  # (N, H): the chosen layer's state after each character
    features: dict[str, Tensor]  # FEATURES' name -> (N,)
    r: dict[str, Tensor]  # FEATURES' name -> (H,) Pearson r of every unit
    unknown: Tensor  # (N,) bool: characters not in the vocabulary (read as <unk>)
    cell: str  # "lstm", "gru" or "rnn"
    layers: int  # of the model
    layer: int  # the one inspected, from 0
    state: str  # "h" or "c"

    def top(self, feature: str, k: int = TOP) -> list[tuple[int, float]]:
        """[(unit, r)] of the k units that follow `feature` most closely, by |r|."""
        r = self.r[feature]
        return [(u, float(r[u])) for u in top_units(r, k)]


def inspect_text(
    model: CharLM,
    vocab: CharVocab,
    text: str,
    *,
    layer: int | None = None,
    state: str = "h",
    max_chars: int = MAX_CHARS,
) -> Inspection:
    """The activations of `model` on the first `max_chars` characters of `text`, the features
    of those characters and each unit's correlation with each feature.

    Characters missing from the vocabulary read as <unk>, as in `evaluate_text` and `sample`;
    `Inspection.unknown` marks them.
    """
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"max_chars must be a positive int, got {max_chars!r}")
    if not text:
        raise ValueError("the text is empty; give some text to inspect")
    shown = text[:max_chars]
    ids = vocab.encode(shown)  # (N,)
    activations = hidden_states(model, ids, layer=layer, state=state)  # (N, H)
    features = {name: fn(shown) for name, fn in FEATURES.items()}
    return Inspection(
        text=shown,
        total_chars=len(text),
        activations=activations,
        features=features,
        r={name: correlations(activations, f) for name, f in features.items()},
        unknown=ids == vocab.unk_id,
        cell=model.config.cell,
        layers=model.config.layers,
        layer=model.config.layers - 1 if layer is None else layer,
        state=state,
    )
