"""Acoustic features: log-mel or MFCC frames of a waveform (torch.stft with librosa's mel
filterbank), and the per-feature normalisation fitted on the training frames.

    S: samples, T: frames, N: FFT size, K = N // 2 + 1 frequency bins, M: mel bands, F: features

Frame t covers samples [t * hop, t * hop + N) (no centring: a frame needs no future samples,
so a stream can be featurised chunk by chunk), so T = 1 + (S - N) // hop; a clip shorter than
one frame is zero-padded to one.

    P[t, k]   = |sum_s w[s] x[t * hop + s] e^{-2 pi i k s / N}|^2          (T, K) power spectrum
    mel[t, m] = sum_k B[m, k] P[t, k]                                        (T, M)  B: Slaney mel
    logmel    = 10 log10(max(mel, 1e-10))                                    (T, M)  dB
    mfcc      = DCT-II(logmel, orthonormal)[:, :n_mfcc]                      (T, n_mfcc)
    x[t]      = x[t] - mean_t' x[t']        with mean_norm (per-utterance mean normalisation)

which is librosa's `power_to_db(melspectrogram(..., center=False), top_db=None)` and
`mfcc` (tests/speech/test_speech_features.py compares them).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import Tensor

from rnnkit.speech.extra import need
from rnnkit.train.options import option, positive_int

KINDS = ("logmel", "mfcc")
AMIN = 1e-10  # the power floor before the log (librosa's amin)


@dataclass
class FeatureConfig:
    """How a waveform becomes frames; stored in a speech checkpoint."""

    sample_rate: int = option(  # Hz; audio at another rate is resampled to it (FSDD: 8 kHz)
        8000, "audio is resampled to it", type=positive_int, metavar="HZ"
    )
    kind: str = option(  # "logmel" (M features) | "mfcc" (n_mfcc features)
        "logmel", "", choices=KINDS
    )
    n_mels: int = option(40, "", type=positive_int, metavar="N")  # M mel bands
    n_mfcc: int = option(  # cepstral coefficients kept, for kind="mfcc"
        13, "", type=positive_int, metavar="N"
    )
    win_ms: float = 25.0  # analysis window (Hann); the FFT size N is the next power of two
    hop_ms: float = 10.0  # frame shift
    fmin: float = 20.0  # Hz, the lowest mel band's lower edge
    fmax: float | None = None  # Hz; None: sample_rate / 2
    mean_norm: bool = option(  # per feature; needs the whole utterance: no streaming
        False,
        "subtract each utterance's own mean of each feature first (helps with unseen speakers; "
        "a model trained so cannot stream)",
        action="store_true",
    )

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"feature kind must be one of {KINDS}, got {self.kind!r}")
        for key in ("sample_rate", "n_mels", "n_mfcc"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        if not 0 < self.hop_ms <= self.win_ms:
            raise ValueError(f"hop_ms must be in (0, win_ms = {self.win_ms}], got {self.hop_ms!r}")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop(self) -> int:
        return max(1, round(self.sample_rate * self.hop_ms / 1000))

    @property
    def n_fft(self) -> int:
        return 1 << max(0, math.ceil(math.log2(self.win_length)))

    @property
    def size(self) -> int:
        """F, the features per frame."""
        return self.n_mels if self.kind == "logmel" else self.n_mfcc

    def frames(self, samples: int) -> int:
        """T for a clip of `samples` samples."""
        return 1 + max(0, samples - self.n_fft) // self.hop

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown feature config keys: {sorted(unknown)}")
        return cls(**data)


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax) -> Tensor:
    basis = need("librosa").filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax
    )
    return torch.from_numpy(basis).float()  # (M, K)


@functools.lru_cache(maxsize=8)
def _dct_matrix(n_mels: int, n_mfcc: int) -> Tensor:
    """(M, n_mfcc) orthonormal DCT-II: mfcc = logmel @ D (scipy's dct(type=2, norm="ortho"))."""
    m = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)
    d = torch.cos(math.pi / n_mels * (m.unsqueeze(1) + 0.5) * k.unsqueeze(0))  # (M, n_mfcc)
    d *= math.sqrt(2.0 / n_mels)
    d[:, 0] /= math.sqrt(2.0)
    return d.float()


def compute(wave: np.ndarray | Tensor, config: FeatureConfig) -> Tensor:
    """(T, F) float32 features of the waveform `wave` (S,) at config.sample_rate."""
    x = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    if x.dim() != 1:
        raise ValueError(f"expected a mono waveform of shape (S,), got {tuple(x.shape)}")
    n_fft = config.n_fft
    if x.numel() < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.numel()))
    window = torch.hann_window(config.win_length)
    spec = torch.stft(
        x,
        n_fft,
        hop_length=config.hop,
        win_length=config.win_length,
        window=window,
        center=False,
        return_complex=True,
    )  # (K, T)
    power = spec.abs().square()  # (K, T)
    fmax = config.fmax if config.fmax is not None else config.sample_rate / 2
    basis = _mel_basis(config.sample_rate, n_fft, config.n_mels, config.fmin, fmax)
    logmel = 10.0 * torch.log10((basis @ power).clamp(min=AMIN)).T  # (T, M)
    x = logmel if config.kind == "logmel" else logmel @ _dct_matrix(config.n_mels, config.n_mfcc)
    if config.mean_norm:
        x = x - x.mean(0)  # (T, F)
    return x.contiguous()


@dataclass
class Normaliser:
    """Per-feature standardisation z = (x - mean) / std, fitted on the training frames."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, frames: list[Tensor]) -> Normaliser:
        """Mean and standard deviation of each feature over every frame of `frames` [(T, F)]."""
        if not frames:
            raise ValueError("the normalisation needs at least one utterance")
        x = torch.cat(frames).double()  # (sum T, F)
        std = x.std(0, unbiased=False).clamp(min=1e-5)
        return cls(x.mean(0).tolist(), std.tolist())

    def __call__(self, x: Tensor) -> Tensor:
        """x (..., F) standardised."""
        if x.shape[-1] != len(self.mean):
            raise ValueError(f"expected {len(self.mean)} features per frame, got {x.shape[-1]}")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device)
        return (x - mean) / std

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Normaliser:
        return cls(list(data["mean"]), list(data["std"]))
