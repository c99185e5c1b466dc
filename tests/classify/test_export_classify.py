"""`rnnkit classify export`: the sidecar's tokenizer rebuilds the model's ids without rnnkit,
the .pt2 program agrees with `predict`, the held-back texts default to the run's own, and a
cell ONNX cannot take is one `error:` line."""

import csv
import json
import re
import unicodedata
from pathlib import Path

import pytest
import torch
from clirun import assert_one_error_line, rnnkit

from rnnkit import classify
from rnnkit.classify.export import sidecar
from rnnkit.classify.text import TextEncoder
from rnnkit.classify.tokenize import Tokenizer
from rnnkit.data.vocab import Vocab

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints" / "classify"
TEXTS = [
    "This movie was great, I loved the acting<br /><br />and the story.",
    "Awful. Boring plot and a terrible ending!",
    "It’s not the best film, but the music isn't bad: 10/10 for the café scene.",
    "?",
    "A long one, " * 60,
]


def sidecar_ids(side: dict, text: str) -> list[int]:
    """A text to ids from the sidecar alone (the README's recipe)."""
    tok, index = side["tokenizer"], {t: i for i, t in enumerate(side["vocabulary"])}
    text = re.sub(tok["html_tag"], " ", unicodedata.normalize("NFC", text))
    text = text.lower() if tok["lower"] else text
    if tok["kind"] == "word":
        tokens = re.findall(tok["word"], text.replace("\u2019", "'"))
    else:
        tokens = list(re.sub(tok["spaces"], " ", text).strip())
    n = side["max_tokens"]
    if n is not None and len(tokens) > n:
        head = {"head": n, "tail": 0, "head+tail": n // 4}[side["truncate"]]
        tokens = tokens[:head] + tokens[len(tokens) - (n - head) :]
    return [index.get(t, side["unk_id"]) for t in tokens] or [side["unk_id"]]


def write_texts(path: Path, texts: list[str], labels=("neg", "pos")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows((t, labels[k % 2]) for k, t in enumerate(texts))
    return path


@pytest.mark.parametrize("kind", ["word", "char"])
@pytest.mark.parametrize("truncate", ["head", "tail", "head+tail"])
def test_the_sidecar_tokenizer_gives_the_models_ids(kind, truncate):
    trained = classify.load(FIXTURE)
    encoder = trained.encoder
    if kind == "char":
        vocab = Vocab.build([list(" ".join(TEXTS).lower())])
        encoder = TextEncoder(Tokenizer("char"), vocab)
    trained.encoder = TextEncoder(encoder.tokenizer, encoder.vocab, 7, truncate)
    side = json.loads(json.dumps(sidecar(trained)))  # as a user reads it back
    for text in [*TEXTS, "<p></p>", "Ünïcödé\u0301 wörds\t\n x"]:
        assert sidecar_ids(side, text) == trained.encoder.ids(text), text


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    return write_texts(tmp_path_factory.mktemp("texts") / "texts.csv", TEXTS * 3)


def test_the_pt2_program_agrees_with_predict(texts, tmp_path):
    out = tmp_path / "imdb.pt2"
    code, stdout, err = rnnkit("classify", "export", FIXTURE, "--format", "pt2", "--out", out,
                               "--data", texts, "--json")  # fmt: skip
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["parity"]["max_abs_diff"] <= 1e-6
    assert {b for b, _ in summary["parity"]["shapes"]} == {1, 15}  # not the traced batch, 2
    side = json.loads((tmp_path / "imdb.pt2.json").read_text())
    assert [i["name"] for i in side["inputs"]] == ["ids", "lengths"]
    program = torch.export.load(str(out)).module()
    rows = [sidecar_ids(side, t) for t in TEXTS]
    ids = torch.full((len(rows), max(map(len, rows))), side["pad_id"])
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row)
    probs = program(ids, torch.tensor([len(r) for r in rows]))
    code, stdout, err = rnnkit("classify", "predict", FIXTURE, "--json", *TEXTS)
    want = [[json.loads(line)["probabilities"][c] for c in side["labels"]]
            for line in stdout.splitlines()]  # fmt: skip
    torch.testing.assert_close(probs, torch.tensor(want), atol=1e-5, rtol=0)


def train_tiny(tmp_path: Path, name: str, *options) -> Path:
    data = write_texts(tmp_path / f"{name}.csv", TEXTS * 4)
    out = tmp_path / name
    code, _, err = rnnkit("classify", "train", "--train", data, "--max-steps", "1", "--embed",
                          "4", "--hidden", "4", "--batch", "4", "--min-freq", "1", "--out", out,
                          *options)  # fmt: skip
    assert code == 0, err
    return out


def test_the_runs_validation_texts_are_held_back_by_default(tmp_path):
    run = train_tiny(tmp_path, "valid", "--valid-fraction", "0.5")
    code, out, err = rnnkit("classify", "export", run, "--format", "pt2")
    assert code == 0, err
    assert "over 10 texts (validation split)" in out
    assert (run / "export" / "model.pt2").is_file()
    assert json.loads((run / "export" / "model.pt2.json").read_text())["labels"] == ["neg", "pos"]


def test_a_run_without_held_back_texts_needs_data(tmp_path):
    run = train_tiny(tmp_path, "novalid", "--valid-fraction", "0")
    code, out, err = rnnkit("classify", "export", run)
    assert_one_error_line(code, err, "give held-back texts: --data FILE")


def test_a_min_rnn_cell_is_one_error_line_naming_it(tmp_path):
    run = train_tiny(tmp_path, "mingru", "--cell", "mingru", "--valid-fraction", "0")
    code, out, err = rnnkit("classify", "export", run, "--data", tmp_path / "mingru.csv")
    assert_one_error_line(code, err, "cannot export a model with cell 'mingru'")
    assert not (run / "export").exists()
