"""Tests for `rnnkit classify train | predict | eval`: a tiny sentiment task learnt end to end,
predict/eval round trips, and every bad input as one `error:` line with exit status 2."""

import csv
import json
import random
from pathlib import Path

import pytest
from budget import SEED, margin
from clirun import assert_one_error_line, rnnkit, snapshot

from rnnkit import classify
from rnnkit.train import checkpoint

POSITIVE = ["great", "wonderful", "superb", "loved"]
NEGATIVE = ["awful", "boring", "terrible", "hated"]
FILLER = "the movie plot actors film was and a of it this story scenes music ending".split()
TINY = ["--embed", "16", "--hidden", "16", "--batch", "8", "--min-freq", "1"]


def reviews(n: int, seed: int) -> list[tuple[str, str]]:
    """(text, label): filler words around one sentiment word; the label is its polarity."""
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        label = "pos" if k % 2 else "neg"
        words = rng.choices(FILLER, k=rng.randint(3, 12))
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if k % 2 else NEGATIVE))
        rows.append((" ".join(words).capitalize() + ".", label))
    return rows


def write_csv(path: Path, rows, header=("review", "sentiment")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("sentiment")
    return {
        "train": write_csv(d / "train.csv", reviews(320, 0)),
        "test": write_csv(d / "test.csv", reviews(40, 1)),
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory, files) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "sentiment"
    code, stdout, err = rnnkit(
        "classify", "train", "--train", files["train"], "--test", files["test"],
        "--text-column", "review", "--label-column", "sentiment", "--bidirectional",
        *TINY, "--epochs", "12", "--lr", "0.01", "--valid-fraction", "0.25", "--seed", SEED,
        "--json", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    return out, json.loads(stdout)


def test_train_learns_the_task_and_writes_a_self_contained_run(run):
    out, s = run
    # 25 % held out: the best weights are chosen on 80 texts, not on a handful that a half
    # trained model can already get all right (16 left a 0.7 test accuracy on some seeds)
    assert s["counts"]["train"] == 240 and s["counts"]["valid"] == 80
    assert s["counts"]["test"] == 40 and s["epochs"] == pytest.approx(12)
    assert margin("test accuracy", s["test"]["accuracy"], 0.95) >= 0.95
    assert margin("valid accuracy", s["best_valid_accuracy"], 0.9) >= 0.9
    assert {p.name for p in out.iterdir()} >= {"last", "best", "metrics.csv"}
    ckpt = checkpoint.load(out / "best")
    assert ckpt.config["task"] == "classify" and ckpt.vocab["classes"] == ["neg", "pos"]
    assert ckpt.config["model"]["bidirectional"] is True
    assert "great" in ckpt.vocab["encoder"]["vocab"]["tokens"]


def test_predict_one_text(run):
    out, _ = run
    code, stdout, err = rnnkit("classify", "predict", out, "The ending was superb")
    assert code == 0, err
    label, probs = stdout.strip().split("\t")
    assert label == "pos" and probs.startswith("pos ")
    code, stdout, _ = rnnkit("classify", "predict", out, "Boring film.", "Loved it", "--json")
    first, second = (json.loads(line) for line in stdout.splitlines())
    assert (first["label"], second["label"]) == ("neg", "pos")
    assert sum(first["probabilities"].values()) == pytest.approx(1.0)


def test_predict_a_file_into_a_csv(run, files, tmp_path):
    out, _ = run
    target = tmp_path / "labelled.csv"
    args = ("classify", "predict", out, "--input", files["test"], "--output", target)
    code, stdout, err = rnnkit(*args)
    assert code == 0, err and "40 texts" in stdout
    with target.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    truth = [label for _, label in reviews(40, 1)]
    assert len(rows) == 40 and set(rows[0]) == {"text", "label", "p_neg", "p_pos"}
    assert sum(r["label"] == t for r, t in zip(rows, truth)) >= 38
    before = target.read_bytes()
    code, _, err = rnnkit(*args)
    assert_one_error_line(code, err, "--force")
    assert target.read_bytes() == before
    assert rnnkit(*args, "--force")[0] == 0


def test_eval_matches_the_training_summary(run, files):
    out, s = run
    code, stdout, err = rnnkit("classify", "eval", out, "--data", files["test"], "--json")
    assert code == 0, err
    r = json.loads(stdout)
    assert r["accuracy"] == pytest.approx(s["test"]["accuracy"])
    assert r["macro_f1"] == pytest.approx(s["test"]["macro_f1"])
    assert sum(map(sum, r["confusion"])) == 40 and r["labels"] == ["neg", "pos"]
    assert set(r["per_class"]["pos"]) == {"precision", "recall", "f1", "support"}
    code, stdout, _ = rnnkit("classify", "eval", out, "--data", files["test"])
    assert code == 0 and "accuracy" in stdout and "confusion matrix" in stdout


def test_python_api_round_trip(run):
    out, _ = run
    model = classify.load(out)
    assert model.predict(["superb acting", "terrible plot"]) == ["pos", "neg"]
    assert model.predict_proba(["superb"]).shape == (1, 2)


def test_layer_norm_trains_and_its_checkpoint_reloads(files, tmp_path):
    out = tmp_path / "ln"
    code, _, err = rnnkit(
        "classify", "train", "--train", files["train"], "--text-column", "review",
        "--label-column", "sentiment", *TINY, "--epochs", "1", "--layer-norm", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert checkpoint.load(out / "last").config["model"]["layer_norm"] is True
    model = classify.load(out)
    assert model.model.rnn.layer_norm
    assert len(model.predict(["superb acting", "terrible plot"])) == 2


def test_folder_layout_and_three_classes(tmp_path):
    root = tmp_path / "data"
    words = {"pos": POSITIVE, "neg": NEGATIVE, "mixed": ["okay", "fine"]}
    for label, vocab in words.items():
        (root / label).mkdir(parents=True)
        for k in range(10):
            (root / label / f"{k}.txt").write_text(f"the film was {vocab[k % len(vocab)]}")
    out = tmp_path / "run"
    code, stdout, err = rnnkit(
        "classify", "train", "--train", root, *TINY, "--max-steps", "3", "--json", "--out", out
    )
    assert code == 0, err
    assert json.loads(stdout)["step"] == 3
    assert classify.load(out).classes == ["mixed", "neg", "pos"]


# ---- bad input: one error line, exit status 2, nothing of the user's overwritten


def test_unknown_column_lists_the_columns(files, tmp_path):
    code, _, err = rnnkit(
        "classify", "train", "--train", files["train"], "--text-column", "body",
        "--out", tmp_path / "r",
    )  # fmt: skip
    assert_one_error_line(code, err, "body")
    assert "review" in err and "sentiment" in err


def test_one_class_is_refused(tmp_path):
    data = write_csv(tmp_path / "one.csv", [("good film", "pos")] * 20, ("text", "label"))
    code, _, err = rnnkit("classify", "train", "--train", data, "--out", tmp_path / "r")
    assert_one_error_line(code, err, "one class")


def test_missing_fields_are_skipped_and_counted_or_refused(tmp_path):
    rows = [(t, label) for t, label in reviews(30, 2)] + [("", "pos"), ("no label here", "")]
    data = write_csv(tmp_path / "gaps.csv", rows, ("text", "label"))
    out = tmp_path / "r"
    args = ("classify", "train", "--train", data, *TINY, "--max-steps", "2")
    code, stdout, err = rnnkit(*args, "--json", "--out", out)
    assert code == 0, err
    assert json.loads(stdout)["counts"]["skipped"]["train"] == 2
    code, _, err = rnnkit(*args, "--on-missing", "error", "--out", tmp_path / "r2")
    assert_one_error_line(code, err, "line")


def test_unseen_label_at_eval(run, tmp_path):
    out, _ = run
    data = write_csv(tmp_path / "new.csv", [("great", "pos"), ("meh", "neutral")])
    code, _, err = rnnkit(
        "classify", "eval", out, "--data", data, "--text-column", "review",
        "--label-column", "sentiment",
    )  # fmt: skip
    assert_one_error_line(code, err, "'neutral'")


def test_mixed_encodings(run, tmp_path):
    out, _ = run
    data = tmp_path / "mixed.csv"
    data.write_bytes(
        b"review,sentiment\ngreat film,pos\n" + "caf\u00e9 awful,neg\n".encode("latin-1")
    )
    code, _, err = rnnkit("classify", "eval", out, "--data", data)
    assert_one_error_line(code, err, "latin-1")
    code, stdout, err = rnnkit("classify", "eval", out, "--data", data, "--encoding", "latin-1")
    assert code == 0, err


def test_a_directory_holding_a_run_is_not_overwritten(run, files):
    out, _ = run
    before = snapshot(out)
    code, _, err = rnnkit("classify", "train", "--train", files["train"], "--out", out)
    assert_one_error_line(code, err, "--force")
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "args, match",
    [
        (["classify", "train", "--train", "nope.csv", "--out", "x"], "nope.csv"),
        (["classify", "train", "--train", "data.parquet", "--out", "x"], "parquet"),
        (["classify", "train", "--out", "x"], "--train"),
        (["classify", "train", "--train", "a.csv", "--epochs", "0", "--out", "x"], "epochs"),
        (["classify", "predict", "nowhere", "some text"], "nowhere"),
        (["classify", "eval", "nowhere", "--data", "a.csv"], "nowhere"),
    ],
)
def test_bad_arguments(args, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    assert_one_error_line(*rnnkit(*args)[::2], match)


def test_predict_needs_something_to_label(run):
    out, _ = run
    code, _, err = rnnkit("classify", "predict", out)
    assert_one_error_line(code, err, "nothing to label")
    code, _, err = rnnkit("classify", "predict", out, "--input", "x.csv")
    assert_one_error_line(code, err, "--output")
