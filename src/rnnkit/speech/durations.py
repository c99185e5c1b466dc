"""How long the training utterances were, kept in the checkpoint, and the warning for audio far
outside that range: a model trained on one-second words says nothing useful about ten minutes
of noise or a clip of ten samples, but answers anyway, so the answer comes with a warning.

Durations are counted in feature frames, each `hop_ms` of audio: T frames read as T * hop_ms
milliseconds (a clip shorter than one window is one frame).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

logger = logging.getLogger(__name__)

FAR = 2.0  # shorter than the shortest training utterance / FAR, or longer than the longest x FAR
FAR_FROM_MEAN = 10.0  # the same around the mean, for checkpoints that stored only counts


def stats(lengths: Sequence[int], hop_ms: float) -> dict:
    """{"min", "max", "mean"} seconds of utterances of `lengths` frames (the checkpoint's)."""
    seconds = [n * hop_ms / 1000 for n in lengths]
    return {"min": min(seconds), "max": max(seconds), "mean": sum(seconds) / len(seconds)}


def kept(vocab: dict, config: dict, hop_ms: float) -> dict | None:
    """The training durations a checkpoint keeps (`stats`), or for an older checkpoint a range
    from its counts (`from_counts`); None when it has neither in a usable form."""
    stored = vocab.get("durations")
    if isinstance(stored, dict) and all(_number(stored.get(k)) for k in ("min", "max", "mean")):
        return {k: float(stored[k]) for k in ("min", "max", "mean")}
    data = config.get("data") if isinstance(config, dict) else None
    counts = data.get("counts") if isinstance(data, dict) else None
    return from_counts(counts, hop_ms) if isinstance(counts, dict) else None


def from_counts(counts: dict, hop_ms: float) -> dict | None:
    """The range of an older checkpoint, which kept the training frames and utterances only:
    FAR_FROM_MEAN times around their mean; None without them."""
    frames, n = counts.get("train_frames"), counts.get("train")
    if not _number(frames) or not _number(n) or frames <= 0 or n <= 0:
        return None
    mean = frames / n * hop_ms / 1000
    low, high = mean * FAR / FAR_FROM_MEAN, mean * FAR_FROM_MEAN / FAR
    return {"min": low, "max": high, "mean": mean, "from_mean": True}


def unusual(frames: int, hop_ms: float, trained: dict | None) -> str | None:
    """Why audio of `frames` frames is far from the `trained` range (stats), or None."""
    if trained is None:
        return None
    seconds = frames * hop_ms / 1000
    span = f"{trained['min']:.2f}-{trained['max']:.2f} s"
    if trained.get("from_mean"):
        span = f"{trained['mean']:.2f} s on average"
    if seconds < trained["min"] / FAR:
        return f"{seconds:.2f} s long, far shorter than the training utterances ({span})"
    if seconds > trained["max"] * FAR:
        return f"{seconds:.1f} s long, far longer than the training utterances ({span})"
    return None


def warn(paths: Sequence, lengths: Sequence[int], hop_ms: float, trained: dict | None) -> int:
    """A warning per file of `paths` whose length is far outside the `trained` range; up to
    five, then one line counting the rest. The number of such files."""
    odd = [(p, why) for p, n in zip(paths, lengths) if (why := unusual(n, hop_ms, trained))]
    for path, why in odd[:5]:
        logger.warning("warning: %s is %s; the answer may mean little", path, why)
    if len(odd) > 5:
        more = len(odd) - 5
        logger.warning("warning: %d more files are far outside the training durations", more)
    return len(odd)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
