"""Reading audio: a WAV file as one mono float32 waveform at the rate the features expect
(soundfile reads, soxr resamples; both in the `speech` extra).

    S: samples, C: channels
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rnnkit.speech.extra import need

logger = logging.getLogger(__name__)


def read_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """(S,) float32 samples in [-1, 1] of the WAV file at `path`, resampled to `sample_rate`.

    A stereo (or more) file is mixed down to the mean of its channels, with a warning. A file
    that is missing, unreadable, not WAV or silent-empty raises ValueError naming it.
    """
    soundfile = need("soundfile")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"audio file {path} does not exist (expected a WAV file)")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not a WAV file")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"{path} is not a readable WAV file: {_reason(exc)}") from None
    if info.format != "WAV":
        raise ValueError(f"{path} is {info.format} audio, expected a WAV file")
    try:
        wave, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (S, C)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"{path} is not a readable WAV file: {_reason(exc)}") from None
    if wave.shape[0] == 0:
        raise ValueError(f"{path} holds no samples (an empty WAV file)")
    if wave.shape[1] > 1:
        logger.warning("%s has %d channels: mixed down to mono", path, wave.shape[1])
    wave = wave.mean(axis=1)  # (S,)
    return resample(wave, rate, sample_rate)


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`wave` (S,) from `rate` to `target` Hz (soxr, high quality); unchanged when equal."""
    if rate == target:
        return np.ascontiguousarray(wave, dtype=np.float32)
    soxr = need("soxr")
    return soxr.resample(wave.astype(np.float32), rate, target).astype(np.float32)


def write_wav(path: str | Path, wave: np.ndarray, sample_rate: int) -> None:
    """`wave` (S,) float in [-1, 1] as 16-bit PCM WAV."""
    soundfile = need("soundfile")
    soundfile.write(str(path), np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16")


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
