"""Reference forecasters that any learned model has to beat: naive, seasonal naive and linear.

Every forecaster maps `past` (W, L, C) to a forecast (W, H, C): W windows, L lookback steps,
H horizon steps, C series. With t the first forecast step of a window, past holds
y[t - L], ..., y[t - 1] and the forecast y_hat[t], ..., y_hat[t + H - 1]; j = 0..H-1:

    naive:           y_hat[t + j] = y[t - 1]
    seasonal_naive:  y_hat[t + j] = y[t - season + (j mod season)],   1 <= season <= L
    linear:          y_hat[t + j] = sum_i A[j, i] y[t - L + i] + b[j],  one (A, b) per series

LinearBaseline fits A (H x L) and b (H) per series c by ridge least squares on the training
windows, penalising A but not b. With X (W x L) the lookback and Y (W x H) the horizon of
series c, x_bar and y_bar their means over the windows, Xc = X - x_bar and Yc = Y - y_bar:

    lambda = ridge * trace(Xc^T Xc) / L        (ridge times W times the mean variance of a step)
    (Xc^T Xc + lambda I) A^T = Xc^T Yc,        b = y_bar - A x_bar

which is the minimiser of |Y - X A^T - 1 b^T|^2 + lambda |A|^2 (centring is how b escapes the
penalty). Only the L x L Gram matrix and the L x H cross products are formed per series.
"""

from __future__ import annotations

import numpy as np

BASELINES = ("naive", "seasonal_naive", "linear")


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _windows(name: str, array: np.ndarray) -> np.ndarray:
    """`array` as float64 of shape (W, steps, C) with every dimension at least 1."""
    out = np.asarray(array, dtype=np.float64)
    if out.ndim != 3 or 0 in out.shape:
        raise ValueError(f"{name} must be a non-empty (W, steps, C) array, got shape {out.shape}")
    return out


def naive(past: np.ndarray, horizon: int) -> np.ndarray:
    """(W, H, C): the last observed value repeated, y_hat[t + j] = y[t - 1]."""
    past = _windows("past", past)
    horizon = _positive_int("horizon", horizon)
    return np.repeat(past[:, -1:, :], horizon, axis=1)


def seasonal_naive(past: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """(W, H, C): the last season of the window repeated,
    y_hat[t + j] = y[t - season + (j mod season)]."""
    past = _windows("past", past)
    horizon = _positive_int("horizon", horizon)
    season = _positive_int("season", season)
    L = past.shape[1]
    if season > L:
        raise ValueError(f"season must be at most the lookback L={L}, got {season}")
    steps = L - season + np.arange(horizon) % season  # index into the lookback, per j
    return past[:, steps, :]


class LinearBaseline:
    """A linear map from the lookback window to the horizon, one per series, fitted by ridge
    least squares on the training windows: y_hat[t + j] = sum_i A[j, i] y[t - L + i] + b[j].

    `ridge` is relative: lambda = ridge * trace(Xc^T Xc) / L with Xc the lookback centred over
    the windows, so it does not depend on the scale of the series or on W. After `fit`,
    `A` is (C, H, L) and `b` is (C, H).
    """

    def __init__(self, ridge: float = 1e-3) -> None:
        number = isinstance(ridge, (int, float, np.integer, np.floating)) and not isinstance(
            ridge, bool
        )
        if not (number and np.isfinite(ridge) and ridge >= 0):
            raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
        self.ridge = float(ridge)
        self.A: np.ndarray | None = None
        self.b: np.ndarray | None = None

    def fit(self, past: np.ndarray, future: np.ndarray) -> LinearBaseline:
        """Fit (A, b) per series on past (W, L, C) and future (W, H, C); returns self."""
        past = _windows("past", past)
        future = _windows("future", future)
        W, L, C = past.shape
        if future.shape[0] != W or future.shape[2] != C:
            raise ValueError(
                f"future must be (W={W}, H, C={C}) like past {past.shape}, got {future.shape}"
            )
        for name, array in (("past", past), ("future", future)):
            if not np.isfinite(array).all():
                raise ValueError(f"{name} must be finite, got NaN or inf")
        H = future.shape[1]
        A, b = np.empty((C, H, L)), np.empty((C, H))
        for c in range(C):
            A[c], b[c] = self._fit_series(past[:, :, c], future[:, :, c])
        self.A, self.b = A, b
        return self

    def _fit_series(self, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A, b) for one series: X (W, L) lookbacks, Y (W, H) horizons."""
        x_bar, y_bar = X.mean(axis=0), Y.mean(axis=0)
        Xc = X - x_bar  # a fresh (W, L) array: the only large temporary
        gram = Xc.T @ Xc  # (L, L)
        cross = Xc.T @ Y  # (L, H); Xc^T 1 = 0, so centring Y too changes nothing
        lam = self.ridge * np.trace(gram) / X.shape[1]
        if lam > 0:
            gram[np.diag_indices_from(gram)] += lam
            A_t = np.linalg.solve(gram, cross)
        else:  # no penalty, or a series constant over the windows: minimum-norm solution
            A_t = np.linalg.lstsq(gram, cross, rcond=None)[0]
        return A_t.T, y_bar - x_bar @ A_t

    def predict(self, past: np.ndarray) -> np.ndarray:
        """(W, H, C): the fitted map applied to past (W, L, C) with the fitted L and C."""
        if self.A is None or self.b is None:
            raise ValueError("LinearBaseline must be fitted before predict, got an unfitted one")
        past = _windows("past", past)
        C, H, L = self.A.shape
        if past.shape[1:] != (L, C):
            raise ValueError(f"past must be (W, L={L}, C={C}) as fitted, got {past.shape}")
        out = np.empty((past.shape[0], H, C))
        for c in range(C):
            out[:, :, c] = past[:, :, c] @ self.A[c].T + self.b[c]
        return out
