"""`rnnkit forecast export`: exported forecasters read the series' own units and give what
`forecast predict` gives (quantiles with a covariate in ONNX; a Gaussian with calendar
features as a .pt2 program), built from the CSV and the sidecar alone."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import rnnkit

from rnnkit.forecast.times import calendar_features

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
SERIES = FIXTURES / "inputs" / "forecast_input.csv"  # 72 hourly rows of ETTh2


def last_rows(side: dict, columns: list[str]) -> np.ndarray:
    """(1, lookback, len(columns)) float32: the columns' last lookback values in the CSV."""
    with SERIES.open(newline="") as f:
        rows = list(csv.DictReader(f))[-side["lookback"] :]
    return np.array([[[float(r[c]) for c in columns] for r in rows]], dtype=np.float32)


def predicted(run: Path) -> np.ndarray:
    """`forecast predict --json`'s numbers, (H, columns after the time)."""
    code, out, err = rnnkit("forecast", "predict", run, "--data", SERIES, "--json")
    assert code == 0, err
    return np.array([row[1:] for row in json.loads(out)["rows"]])


def test_a_quantile_forecaster_with_a_covariate_in_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "forecast_attention", run)
    code, out, err = rnnkit("forecast", "export", run, "--data", SERIES)
    assert code == 0, err
    assert "parity: max |onnx - eager| = " in out
    side = json.loads((run / "export" / "model.onnx.json").read_text())
    assert [i["name"] for i in side["inputs"]] == ["y", "x"]
    assert (side["head"], side["quantiles"]) == ("quantile", [0.1, 0.5, 0.9])
    session = ort.InferenceSession(str(run / "export" / "model.onnx"))
    feeds = {"y": last_rows(side, side["targets"]), "x": last_rows(side, side["covariates"])}
    (q,) = session.run(["forecast"], feeds)  # (1, H, 1, 3)
    want = predicted(run)  # (H, 3): OT (the median), OT_lower (0.1), OT_upper (0.9)
    got = q[0, :, 0][:, [1, 0, 2]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_a_gaussian_forecaster_with_calendar_features_as_pt2(tmp_path):
    run = tmp_path / "gauss"
    code, _, err = rnnkit(
        "forecast", "train", "--data", SERIES, "--target", "OT", "--lookback", "8",
        "--horizon", "4", "--calendar", "--gaussian", "--hidden", "4", "--layers", "1",
        "--batch", "8", "--season", "1", "--max-steps", "2", "--out", run,
    )  # fmt: skip
    assert code == 0, err
    code, out, err = rnnkit("forecast", "export", run, "--format", "pt2", "--data", SERIES,
                            "--json")  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert [i["name"] for i in summary["inputs"]] == ["y", "f"]
    assert {L for _, L in summary["parity"]["shapes"]} == {4, 8}  # another lookback checked
    side = json.loads((run / "export" / "model.pt2.json").read_text())
    L, H = side["lookback"], side["horizon"]
    with SERIES.open(newline="") as f:
        times = np.array([r["date"] for r in csv.DictReader(f)], dtype="datetime64[s]")
    ahead = times[-1] + np.arange(1, H + 1) * np.timedelta64(3600, "s")
    f, _ = calendar_features(np.concatenate([times[-L:], ahead]), side["calendar_features"])
    program = torch.export.load(str(run / "export" / "model.pt2")).module()
    with torch.no_grad():
        out = program(torch.from_numpy(last_rows(side, ["OT"])), torch.from_numpy(f[None]))
    mean, std = out[0, :, 0, 0].numpy(), out[0, :, 0, 1].numpy()  # (H,) each
    want = predicted(run)  # (H, 3): OT (the mean), OT_lower, OT_upper (mean -/+ 1.28 std)
    np.testing.assert_allclose(mean, want[:, 0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(mean + 1.2815515655446004 * std, want[:, 2], rtol=1e-5, atol=1e-4)
