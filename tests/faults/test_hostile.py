"""Hostile input files: each works as a user would expect, or is one `error:` line naming the
file and what is wrong (exit status 2). Text: binary, Latin-1 and UTF-16 files with no
--encoding; CSV: a byte-order mark, CRLF line ends, quoted newlines; series: NaN and inf; WAV:
empty, 8-bit, 24-bit, float, stereo, truncated, not WAV at all."""

import codecs
import wave
from pathlib import Path

import numpy as np
import pytest
from clirun import assert_one_error_line, rnnkit

from rnnkit.classify.labelled import read_labelled
from rnnkit.textgen.data import read_text

FIXTURES = Path(__file__).parent.parent / "fixtures" / "checkpoints"
TEXT = "the quick brown fox jumps over the lazy dog\n" * 20


# ---- text -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, data, must_say",
    [
        ("binary.txt", bytes(range(256)) * 8, "looks binary"),
        ("latin1.txt", ("caf\u00e9 " * 200).encode("latin-1"), "--encoding latin-1"),
    ],
)
@pytest.mark.parametrize("verb", ["train", "eval"])
def test_text_that_cannot_be_read_is_one_error_line(tmp_path, name, data, must_say, verb):
    path = tmp_path / name
    path.write_bytes(data)
    if verb == "train":
        argv = ["textgen", "train", "--data", path, "--out", tmp_path / "run", "--max-steps", 1]
    else:
        argv = ["textgen", "eval", FIXTURES / "textgen", "--data", path]
    code, _, err = rnnkit(*argv)
    assert_one_error_line(code, err, must_say)
    assert name in err and "encoding='latin-1'" not in err  # a flag, not a Python argument


@pytest.mark.parametrize("bom", ["utf-16", "utf-32", "utf-8-sig"])
def test_unicode_text_with_a_byte_order_mark_reads_as_written(tmp_path, bom):
    path = tmp_path / "unicode.txt"
    path.write_bytes(TEXT.encode(bom))
    assert read_text(path).removeprefix("\ufeff") == TEXT
    code, out, err = rnnkit("textgen", "eval", FIXTURES / "textgen", "--data", path, "--json")
    assert code == 0, err


def test_an_explicit_encoding_is_kept(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "abc".encode("latin-1"))  # a latin-1 file, 'ÿþabc'
    assert read_text(path, "latin-1") == "\u00ff\u00feabc"


# ---- CSV ------------------------------------------------------------------------------------

CSV = (
    'text,label\r\n"a fine, fine film\r\nin two lines",pos\r\nawful,neg\r\n"great ""fun""",pos\r\n'
)


def test_csv_with_bom_crlf_and_quoted_newlines_reads_as_written(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes(codecs.BOM_UTF8 + CSV.encode())
    examples = read_labelled(path)
    assert examples.labels == ["pos", "neg", "pos"]
    assert examples.texts == ["a fine, fine film\r\nin two lines", "awful", 'great "fun"']
    code, out, err = rnnkit("classify", "eval", FIXTURES / "classify", "--data", path, "--json")
    assert code == 0, err


def test_forecast_csv_with_bom_and_crlf_predicts_as_the_plain_file(tmp_path):
    plain = FIXTURES / "inputs" / "forecast_input.csv"
    path = tmp_path / "series.csv"
    path.write_bytes(codecs.BOM_UTF8 + "\r\n".join(plain.read_text().splitlines()).encode())
    code, out, err = rnnkit("forecast", "predict", FIXTURES / "forecast", "--data", path)
    assert code == 0, err
    assert out == rnnkit("forecast", "predict", FIXTURES / "forecast", "--data", plain)[1]


# ---- series ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value, must_say", [("nan", "--fill"), ("inf", "not a finite number"),
                                             ("-inf", "not a finite number")])  # fmt: skip
def test_nan_and_inf_in_a_series_are_one_error_line(tmp_path, value, must_say):
    lines = (FIXTURES / "inputs" / "forecast_input.csv").read_text().splitlines()
    cells = lines[30].split(",")
    lines[30] = ",".join([*cells[:-1], value])
    path = tmp_path / "series.csv"
    path.write_text("\n".join(lines) + "\n")
    code, _, err = rnnkit("forecast", "predict", FIXTURES / "forecast", "--data", path)
    assert_one_error_line(code, err, must_say)
    assert "series.csv" in err and "fill=True" not in err


# ---- WAV ------------------------------------------------------------------------------------


