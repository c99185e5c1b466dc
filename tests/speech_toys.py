"""Tiny audio for the speech tests: tones standing in for spoken digits, an FSDD-like folder of
them, and the path of the real FSDD when the shared data is there."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 8000
FSDD = Path(__file__).parents[2] / "shared" / "data" / "fsdd"


def tone(freq: float, seconds: float = 0.3, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A sine at `freq` Hz with a little noise, amplitude 0.5."""
    t = np.arange(round(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.01, t.shape)
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def digit_tone(digit: int, seed: int = 0) -> np.ndarray:
    """The stand-in for a spoken digit: its own pitch, a slightly random length."""
    seconds = 0.25 + 0.1 * np.random.default_rng(seed + 100).random()
    return tone(400 + 300 * digit, seconds, seed=seed)


def fake_fsdd(root: Path, digits=range(4), speakers=("ann", "bob"), indices=range(8)) -> Path:
    """root/recordings/{digit}_{speaker}_{index}.wav of digit tones (indices 0-4: test)."""
    import soundfile

    folder = root / "recordings"
    folder.mkdir(parents=True)
    for d in digits:
        for s, speaker in enumerate(speakers):
            for i in indices:
                wave = digit_tone(d, seed=1000 * d + 100 * s + i)
                soundfile.write(str(folder / f"{d}_{speaker}_{i}.wav"), wave, RATE)
    return root
