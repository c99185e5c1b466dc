"""Forecaster: a recurrent encoder over the lookback window and a direct multi-step head or a
decoder (autoregressive, optionally attending over the encoder states), with per-window
instance normalisation and point, quantile or Gaussian outputs.

    B: batch, L: lookback steps, H: horizon steps, C: target series, P: past-only covariates,
    K: known-future features (given for the lookback and the horizon), D: hidden size,
    Q: outputs per value (1 point, len(quantiles), or 2 for the Gaussian's mean and std)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from rnnkit.forecast.options import quantiles as quantile_list
from rnnkit.layers import LAYERS
from rnnkit.regularisers import Dropout
from rnnkit.train.options import fraction, option, positive_int, spelled

ARCHS = ("direct", "seq2seq", "attention")
HEADS = ("point", "quantile", "gaussian")
LOSSES = ("mse", "mae")
EPS = 1e-5  # added to the window's standard deviation (instance normalisation)


@dataclass
class ForecasterConfig:
    """Everything needed to rebuild a Forecaster; JSON-able via to_dict / from_dict."""

    targets: int  # C
    horizon: int  # H
    past_features: int = 0  # P: observed covariates, known up to the forecast origin only
    future_features: int = 0  # K: known in advance (calendar features), lookback and horizon
    arch: str = option(  # "attention": dot-product (Luong) attention
        "direct",
        "direct: one linear map from the encoder's last state to the whole horizon; seq2seq: "
        "an autoregressive decoder; attention: the decoder attends over the encoder states",
        choices=ARCHS,
    )
    cell: str = option("gru", "", choices=tuple(LAYERS))
    hidden: int = option(128, "hidden size", type=positive_int, metavar="N")  # D
    layers: int = option(2, "stacked layers", type=positive_int, metavar="N")
    dropout: float = option(  # between layers and before the head
        0.1, "", type=fraction, metavar="P"
    )
    instance_norm: bool = option(  # each window's targets scaled by their lookback mean, std
        True,
        "do not scale each window by its own lookback mean and std",
        flag="--no-instance-norm",
        action="store_false",
    )
    head: str = "point"  # "point" (loss: mse | mae), "quantile" (pinball), "gaussian" (NLL)
    loss: str = option("mse", "of point forecasts", choices=LOSSES)  # of the point head
    quantiles: list[float] = option(  # of the quantile head, increasing
        help="forecast these quantiles with the pinball loss (e.g. 0.1,0.5,0.9)",
        factory=list,
        type=quantile_list,
        metavar="Q,Q,...",
    )
    teacher_forcing: bool = option(  # decoders; a model trained so drifts when alone
        False,
        "seq2seq/attention: train the decoder on the true previous values rather than on its "
        "own forecasts (faster; the forecasts then drift more)",
        action="store_true",
    )

    def __post_init__(self):
        for key, allowed in (("arch", ARCHS), ("head", HEADS), ("loss", LOSSES)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.cell not in LAYERS:
            raise ValueError(f"cell must be one of {tuple(LAYERS)}, got {self.cell!r}")
        for key in ("targets", "horizon", "hidden", "layers"):
            _check_int(key, getattr(self, key), 1)
        for key in ("past_features", "future_features"):
            _check_int(key, getattr(self, key), 0)
        if isinstance(self.dropout, bool) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a float in [0, 1), got {self.dropout!r}")
        self.quantiles = [float(q) for q in self.quantiles]
        if self.head == "quantile":
            q = self.quantiles
            if not q or any(not 0 < v < 1 for v in q) or any(a >= b for a, b in zip(q, q[1:])):
                raise ValueError(
                    f"quantiles must be increasing values in (0, 1), e.g. 0.1,0.5,0.9; got {q}"
                )
        elif self.quantiles:
            raise ValueError(f"quantiles are for the quantile head, not head={self.head!r}")
        if not isinstance(self.teacher_forcing, bool):
            raise TypeError(f"teacher_forcing must be a bool, got {self.teacher_forcing!r}")
        if self.teacher_forcing and self.arch == "direct":
            raise ValueError(
                f"{spelled('teacher_forcing', '--teacher-forcing')} is for the decoders "
                f"({spelled('arch', '--arch')} seq2seq or attention)"
            )

    @property
    def outputs(self) -> int:
        """Q."""
        return {"point": 1, "quantile": len(self.quantiles), "gaussian": 2}[self.head]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ForecasterConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown forecaster config keys: {sorted(unknown)}")
        return cls(**data)


def _check_int(key: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{key} must be an int >= {low}, got {value!r}")


class Forecaster(nn.Module):
    """The next H values of C series from the last L steps.

        mu, sigma = mean and std of y over the lookback            (B, 1, C)   instance_norm
        h_1..h_L = encoder([(y - mu) / sigma, x, f])              (B, L, D)
        direct:    z = W [h_L, f_{L+1..L+H}] + b                  (B, H, C, Q)
        seq2seq:   s_j = decoder([y_{j-1}, f_j], s_{j-1}), s_0 = the encoder's final state,
                   y_0 = the last observed value; y_{j-1} is the decoder's own point
                   forecast (in training too, so it learns to run alone), or with
                   teacher_forcing the true value in training
        attention: a_j = softmax_l(s_j . W_a h_l), z_j = W [s_j, sum_l a_j,l h_l] + b
        forecast = z * sigma + mu (the Gaussian's std: softplus(z) * sigma); the quantile
                   head's Q values are sorted (rearrangement: quantiles never cross, and
                   sorting never raises the pinball loss)

    Call contract: `output, loss = model(inputs, targets)`: inputs = (y (B, L, C),
    x (B, L, P), f (B, L + H, K)), P and K possibly 0; targets the future values (B, H, C) or
    None. output (B, H, C) for the point head, (B, H, C, Q) for the quantile head and
    (B, H, C, 2) (mean, std) for the Gaussian one; the loss is on the inputs' scale.
    """

    def __init__(self, targets: int, horizon: int, **options):
        super().__init__()
        self.config = c = ForecasterConfig(targets, horizon, **options)
        layer = LAYERS[c.cell]
        drop = c.dropout if c.layers > 1 else 0.0
        n_in = c.targets + c.past_features + c.future_features
        self.encoder = layer(n_in, c.hidden, c.layers, batch_first=True, dropout=drop)
        self.drop = Dropout(c.dropout)
        per_step = c.targets * c.outputs
        if c.arch == "direct":
            self.head = nn.Linear(c.hidden + c.horizon * c.future_features, c.horizon * per_step)
        else:
            n_dec = c.targets + c.future_features
            self.decoder = layer(n_dec, c.hidden, c.layers, batch_first=True, dropout=drop)
            if c.arch == "attention":
                self.attend = nn.Linear(c.hidden, c.hidden, bias=False)  # W_a
            self.head = nn.Linear(c.hidden * (2 if c.arch == "attention" else 1), per_step)

    @classmethod
    def from_config(cls, config: ForecasterConfig | dict) -> Forecaster:
        if isinstance(config, dict):
            config = ForecasterConfig.from_dict(config)
        return cls(**config.to_dict())

    def forward(self, inputs, targets: Tensor | None = None):
        """(forecast, loss or None); see the class docstring for the shapes."""
        y, x, f = self._check_inputs(inputs)
        c = self.config
        L = y.shape[1]
        mu, sigma = self._norm_stats(y)  # (B, 1, C) each
        y_n = (y - mu) / sigma  # (B, L, C)
        enc_in = torch.cat([y_n, x, f[:, :L]], dim=-1)  # (B, L, C + P + K)
        h, state = self.encoder(enc_in)  # (B, L, D)
        f_future = f[:, L:]  # (B, H, K)
        if c.arch == "direct":
            z = self._direct(h, f_future)  # (B, H, C * Q)
        elif targets is not None and self.training and c.teacher_forcing:
            y_prev = torch.cat([y_n[:, -1:], (targets[:, :-1] - mu) / sigma], dim=1)  # (B, H, C)
            s, _ = self.decoder(torch.cat([y_prev, f_future], dim=-1), state)  # (B, H, D)
            z = self._decoder_head(s, h)  # (B, H, C * Q)
        else:
            z = self._decode(h, state, y_n[:, -1], f_future, mu, sigma)  # (B, H, C * Q)
        z = z.view(*z.shape[:2], c.targets, c.outputs)  # (B, H, C, Q)
        if c.head == "quantile":
            z = z.sort(dim=-1).values
        out = self._denormalise(z, mu, sigma)
        if targets is None:
            return out, None
        if targets.shape != (y.shape[0], c.horizon, c.targets):
            raise ValueError(
                f"targets must be (B, H, C) = ({y.shape[0]}, {c.horizon}, {c.targets}), "
                f"got {tuple(targets.shape)}"
            )
        return out, self._loss(out, targets)

    def point(self, output: Tensor) -> Tensor:
        """The point forecast (B, H, C) of an output: itself, the median (the quantile nearest
        0.5) or the Gaussian's mean."""
        c = self.config
        if c.head == "point":
            return output
        if c.head == "gaussian":
            return output[..., 0]
        k = min(range(len(c.quantiles)), key=lambda i: abs(c.quantiles[i] - 0.5))
        return output[..., k]

    # ---- pieces of the forward

    def _norm_stats(self, y: Tensor) -> tuple[Tensor, Tensor]:
        if not self.config.instance_norm:
            one = torch.ones_like(y[:, :1])
            return torch.zeros_like(one), one
        mu = y.mean(1, keepdim=True).detach()  # (B, 1, C)
        sigma = (y.var(1, keepdim=True, unbiased=False) + EPS).sqrt().detach()  # (B, 1, C)
        return mu, sigma

    def _direct(self, h: Tensor, f_future: Tensor) -> Tensor:
        last = self.drop(h[:, -1])  # (B, D)
        z = self.head(torch.cat([last, f_future.flatten(1)], dim=-1))  # (B, H * C * Q)
        return z.view(h.shape[0], self.config.horizon, -1)  # (B, H, C * Q)

    def _decoder_head(self, s: Tensor, h: Tensor) -> Tensor:
        """z (B, H, C * Q) from decoder states s (B, H, D), attending over h (B, L, D)."""
        if self.config.arch == "attention":
            scores = s @ self.attend(h).transpose(1, 2)  # (B, H, L): s_j . W_a h_l
            context = scores.softmax(-1) @ h  # (B, H, D)
            s = torch.cat([s, context], dim=-1)  # (B, H, 2D)
        return self.head(self.drop(s))

    def _decode(self, h, state, y_last, f_future, mu, sigma) -> Tensor:
        """Autoregressive decoding, one step at a time through the core's stepping API."""
        c = self.config
        y_prev, zs = y_last, []  # (B, C): normalised
        for j in range(c.horizon):
            s, state = self.decoder.step(torch.cat([y_prev, f_future[:, j]], dim=-1), state)
            z = self._decoder_head(s.unsqueeze(1), h)  # (B, 1, C * Q)
            zs.append(z)
            z = z.view(-1, 1, c.targets, c.outputs)
            out = self._denormalise(z.sort(dim=-1).values if c.head == "quantile" else z, mu, sigma)
            y_prev = ((self.point(out) - mu) / sigma).squeeze(1)  # (B, C)
        return torch.cat(zs, dim=1)  # (B, H, C * Q)

    def _denormalise(self, z: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
        """(B, H, C, Q) on the normalised scale -> the output on the inputs' scale."""
        mu, sigma = mu.unsqueeze(-1), sigma.unsqueeze(-1)  # (B, 1, C, 1)
        c = self.config
        if c.head == "gaussian":
            mean = z[..., :1] * sigma + mu
            std = (nn.functional.softplus(z[..., 1:]) + EPS) * sigma
            return torch.cat([mean, std], dim=-1)  # (B, H, C, 2)
        out = z * sigma + mu  # (B, H, C, Q)
        return out.squeeze(-1) if c.head == "point" else out

    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        c = self.config
        if c.head == "point":
            diff = out - y
            return diff.pow(2).mean() if c.loss == "mse" else diff.abs().mean()
        if c.head == "quantile":
            q = out.new_tensor(c.quantiles)  # (Q,)
            diff = y.unsqueeze(-1) - out  # (B, H, C, Q)
            return torch.maximum(q * diff, (q - 1) * diff).mean()
        mean, std = out[..., 0], out[..., 1]
        return (std.log() + 0.5 * ((y - mean) / std).pow(2) + 0.5 * math.log(2 * math.pi)).mean()

    def _check_inputs(self, inputs) -> tuple[Tensor, Tensor, Tensor]:
        c = self.config
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 3):
            raise TypeError(
                "inputs must be (y (B, L, C), x (B, L, P), f (B, L + H, K)), "
                f"got {type(inputs).__name__}"
            )
        y, x, f = inputs
        if not all(isinstance(t, Tensor) and t.dim() == 3 for t in (y, x, f)):
            raise ValueError("inputs y, x and f must be 3-D tensors (B, time, features)")
        B, L, _ = y.shape
        want = {
            "y": (y, (B, L, c.targets)),
            "x": (x, (B, L, c.past_features)),
            "f": (f, (B, L + c.horizon, c.future_features)),
        }
        for name, (t, shape) in want.items():
            if tuple(t.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
        return y, x, f
