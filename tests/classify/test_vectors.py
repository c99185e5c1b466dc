"""Tests for rnnkit.classify.vectors: reading GloVe and word2vec text files for a vocabulary."""

import pytest
import torch

from rnnkit.classify.vectors import read_vectors
from rnnkit.data.vocab import Vocab

GLOVE = "the 0.1 0.2 0.3 \nmovie 1 2 3 \nbad -1.5 0 2e-1 \nunused 9 9 9 \n"  # trailing spaces


def write(tmp_path, text, name="vectors.txt", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def vocab(*tokens):
    return Vocab(["<pad>", "<unk>", *tokens])


def test_glove(tmp_path):
    vectors, found = read_vectors(write(tmp_path, GLOVE), vocab("the", "movie", "zebra", "bad"))
    assert vectors.dtype == torch.float32 and vectors.shape == (6, 3)
    assert found.dtype == torch.bool and found.tolist() == [False, False, True, True, False, True]
    assert torch.allclose(vectors[2], torch.tensor([0.1, 0.2, 0.3]))
    assert vectors[3].tolist() == [1, 2, 3]
    assert torch.allclose(vectors[5], torch.tensor([-1.5, 0, 0.2]))
    assert vectors[[0, 1, 4]].eq(0).all()  # <pad>, <unk> and the missing token


def test_word2vec_header_and_crlf(tmp_path):
    text = "3 2\r\nthe 0.5 -0.5\r\nfilm 1 1\r\ngood 2 3\r\n"
    vectors, found = read_vectors(write(tmp_path, text), vocab("good", "the", "nope"))
    assert vectors.shape == (5, 2) and found.tolist() == [False, False, True, True, False]
    assert vectors[2].tolist() == [2, 3] and vectors[3].tolist() == [0.5, -0.5]


def test_word2vec_count_mismatch(tmp_path):
    path = write(tmp_path, "5 2\nthe 0.5 -0.5\nfilm 1 1\n")
    with pytest.raises(ValueError, match="header says 5 vectors but the file has 2; is it trunc"):
        read_vectors(path, vocab("the"))


def test_specials_never_looked_up(tmp_path):
    path = write(tmp_path, "<pad> 1 1\n<unk> 2 2\nok 3 3\n")
    vectors, found = read_vectors(path, vocab("ok"))
    assert found.tolist() == [False, False, True] and vectors[:2].eq(0).all()


def test_lowercase_fallback(tmp_path):
    text = "Paris 1 1\nTHE 2 2\nthe 3 3\nNYC 4 4\nnyc 5 5\nApple 6 6\nAPPLE 7 7\n"
    tokens = ("paris", "The", "the", "NYC", "Nyc", "apple")
    vectors, found = read_vectors(write(tmp_path, text), vocab(*tokens))
    assert found[2:].all()
    got = dict(zip(tokens, vectors[2:, 0].tolist()))
    # exact first; then the token lower-cased; then the first word that lower-cases to it
    assert got == {"paris": 1, "The": 3, "the": 3, "NYC": 4, "Nyc": 5, "apple": 6}


def test_exact_duplicate_first_wins(tmp_path):
    vectors, _ = read_vectors(write(tmp_path, "a 1\nb 2\na 3\n"), vocab("a"))
    assert vectors[2].tolist() == [1]


def test_word_with_spaces(tmp_path):
    text = ", 0.1 0.2\n. . . 1 2\nat name@domain.com 3 4\nx 5 6\n"
    tokens = (". . .", "at name@domain.com", "x", ".")
    vectors, found = read_vectors(write(tmp_path, text), vocab(*tokens))
    assert found.tolist() == [False, False, True, True, True, False]
    assert vectors[2:5].tolist() == [[1, 2], [3, 4], [5, 6]]


def test_unicode_words_and_bom(tmp_path):
    path = write(tmp_path, "\ufeffcafé 1 2\nмир 3 4\n")
    vectors, found = read_vectors(path, vocab("café", "мир"))
    assert found[2:].all() and vectors[2:].tolist() == [[1, 2], [3, 4]]


def test_blank_lines_skipped(tmp_path):
    vectors, found = read_vectors(write(tmp_path, "\na 1 2\n\n\nb 3 4\n\n"), vocab("b"))
    assert found.tolist() == [False, False, True] and vectors[2].tolist() == [3, 4]


def test_latin1_encoding(tmp_path):
    path = write(tmp_path, "ok 1\ncafé 2\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"line 2: not valid utf-8 \(byte 0xe9\).*'latin-1'"):
        read_vectors(path, vocab("café"))
    vectors, found = read_vectors(path, vocab("café"), encoding="latin-1")
    assert found[2] and vectors[2].tolist() == [2]


def test_path_as_str(tmp_path):
    vectors, found = read_vectors(str(write(tmp_path, GLOVE)), vocab("movie"))
    assert found[2] and vectors[2].tolist() == [1, 2, 3]


# ---- bad input ------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt: no such file"):
        read_vectors(tmp_path / "nope.txt", vocab("a"))


def test_directory(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        read_vectors(tmp_path, vocab("a"))


@pytest.mark.parametrize(
    "text, match",
    [
        ("a 1 2 3\nb 1 2\n", "line 2: 2 values, but the vectors have 3"),
        ("a 1 2 3\nb 1 2 3 4\n", "line 2: 4 values, but the vectors have 3"),
        ("2 3\na 1 2 3\nb 1 2\n", "line 3: 2 values, but the vectors have 3"),
        ("2 3\na 1 2\n", "line 2: 2 values, but the vectors have 3"),
    ],
)
def test_mismatched_dims(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        read_vectors(write(tmp_path, text), vocab("zzz"))  # checked on every line, used or not


@pytest.mark.parametrize(
    "text, match",
    [
        ("a 1 2\nb 1 x\n", "line 2: value 'x' is not a number"),
        ("b 1 nan\n", "line 1: value 'nan' is not a finite"),
        ("b 1e39 0\n", "line 1: value '1e39' is not a finite float32"),
    ],
)
def test_not_a_number(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        read_vectors(write(tmp_path, text), vocab("b"))


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "holds no vectors"),
        ("\n\n", "holds no vectors"),
        ("10 3\n", "holds no vectors"),
        ("word\n", "line 1: 'word' has no values"),
        ("0 0\n", "header dim 0"),
        ("a 1 2\n 1 2\n", "line 2: no word before the values"),
        ("a 1 2\nb 1  2\n", "line 2: two spaces in a row; expected 'word v1 ... v2'"),
        ("a 1 2\nb  1 2\n", "line 2: .*two spaces in a row"),
    ],
)
def test_bad_files(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        read_vectors(write(tmp_path, text), vocab("a"))


def test_bad_arguments(tmp_path):
    path = write(tmp_path, GLOVE)
    with pytest.raises(TypeError, match="vocab must be a Vocab, got list"):
        read_vectors(path, ["the"])
    with pytest.raises(TypeError, match="path must be a str or a path, got int"):
        read_vectors(3, vocab("the"))
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        read_vectors(path, vocab("the"), encoding="klingon")
    with pytest.raises(ValueError, match="'utf-16' is not ASCII-compatible"):
        read_vectors(path, vocab("the"), encoding="utf-16")


def test_streams_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, GLOVE)

    def no_whole_reads(*args, **kwargs):
        raise AssertionError("read the file whole")

    monkeypatch.setattr(type(path), "read_bytes", no_whole_reads)
    monkeypatch.setattr(type(path), "read_text", no_whole_reads)
    vectors, found = read_vectors(path, vocab("bad"))
    assert found[2] and vectors[2, 0] == -1.5
