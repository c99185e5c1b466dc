"""`rnnkit speech`: fsdd-manifest -> train -> eval -> transcribe round trips on tone "digits",
and each bad input as one `error:` line with exit status 2."""

import json

import numpy as np
import pytest

pytest.importorskip("soundfile")
pytest.importorskip("librosa")

import soundfile  # noqa: E402
from budget import SEED, margin  # noqa: E402
from speech_toys import RATE, digit_tone, fake_fsdd  # noqa: E402

from rnnkit import speech
from rnnkit.cli import main  # noqa: E402

TINY = ["--hidden", "16", "--layers", "1", "--batch", "8", "--lr", "0.01", "--seed", str(SEED)]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    fake_fsdd(root / "fsdd", digits=range(3), speakers=("ann",), indices=range(12))
    assert main(["speech", "fsdd-manifest", "--root", str(root / "fsdd"), "--out",
                 str(root / "m"), "--strings", "24", "--test-strings", "4"]) == 0  # fmt: skip
    return root


@pytest.fixture(scope="module")
def classifier(corpus):
    out = corpus / "classify"
    code = main(["speech", "train", "--manifest", str(corpus / "m" / "train.csv"), "--test",
                 str(corpus / "m" / "test.csv"), "--epochs", "40", *TINY, "--out", str(out),
                 "--json"])  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def recogniser(corpus):
    out = corpus / "ctc"
    code = main(["speech", "train", "--manifest", str(corpus / "m" / "strings_train.csv"),
                 "--task", "ctc", "--units", "word", "--no-bidirectional", "--epochs", "3",
                 "--freq-masks", "1", "--time-masks", "1",
                 *TINY, "--out", str(out)])  # fmt: skip
    assert code == 0
    return out


def test_fsdd_manifest_writes_the_split_and_strings(corpus):
    names = sorted(p.name for p in (corpus / "m").glob("*.csv"))
    assert names == ["strings_test.csv", "strings_train.csv", "test.csv", "train.csv"]
    assert len((corpus / "m" / "test.csv").read_text().splitlines()) == 1 + 3 * 5


def test_train_eval_transcribe_round_trip_for_the_classifier(classifier, corpus, capsys):
    code, out, _ = run(capsys, "speech", "eval", classifier, "--manifest",
                       corpus / "m" / "test.csv", "--json")  # fmt: skip
    result = json.loads(out)
    assert (
        code == 0
        and result["examples"] == 15
        and margin("accuracy", result["accuracy"], 0.9) >= 0.9
    )
    wav = corpus / "fsdd" / "recordings" / "2_ann_0.wav"
    code, out, _ = run(capsys, "speech", "transcribe", classifier, wav)
    path, transcript, probability = out.strip().split("\t")
    assert (
        code == 0
        and path == str(wav)
        and transcript == "2"
        and margin("p", float(probability), 0.5) > 0.5
    )
    model = speech.load(classifier)  # the checkpoint carries features, normalisation, classes
    assert model.classes == ["0", "1", "2"] and model.features.n_mels == 40
    assert len(model.normaliser.mean) == 40


def test_ctc_round_trip_eval_and_streaming(recogniser, corpus, capsys):
    code, out, _ = run(capsys, "speech", "eval", recogniser, "--manifest",
                       corpus / "m" / "strings_test.csv", "--json", "--beam", "3")  # fmt: skip
    result = json.loads(out)
    assert code == 0 and result["utterances"] == 4 and 0 <= result["wer"] and result["beam"] == 3
    assert len(result["hypotheses"]) == 4
    code, out, _ = run(capsys, "speech", "eval", recogniser, "--manifest",
                       corpus / "m" / "strings_test.csv")  # fmt: skip
    assert code == 0 and "WER" in out and "CER" in out
    wav = corpus / "m" / "strings" / "test" / "00000.wav"
    code, whole, _ = run(capsys, "speech", "transcribe", recogniser, wav)
    code2, streamed, _ = run(capsys, "speech", "transcribe", recogniser, wav, "--stream", "30")
    assert code == code2 == 0 and streamed.strip() == whole.strip()


def test_stereo_is_transcribed_with_a_note(classifier, tmp_path, capsys):
    wave = digit_tone(1, seed=3)
    soundfile.write(str(tmp_path / "s.wav"), np.stack([wave, wave], 1), RATE)
    code, out, err = run(capsys, "speech", "transcribe", classifier, tmp_path / "s.wav")
    assert code == 0 and out.split("\t")[1] == "1"
    assert "2 channels: mixed down to mono" in err


def one_error_line(code: int, err: str) -> str:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bad_audio_files_are_one_error_line(classifier, tmp_path, capsys):
    code, _, err = run(capsys, "speech", "transcribe", classifier, tmp_path / "missing.wav")
    assert "missing.wav does not exist" in one_error_line(code, err)
    (tmp_path / "notes.wav").write_text("hello")
    code, _, err = run(capsys, "speech", "transcribe", classifier, tmp_path / "notes.wav")
    assert "notes.wav is not a readable WAV file" in one_error_line(code, err)
    soundfile.write(str(tmp_path / "c.flac"), digit_tone(0), RATE, format="FLAC")
    code, _, err = run(capsys, "speech", "transcribe", classifier, tmp_path / "c.flac")
    assert "c.flac is FLAC audio, expected a WAV file" in one_error_line(code, err)


def test_bad_manifests_are_one_error_line(classifier, recogniser, corpus, tmp_path, capsys):
    wav = corpus / "fsdd" / "recordings" / "0_ann_0.wav"
    (tmp_path / "empty.csv").write_text(f"path,transcript\n{wav},\n")
    code, _, err = run(capsys, "speech", "train", "--manifest", tmp_path / "empty.csv",
                       "--out", tmp_path / "run")  # fmt: skip
    assert "the transcript of" in one_error_line(code, err) and "is empty" in err
    (tmp_path / "alien.csv").write_text(f"path,transcript\n{wav},0 x\n")
    code, _, err = run(capsys, "speech", "eval", recogniser, "--manifest", tmp_path / "alien.csv")
    assert "words outside the trained alphabet: ['x']" in one_error_line(code, err)
    (tmp_path / "seven.csv").write_text(f"path,transcript\n{wav},7\n")
    code, _, err = run(capsys, "speech", "eval", classifier, "--manifest", tmp_path / "seven.csv")
    assert "not trained on: ['7']" in one_error_line(code, err)


def test_streaming_a_bidirectional_model_is_refused(classifier, corpus, capsys):
    wav = corpus / "fsdd" / "recordings" / "0_ann_0.wav"
    code, _, err = run(capsys, "speech", "transcribe", classifier, wav, "--stream", "20")
    assert "unidirectional CTC model" in one_error_line(code, err)
