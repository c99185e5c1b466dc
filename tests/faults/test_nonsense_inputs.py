"""Silent nonsense (issue 22, item 6): a series with a hole in its time index or a value beyond
float32, audio far outside the training durations and empty text are refused, or answered with
a warning, as the user chooses; never trained on or answered without a word."""

import json

import numpy as np
import pytest
from clirun import assert_one_error_line, rnnkit

from rnnkit.forecast.series import read_series

FIXTURES = __import__("pathlib").Path(__file__).parents[1] / "fixtures" / "checkpoints"
TINY_FORECAST = ["--target", "load", "--lookback", "24", "--horizon", "3", "--hidden", "4",
                 "--batch", "8", "--max-steps", "2"]  # fmt: skip


def hourly(path, hours: np.ndarray, values=None):
    """A CSV of `values` (default: a sine) at the given hours after 2024-01-01 00:00."""
    times = np.datetime64("2024-01-01T00:00", "s") + hours.astype("timedelta64[h]")
    values = np.sin(hours / 5.0) if values is None else values
    rows = [f"{str(t).replace('T', ' ')},{v}" for t, v in zip(times, values)]
    path.write_text("date,load\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def gapped(tmp_path):
    """200 hours, 100 hours missing, 100 more: the gap runs from line 201 to line 202."""
    return hourly(tmp_path / "gap.csv", np.concatenate([np.arange(200), np.arange(300, 400)]))


def test_a_gap_is_refused_naming_it_and_the_flag(gapped, tmp_path):
    out = tmp_path / "run"
    code, _, err = rnnkit("forecast", "train", "--data", gapped, *TINY_FORECAST, "--out", out)
    assert_one_error_line(code, err, "the times jump from 2024-01-09 07:00:00 (line 201) to ")
    assert "2024-01-13 12:00:00 (line 202), about 100 missing steps of 1 hour" in err
    assert "--gaps fill" in err and "--gaps keep" in err
    assert not out.exists()


def test_gaps_fill_puts_the_missing_times_back(gapped, tmp_path):
    frame = read_series(gapped, columns=["load"], gaps="fill")
    assert len(frame) == 400 and frame.times_filled == 100
    steps = np.diff(frame.times).astype(np.int64)
    assert (steps == 3600).all()
    inside = frame.values["load"][200:300]  # a straight line between the gap's two ends
    ends = np.sin(np.array([199, 300]) / 5.0)
    np.testing.assert_allclose(inside, np.interp(np.arange(200, 300), [199, 300], ends))
    code, out, err = rnnkit("forecast", "train", "--data", gapped, *TINY_FORECAST, "--gaps",
                            "fill", "--json", "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    assert "100 missing times filled in 1 gap(s)" in err
    assert json.loads(out)["step"] == 2


def test_gaps_keep_uses_the_rows_as_they_are(gapped, tmp_path):
    assert len(read_series(gapped, columns=["load"], gaps="keep")) == 300
    code, out, err = rnnkit("forecast", "train", "--data", gapped, *TINY_FORECAST, "--gaps",
                            "keep", "--json", "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    meta = json.loads((tmp_path / "run" / "best" / "checkpoint.json").read_text())
    assert meta["config"]["data"]["gaps"] == "keep"  # predict and eval read as it trained


def test_regular_calendar_steps_are_not_gaps(tmp_path):
    months = [f"2020-{m:02d}-01,{m}" for m in range(1, 13)] + ["2021-01-01,13"]
    path = tmp_path / "monthly.csv"
    path.write_text("date,load\n" + "\n".join(months) + "\n")
    assert len(read_series(path, columns=["load"], gaps="refuse")) == 13
    del months[5]  # June 2020 missing
    path.write_text("date,load\n" + "\n".join(months) + "\n")
    with pytest.raises(ValueError, match="2020-05-01 00:00:00 \\(line 6\\) to 2020-07-01"):
        read_series(path, columns=["load"], gaps="refuse")


def test_a_season_longer_than_the_lookback_is_refused_before_training(tmp_path):
    path = hourly(tmp_path / "s.csv", np.arange(300))
    out = tmp_path / "run"
    code, _, err = rnnkit("forecast", "train", "--data", path, *TINY_FORECAST, "--lookback",
                          "12", "--out", out)  # fmt: skip
    assert_one_error_line(code, err, "period is 24 steps, longer than the lookback (12)")
    assert not out.exists()


def test_a_value_beyond_float32_is_refused_naming_column_and_line(tmp_path):
    values = np.sin(np.arange(100) / 5.0).astype(object)
    values[40] = "1e308"
    path = hourly(tmp_path / "big.csv", np.arange(100), values)
    code, _, err = rnnkit("forecast", "train", "--data", path, *TINY_FORECAST, "--out",
                          tmp_path / "run")  # fmt: skip
    assert_one_error_line(code, err, "big.csv, line 42: column 'load' holds '1e308', beyond")
    assert "float32" in err and not (tmp_path / "run").exists()


def test_an_empty_text_is_an_error_and_an_unknown_one_a_warning():
    code, out, err = rnnkit("classify", "predict", FIXTURES / "classify", "  ")
    assert_one_error_line(code, err, "TEXT is empty; give a text to label")
    assert out == ""
    code, out, err = rnnkit("classify", "predict", FIXTURES / "classify", "qzxv wplk", "great")
    assert code == 0 and len(out.splitlines()) == 2  # both answered
    assert err == "warning: the model knows no word of 'qzxv wplk'; its label is a guess\n"


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    soundfile = pytest.importorskip("soundfile")
    pytest.importorskip("librosa")
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    soundfile.write(folder / "tiny.wav", np.zeros(10, dtype=np.float32), 8000)
    soundfile.write(folder / "long.wav", (0.1 * rng.standard_normal(8000 * 30)), 8000)
    return folder


def test_audio_far_outside_the_training_durations_is_answered_with_a_warning(audio, tmp_path):
    from speech_toys import fake_fsdd

    fake_fsdd(tmp_path / "fsdd", digits=range(2), speakers=("ann",), indices=range(10))
    assert rnnkit("speech", "fsdd-manifest", "--root", tmp_path / "fsdd", "--out",
                  tmp_path / "m")[0] == 0  # fmt: skip
    out = tmp_path / "run"
    code, _, err = rnnkit("speech", "train", "--manifest", tmp_path / "m" / "train.csv",
                          "--hidden", "8", "--layers", "1", "--batch", "4", "--max-steps", "2",
                          "--out", out)  # fmt: skip
    assert code == 0, err
    kept = json.loads((out / "best" / "checkpoint.json").read_text())["vocab"]["durations"]
    assert 0.2 < kept["min"] <= kept["mean"] <= kept["max"] < 0.4  # the tones: 0.25-0.35 s
    normal = tmp_path / "fsdd" / "recordings" / "1_ann_3.wav"
    code, stdout, err = rnnkit("speech", "transcribe", out, audio / "tiny.wav",
                               audio / "long.wav", normal)  # fmt: skip
    assert code == 0 and len(stdout.splitlines()) == 3  # every file answered
    warnings = err.splitlines()
    assert len(warnings) == 2, err
    assert "tiny.wav is 0.01 s long, far shorter than the training utterances" in warnings[0]
    assert "long.wav is 30.0 s long, far longer than the training utterances" in warnings[1]


def test_an_older_speech_checkpoint_warns_from_its_counts(audio):
    code, stdout, err = rnnkit("speech", "transcribe", FIXTURES / "speech", audio / "long.wav")
    assert code == 0 and stdout.startswith(str(audio / "long.wav"))
    assert "far longer than the training utterances" in err