def _digit() -> tuple[np.ndarray, int]:
    import soundfile

    return soundfile.read(FIXTURES / "inputs" / "0_george_0.wav", dtype="float64")


def _wav(path: Path, frames: bytes, width: int, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(frames)
    return path


def _variants(tmp_path: Path) -> dict[str, Path]:
    x, rate = _digit()
    i16 = (x * 32767).astype("<i2")
    i24 = (x * (2**23 - 1)).astype("<i4").view("u1").reshape(-1, 4)[:, :3]
    return {
        "16-bit": _wav(tmp_path / "pcm16.wav", i16.tobytes(), 2, rate),
        "8-bit": _wav(tmp_path / "pcm8.wav", (x * 127 + 128).astype("u1").tobytes(), 1, rate),
        "24-bit": _wav(tmp_path / "pcm24.wav", i24.tobytes(), 3, rate),
        "stereo": _wav(tmp_path / "stereo.wav", np.stack([i16, i16], 1).tobytes(), 2, rate, 2),
    }


def test_wav_of_any_sample_width_or_channels_is_transcribed_alike(tmp_path):
    pytest.importorskip("soundfile")
    files = _variants(tmp_path)
    code, out, err = rnnkit("speech", "transcribe", FIXTURES / "speech", *files.values())
    assert code == 0, err
    assert len(set(out.split("\t")[1] for out in out.splitlines())) == 1, out  # one answer
    assert "stereo.wav has 2 channels: mixed down to mono" in err


@pytest.mark.parametrize(
    "name, make, must_say",
    [
        ("zero_bytes.wav", lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
        ("no_frames.wav", lambda p: _wav(p, b"", 2, 8000), "holds no samples"),
        ("text.wav", lambda p: p.write_text("not audio\n" * 50), "not a readable WAV file"),
        ("cut.wav", lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "not a readable"),
    ],
)
def test_a_wav_that_is_no_audio_is_one_error_line(tmp_path, name, make, must_say):
    pytest.importorskip("soundfile")
    path = tmp_path / name
    make(path)
    code, _, err = rnnkit("speech", "transcribe", FIXTURES / "speech", path)
    assert_one_error_line(code, err, must_say)
    assert name in err


# ---- translation sources and speech manifests -----------------------------------------------


@pytest.mark.parametrize(
    "data, must_say",
    [
        (bytes(range(256)) * 4, "looks binary"),
        ("f\u00fcnf eins\n".encode("latin-1"), "--encoding latin-1"),
    ],
)
def test_a_translation_source_that_cannot_be_read_is_one_error_line(tmp_path, data, must_say):
    source = tmp_path / "source.txt"
    source.write_bytes(data)
    code, _, err = rnnkit("translate", "run", FIXTURES / "translate", "--input", source,
                          "--output", tmp_path / "out.txt", "--beam", 1)  # fmt: skip
    assert_one_error_line(code, err, must_say)
    assert "source.txt" in err and not (tmp_path / "out.txt").exists()


def test_a_utf16_translation_source_translates_as_the_utf8_one(tmp_path):
    lines = "eins zwei\r\ndrei\r\n"
    for name, encoding in (("utf8.txt", "utf-8"), ("utf16.txt", "utf-16")):
        (tmp_path / name).write_bytes(lines.encode(encoding))
        code, _, err = rnnkit("translate", "run", FIXTURES / "translate", "--input",
                              tmp_path / name, "--output", tmp_path / f"{name}.out")  # fmt: skip
        assert code == 0, err
    assert (tmp_path / "utf8.txt.out").read_text() == (tmp_path / "utf16.txt.out").read_text()


def test_speech_manifests_with_a_bom_read_and_latin1_is_one_error_line(tmp_path):
    wavs = FIXTURES / "inputs"
    body = f"path,transcript\r\n{wavs / '0_george_0.wav'},0\r\n{wavs / '3_theo_2.wav'},3\r\n"
    bom = tmp_path / "bom.csv"
    bom.write_bytes(codecs.BOM_UTF8 + body.encode())
    code, out, err = rnnkit("speech", "eval", FIXTURES / "speech", "--manifest", bom, "--json")
    assert code == 0, err
    latin = tmp_path / "latin.csv"
    latin.write_bytes((body + "caf\u00e9.wav,1\n").encode("latin-1"))
    code, _, err = rnnkit("speech", "eval", FIXTURES / "speech", "--manifest", latin)
    assert_one_error_line(code, err, "latin.csv is not UTF-8 text")
