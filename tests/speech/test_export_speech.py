"""`rnnkit speech export`: an exported CTC recogniser decodes what `transcribe` prints and an
exported word classifier gives its probabilities, from feature frames (computed outside the
model, as the sidecar says) and the sidecar's alphabet or labels."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import rnnkit

pytest.importorskip("soundfile")
pytest.importorskip("librosa")

from rnnkit.speech.audio import read_wav  # noqa: E402
from rnnkit.speech.features import FeatureConfig, compute  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
WAVS = [FIXTURES / "inputs" / n for n in ("string_8019.wav", "3_theo_2.wav", "7_jackson_1.wav")]


def frames(side: dict) -> tuple[np.ndarray, np.ndarray]:
    """WAVS as the export's inputs: (B, T, F) zero-padded feature frames and (B,) lengths."""
    keys = set(FeatureConfig.__dataclass_fields__)
    config = FeatureConfig(**{k: v for k, v in side["features"].items() if k in keys})
    each = [compute(read_wav(p, config.sample_rate), config).numpy() for p in WAVS]
    x = np.zeros((len(each), max(len(f) for f in each), config.size), dtype=np.float32)
    for b, f in enumerate(each):
        x[b, : len(f)] = f
    return x, np.array([len(f) for f in each], dtype=np.int64)


@pytest.fixture
def manifest(tmp_path) -> Path:
    path = tmp_path / "held_back.csv"
    path.write_text("path,transcript\n" + "".join(f"{p},x\n" for p in WAVS))
    return path


def transcribed(run: Path) -> list[dict]:
    code, out, err = rnnkit("speech", "transcribe", run, *WAVS, "--json")
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_a_ctc_recogniser_in_onnxruntime_decodes_as_transcribe(tmp_path, manifest):
    ort = pytest.importorskip("onnxruntime")
    run = tmp_path / "ctc"
    shutil.copytree(FIXTURES / "speech_ctc", run)
    code, out, err = rnnkit("speech", "export", run, "--manifest", manifest)
    assert code == 0, err
    assert "over 3 utterances (" in out
    side = json.loads((run / "export" / "model.onnx.json").read_text())
    assert side["kind"] == "ctc" and side["normaliser"]["applied"] == "inside the model"
    x, lengths = frames(side)
    session = ort.InferenceSession(str(run / "export" / "model.onnx"))
    log_probs, steps = session.run(["log_probs", "steps"], {"frames": x, "lengths": lengths})
    symbols, sep = side["alphabet"]["symbols"], " " if side["alphabet"]["units"] == "word" else ""
    wanted = transcribed(run)
    assert wanted[0]["transcript"]  # something to compare: "6" (a weak fixture model)
    for lp, n, want in zip(log_probs, steps, wanted):
        best = lp[:n].argmax(-1)  # greedy: repeats merged, blanks (0) dropped
        ids = [k for j, k in enumerate(best) if k != 0 and (j == 0 or k != best[j - 1])]
        assert sep.join(symbols[k - 1] for k in ids) == want["transcript"]


def test_a_word_classifier_as_pt2_gives_transcribes_probabilities(tmp_path, manifest):
    run = tmp_path / "digits"
    shutil.copytree(FIXTURES / "speech", run)
    code, out, err = rnnkit("speech", "export", run, "--format", "pt2", "--manifest", manifest)
    assert code == 0, err
    side = json.loads((run / "export" / "model.pt2.json").read_text())
    assert side["labels"] == [str(d) for d in range(10)]
    x, lengths = frames(side)
    program = torch.export.load(str(run / "export" / "model.pt2")).module()
    with torch.no_grad():
        probs = program(torch.from_numpy(x), torch.from_numpy(lengths)).numpy()  # (B, C)
    for p, want in zip(probs, transcribed(run)):
        assert side["labels"][p.argmax()] == want["transcript"]
        assert p.max() == pytest.approx(want["probability"], abs=1e-5)
