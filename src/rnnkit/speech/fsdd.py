"""Manifests for the Free Spoken Digit Dataset: isolated digits by the official split, and
connected digit strings made by joining one speaker's recordings with short random silences.

File names are `{digit}_{speaker}_{index}.wav`; the official split puts index 0-4 in test and
5-49 in train. A string's recordings all come from one split (train strings from training
recordings only, test strings from test recordings only) and one speaker; its transcript is
the digits separated by spaces ("3 1 4"), so the word error rate is the digit error rate.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.speech.audio import read_wav, write_wav
from rnnkit.speech.manifest import write_manifest

logger = logging.getLogger(__name__)

NAME = re.compile(r"(\d)_([A-Za-z]+)_(\d+)\.wav")
TEST_INDICES = range(5)  # the official test set: recordings 0-4 of each digit and speaker
SAMPLE_RATE = 8000  # every FSDD recording's rate
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Recording:
    path: Path
    digit: str
    speaker: str
    index: int

    @property
    def split(self) -> str:
        return "test" if self.index in TEST_INDICES else "train"


def parse_name(path: str | Path) -> Recording:
    """The digit, speaker and index in an FSDD file name."""
    path = Path(path)
    match = NAME.fullmatch(path.name)
    if match is None:
        raise ValueError(
            f"{path.name} is not an FSDD file name (expected {{digit}}_{{speaker}}_{{index}}.wav)"
        )
    return Recording(path, match[1], match[2], int(match[3]))


def recordings(root: str | Path) -> list[Recording]:
    """Every FSDD recording under `root` (the dataset folder or its recordings/), sorted."""
    root = Path(root)
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    if not folder.is_dir():
        raise ValueError(f"{root} is not a folder (expected FSDD's folder or its recordings/)")
    found = [parse_name(p) for p in sorted(folder.glob("*.wav")) if NAME.fullmatch(p.name)]
    if not found:
        raise ValueError(f"{folder} holds no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav)")
    return found


def write_manifests(
    root: str | Path,
    out: str | Path,
    *,
    strings: int = 0,
    test_strings: int | None = None,
    min_digits: int = 2,
    max_digits: int = 7,
    silence: tuple[float, float] = (0.05, 0.3),
    seed: int = 0,
) -> dict[str, dict]:
    """OUT/train.csv and OUT/test.csv (isolated digits, official split); with `strings` > 0 also
    OUT/strings_train.csv and OUT/strings_test.csv over WAV files in OUT/strings/{train,test}/:
    `strings` training and `test_strings` (default: strings // 5, at least 1) test strings.
    Returns {manifest name: {"path", "entries"}}."""
    if isinstance(strings, bool) or not isinstance(strings, int) or strings < 0:
        raise ValueError(f"strings must be an int >= 0, got {strings!r}")
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"expected 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    if not 0 <= silence[0] <= silence[1]:
        raise ValueError(
            f"silence must be (low, high) seconds with 0 <= low <= high, got {silence}"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    found = recordings(root)
    written = {}
    for split in SPLITS:
        entries = [(r.path, r.digit) for r in found if r.split == split]
        written[split] = _write(out / f"{split}.csv", entries)
    if strings:
        counts = {"train": strings, "test": test_strings or max(1, strings // 5)}
        rng = np.random.default_rng(seed)
        for split in SPLITS:
            pool = [r for r in found if r.split == split]
            entries = _make_strings(
                pool, out / "strings" / split, counts[split], (min_digits, max_digits), silence, rng
            )
            written[f"strings_{split}"] = _write(out / f"strings_{split}.csv", entries)
    return written


def _write(path: Path, entries: list) -> dict:
    write_manifest(path, entries)
    logger.info("wrote %s: %d entries", path, len(entries))
    return {"path": str(path), "entries": len(entries)}


def _make_strings(pool, folder: Path, n: int, digits: tuple[int, int], silence, rng):
    """`n` strings, each one speaker's recordings of random digits joined by silences."""
    folder.mkdir(parents=True, exist_ok=True)
    by_speaker: dict[str, dict[str, list[Recording]]] = {}
    for r in pool:
        by_speaker.setdefault(r.speaker, {}).setdefault(r.digit, []).append(r)
    speakers = sorted(by_speaker)
    cache: dict[Path, np.ndarray] = {}
    entries = []
    for k in range(n):
        speaker = by_speaker[speakers[rng.integers(len(speakers))]]
        choices = sorted(speaker)
        length = int(rng.integers(digits[0], digits[1] + 1))
        said = [choices[rng.integers(len(choices))] for _ in range(length)]
        parts = [_silence(silence, rng)]
        for digit in said:
            takes = speaker[digit]
            take = takes[rng.integers(len(takes))].path
            if take not in cache:
                cache[take] = read_wav(take, SAMPLE_RATE)
            parts += [cache[take], _silence(silence, rng)]
        path = folder / f"{k:05d}.wav"
        write_wav(path, np.concatenate(parts), SAMPLE_RATE)
        entries.append((path, " ".join(said)))
    return entries


def _silence(bounds: tuple[float, float], rng) -> np.ndarray:
    return np.zeros(round(rng.uniform(*bounds) * SAMPLE_RATE), dtype=np.float32)
