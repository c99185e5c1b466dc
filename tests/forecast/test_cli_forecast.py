"""Tests for `rnnkit forecast train | predict | eval`: a small hourly series learnt end to end,
predict/eval round trips, no test row reaching training, the built-in series, and every bad
input as one `error:` line with exit status 2."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from budget import SEED, margin
from clirun import assert_one_error_line, rnnkit, snapshot

from rnnkit import forecast
from rnnkit.train import checkpoint

TINY = ["--hidden", "16", "--layers", "1", "--batch", "32", "--lookback", "48", "--horizon", "12"]
N = 900  # rows: 630 train, 90 validation, 180 test (0.7 / 0.8 / all)


def series(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    """An hourly load with a daily cycle driven by a temperature covariate, a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    temp = 10 + 5 * np.sin(2 * math.pi * (t - 6) / 24) + rng.normal(0, 0.2, n)
    load = 50 + 2.0 * temp + 3 * np.sin(2 * math.pi * t / (24 * 7)) + rng.normal(0, 0.3, n)
    return {"load": load, "temp": temp}


def write_csv(path: Path, cols: dict, n: int | None = None, times=None) -> Path:
    n = len(next(iter(cols.values()))) if n is None else n
    start = np.datetime64("2024-01-01T00:00:00")
    times = (
        [str(start + np.timedelta64(h, "h")).replace("T", " ") for h in range(n)]
        if times is None
        else times
    )
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["date", *cols])
        for k in range(n):
            w.writerow(
                [
                    times[k],
                    *(
                        cols[c][k] if isinstance(cols[c][k], str) else f"{cols[c][k]:.5f}"
                        for c in cols
                    ),
                ]
            )
    return path


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("series") / "load.csv", series())


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_file) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "load"
    code, stdout, err = rnnkit(
        "forecast", "train", "--data", data_file, "--target", "load", "--covariates", "temp",
        "--calendar", *TINY, "--epochs", "8", "--lr", "0.005", "--seed", SEED, "--json",
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    return out, json.loads(stdout)


def test_train_beats_the_naive_baselines_and_writes_a_self_contained_run(run):
    out, s = run
    t = s["test"]
    assert t["windows"] == 180 - 12 + 1  # every stride-1 window of the test rows
    assert set(t) == {"windows", "model", "naive", "seasonal_naive", "linear"}
    for name in ("naive", "seasonal_naive"):
        ratio = t["model"]["scaled"]["mse"] / t[name]["scaled"]["mse"]
        assert margin(f"mse / {name}'s", ratio, 1.0) < 1.0, (name, t)
    for scale in ("scaled", "original"):
        assert set(t["model"][scale]) >= {"mse", "mae", "rmse", "mape", "smape"}
    assert (out / "best").is_dir() and (out / "last").is_dir() and (out / "metrics.csv").exists()
    ckpt = checkpoint.load(out / "best")
    assert ckpt.config["task"] == "forecast"
    assert ckpt.config["data"]["ends"] == [630, 720, 900]
    assert ckpt.config["data"]["season"] == 24  # hourly data
    assert ckpt.vocab["scalers"]["y"]["kind"] == "standard"


def test_eval_matches_the_training_summary(run, data_file):
    out, s = run
    code, stdout, err = rnnkit("forecast", "eval", out, "--data", data_file, "--json")
    assert code == 0, err
    result = json.loads(stdout)
    for name in ("model", "naive", "seasonal_naive", "linear"):
        for scale in ("scaled", "original"):
            for metric, value in s["test"][name][scale].items():
                assert result[name][scale][metric] == pytest.approx(value, rel=1e-5), name
    code, table, err = rnnkit("forecast", "eval", out, "--data", data_file)
    assert code == 0, err
    assert "seasonal_naive" in table and "backtest over 169 test windows" in table


def test_eval_reads_the_training_data_when_given_none(run):
    out, s = run
    code, stdout, err = rnnkit("forecast", "eval", out, "--json")
    assert code == 0, err
    assert json.loads(stdout)["model"]["scaled"]["mse"] == pytest.approx(
        s["test"]["model"]["scaled"]["mse"], rel=1e-5
    )


def test_predict_writes_the_next_horizon_as_csv_and_a_plot(run, data_file, tmp_path):
    out, _ = run
    csv_out, png = tmp_path / "next.csv", tmp_path / "next.png"
    code, stdout, err = rnnkit(
        "forecast", "predict", out, "--data", data_file, "--output", csv_out, "--plot", png
    )
    assert code == 0, err
    rows = list(csv.reader(csv_out.open()))
    assert rows[0] == ["time", "load"]
    assert [r[0] for r in rows[1:3]] == ["2024-02-07 12:00:00", "2024-02-07 13:00:00"]
    assert len(rows) == 1 + 12
    values = np.array([float(r[1]) for r in rows[1:]])
    load = series()["load"]
    assert load.min() - 5 < values.min() and values.max() < load.max() + 5  # the load's scale
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, stdout, err = rnnkit("forecast", "predict", out, "--data", data_file, "--json")
    assert code == 0, err
    printed = json.loads(stdout)
    assert printed["columns"] == ["time", "load"]
    np.testing.assert_allclose([r[1] for r in printed["rows"]], values, rtol=1e-5)


def test_python_api_round_trip(run, data_file):
    out, s = run
    trained = forecast.load(out)
    result = trained.evaluate(trained.read(str(data_file)))
    assert result["model"]["scaled"]["mse"] == pytest.approx(
        s["test"]["model"]["scaled"]["mse"], rel=1e-5
    )
    p = trained.predict(trained.read(str(data_file), split=False))
    assert p["point"].shape == (12, 1) and p["interval"] is None


def test_no_test_row_reaches_training(data_file, tmp_path):
    """Rows after the validation end scrambled: the same scalers, weights and validation."""
    cols = series()
    scrambled = {k: v.copy() for k, v in cols.items()}
    scrambled["load"][720:] = 1e4 * np.random.default_rng(1).standard_normal(N - 720)
    other = write_csv(tmp_path / "scrambled.csv", scrambled)
    summaries, states = [], []
    for name, path in (("a", data_file), ("b", other)):
        code, stdout, err = rnnkit(
            "forecast", "train", "--data", path, "--target", "load", *TINY, "--max-steps", "6",
            "--eval-every", "3", "--json", "--out", tmp_path / name,
        )  # fmt: skip
        assert code == 0, err
        summaries.append(json.loads(stdout))
        states.append(checkpoint.load(tmp_path / name / "best"))
    assert summaries[0]["best_valid_mse"] == summaries[1]["best_valid_mse"]
    assert states[0].vocab == states[1].vocab  # scalers fitted on the training rows only
    for key, value in states[0].model_state.items():
        assert value.equal(states[1].model_state[key]), key
    assert summaries[0]["test"]["model"] != summaries[1]["test"]["model"]  # the test rows differ


def test_quantile_run_reports_coverage_and_predicts_an_interval(data_file, tmp_path):
    out = tmp_path / "q"
    code, stdout, err = rnnkit(
        "forecast", "train", "--data", data_file, "--target", "load", *TINY, "--max-steps", "8",
        "--quantiles", "0.1,0.5,0.9", "--json", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    coverage = json.loads(stdout)["test"]["model"]["coverage"]
    assert list(coverage) == ["0.1-0.9"] and 0 <= coverage["0.1-0.9"] <= 1
    code, stdout, err = rnnkit("forecast", "predict", out, "--json")
    assert code == 0, err
    printed = json.loads(stdout)
    assert printed["columns"] == ["time", "load", "load_lower", "load_upper"]


@pytest.mark.parametrize("arch", ["seq2seq", "attention"])
def test_decoder_architectures_train_and_predict(arch, data_file, tmp_path):
    out = tmp_path / arch
    code, stdout, err = rnnkit(
        "forecast", "train", "--data", data_file, "--target", "load", "--calendar", *TINY,
        "--arch", arch, "--gaussian", "--max-steps", "4", "--json", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert "coverage" in json.loads(stdout)["test"]["model"]
    code, stdout, err = rnnkit("forecast", "predict", out)
    assert code == 0, err
    assert stdout.splitlines()[0].split("\t") == ["time", "load", "load_lower", "load_upper"]


def test_train_without_data_uses_the_builtin_series(tmp_path):
    pytest.importorskip("vega_datasets")
    out = tmp_path / "seattle"
    code, stdout, err = rnnkit(
        "forecast", "train", "--hidden", "8", "--layers", "1", "--max-steps", "2", "--json",
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    s = json.loads(stdout)
    assert s["test"]["windows"] > 0 and s["lookback"] == 96 and s["horizon"] == 24
    assert "Seattle" in err
    code, stdout, err = rnnkit("forecast", "predict", out)
    assert code == 0, err
    assert stdout.splitlines()[1].startswith("2016-01-01")  # the day after the last row


def test_a_directory_holding_a_run_is_not_overwritten(run, data_file):
    out, _ = run
    before = snapshot(out)
    code, _, err = rnnkit(
        "forecast", "train", "--data", data_file, "--target", "load", "--out", out
    )
    assert_one_error_line(code, err, "already holds a training run")
    assert snapshot(out) == before


def bad_file(tmp_path: Path, kind: str) -> Path:
    cols = series(200)
    path = tmp_path / f"{kind}.csv"
    if kind == "missing":
        load = [f"{v:.5f}" for v in cols["load"]]
        load[5] = load[17] = ""
        return write_csv(path, {"load": load, "temp": cols["temp"]})
    if kind == "text":
        load = [f"{v:.5f}" for v in cols["load"]]
        load[9] = "n/a"
        return write_csv(path, {"load": load, "temp": cols["temp"]})
    start = np.datetime64("2024-01-01T00:00:00")
    times = [str(start + np.timedelta64(h, "h")).replace("T", " ") for h in range(200)]
    if kind == "duplicate":
        times[50] = times[49]
    if kind == "unsorted":
        times[50], times[51] = times[51], times[50]
    return write_csv(path, cols, times=times)


@pytest.mark.parametrize(
    "kind,extra,match",
    [
        ("missing", [], "2 missing value(s)"),
        ("text", [], "line 11: column 'load' holds 'n/a', not a number"),
        ("duplicate", [], "lines 51 and 52 have the same time"),
        ("unsorted", [], "line 53: the time 2024-01-03T02:00:00 comes before"),
        ("fine", ["--target", "power"], "load, temp"),  # the columns that exist
        ("fine", ["--covariates", "wind"], "no column 'wind'; its columns are: date, load, temp"),
        ("fine", ["--lookback", "190"], "hold no window"),
        (
            "fine",
            ["--train-end", "2030-01-01", "--valid-end", "0.9"],
            "train_end=200, valid_end=180",
        ),
        ("fine", ["--quantiles", "0.9,0.1"], "increasing"),
        ("fine", ["--quantiles", "0.1,0.9", "--gaussian"], "choose one"),
        ("fine", ["--teacher-forcing"], "--teacher-forcing is for the decoders"),
        ("fine", ["--horizon", "0"], "--horizon: expected a positive integer, got '0'"),
    ],
)
def test_bad_train_input_is_one_error_line(tmp_path, kind, extra, match):
    path = bad_file(tmp_path, kind)
    target = [] if "--target" in extra else ["--target", "load"]
    code, _, err = rnnkit(
        "forecast", "train", "--data", path, *target, "--hidden", "4", "--lookback", "24",
        "--horizon", "6", "--max-steps", "1", *extra, "--out", tmp_path / "run",
    )  # fmt: skip
    assert_one_error_line(code, err, match)


def test_fill_interpolates_the_missing_values(tmp_path):
    path = bad_file(tmp_path, "missing")
    code, stdout, err = rnnkit(
        "forecast", "train", "--data", path, "--target", "load", "--fill", "--hidden", "4",
        "--lookback", "24", "--horizon", "6", "--max-steps", "1", "--json",
        "--out", tmp_path / "run",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["test"]["windows"] > 0


def test_missing_and_unreadable_files(tmp_path, run):
    out, _ = run
    code, _, err = rnnkit(
        "forecast",
        "train",
        "--data",
        tmp_path / "nope.csv",
        "--target",
        "x",
        "--out",
        tmp_path / "r",
    )
    assert_one_error_line(code, err, "nope.csv")
    short = write_csv(tmp_path / "short.csv", series(30))
    code, _, err = rnnkit("forecast", "predict", out, "--data", short)
    assert_one_error_line(code, err, "lookback")
    no_temp = write_csv(tmp_path / "no_temp.csv", {"load": series()["load"]})
    code, _, err = rnnkit("forecast", "eval", out, "--data", no_temp)
    assert_one_error_line(code, err, "temp")
    code, _, err = rnnkit("forecast", "predict", tmp_path)
    assert_one_error_line(code, err)


def test_a_checkpoint_of_another_task_is_refused(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("abcdefgh " * 300, encoding="utf-8")
    code, _, err = rnnkit(
        "textgen", "train", "--data", text, "--hidden", "8", "--max-steps", "1", "--batch", "2",
        "--bptt", "8", "--out", tmp_path / "lm",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = rnnkit("forecast", "eval", tmp_path / "lm")
    assert_one_error_line(code, err, "not a forecast checkpoint")


def test_help_lists_the_verbs_and_the_defaults():
    code, stdout, _ = rnnkit("forecast", "--help")
    assert code == 0 and all(v in stdout for v in ("train", "predict", "eval"))
    code, stdout, _ = rnnkit("forecast", "train", "--help")
    assert code == 0
    assert "(default: 96)" in stdout and "(default: 24)" in stdout and "--quantiles" in stdout
