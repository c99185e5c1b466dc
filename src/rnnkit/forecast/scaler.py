"""Per-column scaling of a series, fitted on its training rows and saved with a checkpoint
as a JSON-able dict.

    N: rows, C: columns
"""

from __future__ import annotations

import numpy as np

SCALERS = ("standard", "minmax", "none")


class Scaler:
    """Per-column scaling fitted on the training rows only: standard (x - mean) / std, minmax
    (x - min) / (max - min), none."""

    def __init__(self, kind: str = "standard"):
        if kind not in SCALERS:
            raise ValueError(f"unknown scaler {kind!r}; give one of {', '.join(SCALERS)}")
        self.kind = kind
        self.shift: np.ndarray | None = None  # (C,) float64, subtracted
        self.scale: np.ndarray | None = None  # (C,) float64, divided by; never 0

    def __repr__(self) -> str:
        columns = "unfitted" if self.shift is None else f"{len(self.shift)} columns"
        return f"Scaler({self.kind!r}, {columns})"

    def fit(self, x: np.ndarray) -> Scaler:
        """Fit on x (N, C), N >= 1: the population std (ddof=0); a constant column gets scale 1."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"fit needs x of shape (N, C) with N >= 1 rows, got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("fit got NaN or infinite values; fill or drop them first")
        if self.kind == "standard":
            shift, scale = x.mean(axis=0), x.std(axis=0)
        elif self.kind == "minmax":
            shift, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
        else:
            shift, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        constant = np.ptp(x, axis=0) == 0
        self.shift, self.scale = shift, np.where(constant, 1.0, scale)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(x - shift) / scale for x of any shape (..., C); float32 stays float32."""
        x, dtype = self._check(x, "transform")
        return ((x - self.shift) / self.scale).astype(dtype, copy=False)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """x * scale + shift for x of any shape (..., C): scaled values back to the data's units."""
        x, dtype = self._check(x, "inverse")
        return (x * self.scale + self.shift).astype(dtype, copy=False)

    def to_dict(self) -> dict:
        """{"kind", "shift", "scale"} with lists of floats: JSON-able."""
        if self.shift is None:
            raise ValueError("the scaler is not fitted; call fit(x) on the training rows first")
        return {"kind": self.kind, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        if not isinstance(d, dict) or not {"kind", "shift", "scale"} <= set(d):
            raise ValueError("a scaler dict needs the keys 'kind', 'shift' and 'scale'")
        scaler = cls(d["kind"])
        shift = np.asarray(d["shift"], dtype=np.float64)
        scale = np.asarray(d["scale"], dtype=np.float64)
        if shift.ndim != 1 or shift.shape != scale.shape:
            raise ValueError(
                f"a scaler dict needs 'shift' and 'scale' lists of one length, got "
                f"{shift.shape} and {scale.shape}"
            )
        if not (np.isfinite(shift).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("a scaler dict needs finite shifts and positive finite scales")
        scaler.shift, scaler.scale = shift, scale
        return scaler

    def _check(self, x: np.ndarray, what: str) -> tuple[np.ndarray, np.dtype]:
        if self.shift is None:
            raise ValueError(f"{what} before fit; call fit(x) on the training rows first")
        x = np.asarray(x)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
        if x.ndim == 0 or x.shape[-1] != len(self.shift):
            raise ValueError(
                f"{what} needs x of shape (..., {len(self.shift)}) like the fitted data, "
                f"got {x.shape}"
            )
        return x.astype(np.float64, copy=False), dtype
