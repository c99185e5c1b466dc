"""`rnnkit forecast export`: a trained forecaster that reads and writes the data's own units
(`OriginalUnits`: the run's scalers inside the model), with its sidecar (columns, lookback,
horizon, output layout, calendar features) and the run's test windows for the parity check.

    B: batch, L: lookback, H: horizon, C: targets, P: covariates, K: calendar features,
    Q: outputs per value (quantiles, or the Gaussian's mean and std)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit import forecast
from rnnkit.export.task import Export, batches, check_cells, tensor
from rnnkit.forecast.scaler import Scaler
from rnnkit.forecast.windows import window_starts

BATCH = 64  # windows per held-back batch
CALENDAR = (
    "name_sin, name_cos = sin, cos(2 pi v / period) of each row's time (UTC), for v: hour, the "
    "hours since midnight with minutes as a fraction (period 24); dayofweek, Monday 0 to "
    "Sunday 6 (period 7); dayofyear, the days since 1 January, 0 on 1 January (period 365.25)"
)


class OriginalUnits(nn.Module):
    """The Forecaster on the data's own units: y (B, L, C) and x (B, L, P) are scaled with the
    run's scalers, (v - shift) / scale, f (B, L + H, K) goes in as it is, and the forecast is
    scaled back, z * scale + shift (a Gaussian's std: z * scale). Inputs: y, then x when P > 0,
    then f when K > 0. Output: (B, H, C) points, (B, H, C, Q) quantiles or (B, H, C, 2) mean, std.
    """

    def __init__(self, model: nn.Module, y_scaler: Scaler, x_scaler: Scaler | None):
        super().__init__()
        self.model, c = model, model.config
        self.has_x, self.has_f = c.past_features > 0, c.future_features > 0
        x_shift = x_scaler.shift if x_scaler is not None else np.zeros(0)
        x_scale = x_scaler.scale if x_scaler is not None else np.ones(0)
        for name, value in (("y_shift", y_scaler.shift), ("y_scale", y_scaler.scale),
                            ("x_shift", x_shift), ("x_scale", x_scale)):  # fmt: skip
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32))

    def forward(self, *inputs: Tensor) -> Tensor:
        y, rest = inputs[0], list(inputs[1:])
        B, L, _ = y.shape
        H = self.model.config.horizon
        x = rest.pop(0) if self.has_x else y.new_zeros(B, L, 0)  # (B, L, P)
        f = rest.pop(0) if self.has_f else y.new_zeros(B, L + H, 0)  # (B, L + H, K)
        y_n = (y - self.y_shift) / self.y_scale  # (B, L, C)
        out, _ = self.model((y_n, (x - self.x_shift) / self.x_scale, f))
        return self._unscale(out)

    def _unscale(self, out: Tensor) -> Tensor:
        head, shift, scale = self.model.config.head, self.y_shift, self.y_scale
        if head == "point":
            return out * scale + shift  # (B, H, C)
        if head == "quantile":
            return out * scale.unsqueeze(-1) + shift.unsqueeze(-1)  # (B, H, C, Q)
        mean, std = out[..., :1], out[..., 1:]  # (B, H, C, 1) each
        return torch.cat([mean * scale.unsqueeze(-1) + shift.unsqueeze(-1),
                          std * scale.unsqueeze(-1)], dim=-1)  # fmt: skip


def build(args: argparse.Namespace) -> tuple[Export, dict]:
    """The forecaster in args.dir as an Export, checked on up to args.limit test windows."""
    trained = forecast.load(args.dir)
    check_cells(trained.model.config.cell)
    windows, source = held_back(args, trained)
    module = OriginalUnits(trained.model, *_scalers(trained)).eval()
    L, H = trained.settings.lookback, trained.model.config.horizon
    names = ["y", *(["x"] if module.has_x else []), *(["f"] if module.has_f else [])]
    batch, lookback = torch.export.Dim("batch", min=1), torch.export.Dim("lookback", min=2)
    dims = {"y": {0: batch, 1: lookback}, "x": {0: batch, 1: lookback},
            "f": {0: batch, 1: lookback + H}}  # fmt: skip
    pick = [0, *([1] if module.has_x else []), *([2] if module.has_f else [])]

    def stack(chunk: list[tuple], keep: int = L) -> tuple[Tensor, ...]:
        """The windows' inputs (the present ones), reading only the last `keep` steps."""
        parts = [torch.stack([w[k] for w in chunk]) for k in pick]
        return tuple(p[:, -(keep + H) :] if k == 2 else p[:, -keep:] for p, k in zip(parts, pick))

    shorter = max(2, L // 2)  # the export takes any lookback: checked at another one too
    held = batches(windows, BATCH, stack) + [stack(windows[:BATCH], keep=shorter)]
    export = Export(
        module=module,
        example=stack((windows * 2)[:2]),
        dynamic_shapes=(tuple(dims[n] for n in names),),  # forward(*inputs)
        input_names=names,
        output_names=["forecast"],
        sidecar=sidecar(trained, names),
        held_back=held,
        what=f"{len(windows)} windows ({source})",
    )
    return export, trained.info


def _scalers(trained: forecast.Trained) -> tuple[Scaler, Scaler | None]:
    x = trained.scalers.get("x")
    return Scaler.from_dict(trained.scalers["y"]), Scaler.from_dict(x) if x else None


def held_back(args: argparse.Namespace, trained: forecast.Trained) -> tuple[list, str]:
    """([(y (L, C), x (L, P), f (L + H, K)) in the data's units], where from): at most
    args.limit test windows of --data or the run's series, spread evenly over its test rows."""
    path = args.data or trained.settings.path
    if args.data is None and path is not None and not Path(path).exists():
        raise ValueError(f"the run's series, {path}, is not there; give it with --data FILE.csv")
    reading = {"time_column": args.time_column, "encoding": args.encoding, "fill": args.fill}
    reading["gaps"] = args.gaps
    data = trained.read(args.data, split=True, **reading)
    L, H = trained.settings.lookback, trained.model.config.horizon
    try:
        starts = window_starts(data.ends[1], data.ends[2], L, H, trained.settings.stride)
    except ValueError as exc:
        raise ValueError(f"the test rows: {exc}") from None
    if len(starts) > args.limit:
        starts = starts[np.linspace(0, len(starts) - 1, args.limit).round().astype(np.int64)]
    (y, x, f), _ = data.gather(starts, L, H)  # scaled: back to the data's units
    y = torch.from_numpy(data.y_scaler.inverse(y.double().numpy())).float()
    if data.x_scaler is not None:
        x = torch.from_numpy(data.x_scaler.inverse(x.double().numpy())).float()
    where = "the run's series" if args.data is None else args.data
    return list(zip(y, x, f)), f"test rows of {where}"


def sidecar(trained: forecast.Trained, names: list[str]) -> dict:
    """What a user needs to build the inputs from a series and read the forecast."""
    s, c = trained.settings, trained.model.config
    out_shape = ["batch", c.horizon, c.targets] + ([c.outputs] if c.head != "point" else [])
    inputs = {
        "y": tensor("y", ["batch", "lookback", c.targets], "float32",
                    f"the last lookback values of {', '.join(s.target)}, oldest first, in the "
                    "data's units"),
        "x": tensor("x", ["batch", "lookback", c.past_features], "float32",
                    f"{', '.join(s.covariates)} over the same rows, in the data's units"),
        "f": tensor("f", ["batch", f"lookback + {c.horizon}", c.future_features], "float32",
                    "calendar_features of the lookback rows and of the horizon rows forecast"),
    }  # fmt: skip
    layout = {
        "point": "the point forecast",
        "quantile": "the quantiles (last axis) listed in quantiles",
        "gaussian": "the Gaussian's mean and standard deviation (last axis)",
    }[c.head]
    return {
        "task": "forecast",
        "inputs": [inputs[n] for n in names],
        "outputs": [
            tensor(
                "forecast",
                out_shape,
                "float32",
                f"the next horizon values of the targets: {layout}, in the data's units",
            )
        ],
        "targets": list(s.target),
        "covariates": list(s.covariates),
        "time_column": s.time_column,
        "lookback": s.lookback,
        "horizon": c.horizon,
        "head": c.head,
        "quantiles": list(c.quantiles),
        "calendar_features": list(trained.calendar),
        "calendar": CALENDAR,
        "scalers": trained.scalers,
        "scaling": "inside the model: y and x go in, and the forecast comes out, in the data's "
        "own units; the scalers (v - shift) / scale are listed for reference only",
        "lookback_note": "the model was trained on lookback rows; the export accepts any "
        "lookback of 2 or more",
    }
