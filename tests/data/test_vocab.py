"""Tests for rnnkit.data.vocab: building the vocabulary, ids both ways and the JSON form."""

import json

import pytest
import torch

from rnnkit.data.vocab import Vocab

TEXTS = [
    ["the", "movie", "was", "bad"],
    ["the", "film", "was", "good"],
    ["good", "the", "film", "!"],
]  # counts: the 3, film 2, was 2, good 2, movie 1, bad 1, ! 1


def test_specials():
    assert (Vocab.PAD, Vocab.UNK, Vocab.pad_id, Vocab.unk_id) == ("<pad>", "<unk>", 0, 1)


def test_build_order_frequency_then_first_seen():
    vocab = Vocab.build(TEXTS)
    assert vocab.tokens == ["<pad>", "<unk>", "the", "was", "film", "good", "movie", "bad", "!"]
    assert len(vocab) == 9


def test_build_min_freq():
    assert Vocab.build(TEXTS, min_freq=2).tokens == ["<pad>", "<unk>", "the", "was", "film", "good"]
    assert Vocab.build(TEXTS, min_freq=3).tokens == ["<pad>", "<unk>", "the"]


def test_build_max_size_counts_specials():
    vocab = Vocab.build(TEXTS, max_size=4)
    assert vocab.tokens == ["<pad>", "<unk>", "the", "was"] and len(vocab) == 4
    assert len(Vocab.build(TEXTS, max_size=100)) == 9
    assert Vocab.build(TEXTS, min_freq=2, max_size=5).tokens[2:] == ["the", "was", "film"]


def test_build_from_generator_and_tuples():
    vocab = Vocab.build(tuple(t) for t in TEXTS)
    assert vocab == Vocab.build(TEXTS)


def test_build_specials_in_text_keep_their_ids():
    vocab = Vocab.build([["<unk>", "a", "<pad>", "<unk>", "b", "b"]])
    assert vocab.tokens == ["<pad>", "<unk>", "b", "a"]


def test_lookup_and_unknown():
    vocab = Vocab.build(TEXTS)
    assert vocab["the"] == 2 and vocab["<pad>"] == 0 and vocab["<unk>"] == 1
    assert vocab["zebra"] == vocab.unk_id
    assert "film" in vocab and "zebra" not in vocab and 3 not in vocab


def test_encode_decode():
    vocab = Vocab.build(TEXTS)
    ids = vocab.encode(["the", "zebra", "film", "<pad>"])
    assert ids == [2, 1, 4, 0]
    assert vocab.decode(ids) == ["the", "<unk>", "film", "<pad>"]
    assert vocab.decode(torch.tensor(ids)) == vocab.decode(ids)
    assert vocab.encode([]) == [] and vocab.decode([]) == []


def test_decode_numpy_ints():
    np = pytest.importorskip("numpy")
    vocab = Vocab.build(TEXTS)
    assert vocab.decode(np.array([2, 3])) == ["the", "was"]


def test_tokens_is_a_copy():
    vocab = Vocab.build(TEXTS)
    vocab.tokens.append("x")
    assert len(vocab.tokens) == len(vocab) == 9


def test_dict_round_trip():
    vocab = Vocab.build([["héllo", "мир", "🙂", "hello"]])
    data = json.loads(json.dumps(vocab.to_dict()))
    assert data == {"tokens": ["<pad>", "<unk>", "héllo", "мир", "🙂", "hello"]}
    again = Vocab.from_dict(data)
    assert again == vocab and again.encode(["мир", "x"]) == [3, 1]


def test_constructor_and_equality():
    vocab = Vocab(["<pad>", "<unk>", "a", "b"])
    assert vocab == Vocab.build([["a", "b"]]) and vocab != Vocab(["<pad>", "<unk>", "b", "a"])
    assert vocab != ["<pad>", "<unk>", "a", "b"]
    assert len(Vocab(["<pad>", "<unk>"])) == 2
    assert repr(vocab) == "Vocab(4 tokens: <pad>, <unk>, a, b)"


# ---- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tokens, error, match",
    [
        ("<pad><unk>", TypeError, "must be a list of str, got str"),
        (["<unk>", "<pad>", "a"], ValueError, "starts with '<pad>', '<unk>'"),
        (["<pad>"], ValueError, "starts with"),
        (["<pad>", "<unk>", "a", "a"], ValueError, "'a' is in the vocabulary twice: 2, 3"),
        (["<pad>", "<unk>", "a", "<pad>"], ValueError, "'<pad>' is in the vocabulary twice"),
        (["<pad>", "<unk>", 7], TypeError, "token 2 must be a str, got int 7"),
    ],
)
def test_constructor_bad(tokens, error, match):
    with pytest.raises(error, match=match):
        Vocab(tokens)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_freq": 0}, "min_freq must be an int >= 1, got 0"),
        ({"min_freq": 1.5}, "min_freq must be an int >= 1, got 1.5"),
        ({"min_freq": True}, "min_freq must be an int >= 1, got True"),
        ({"max_size": 2}, "max_size must be None or an int >= 3.*got 2"),
        ({"max_size": "10"}, "max_size must be None or an int >= 3.*got '10'"),
    ],
)
def test_build_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Vocab.build(TEXTS, **kwargs)


def test_build_bad_token_lists():
    with pytest.raises(TypeError, match="token list 0 must be a list of str tokens, got str"):
        Vocab.build(["the", "movie"])  # one text's tokens, not a list of them
    with pytest.raises(TypeError, match="an iterable of token lists, got str"):
        Vocab.build("the movie")
    with pytest.raises(TypeError, match="tokens must be str, got int 3"):
        Vocab.build([["a", 3]])
    with pytest.raises(TypeError, match="token list 0 holds a non-str token"):
        Vocab.build([["a", ["b"]]])
    with pytest.raises(ValueError, match="no token occurs at least min_freq=5 times"):
        Vocab.build(TEXTS, min_freq=5)
    with pytest.raises(ValueError, match="no token occurs"):
        Vocab.build([])


def test_lookup_bad():
    vocab = Vocab.build(TEXTS)
    with pytest.raises(TypeError, match="vocabulary tokens are str, got int 3"):
        vocab[3]
    with pytest.raises(TypeError, match="encode takes a list of tokens, got the str 'the film'"):
        vocab.encode("the film")
    with pytest.raises(TypeError, match="tokens must be str, got int 5"):
        vocab.encode(["the", 5])
    with pytest.raises(TypeError, match="a list of str tokens"):
        vocab.encode(["the", ["film"]])


@pytest.mark.parametrize(
    "ids, error, match",
    [
        ([2, 9], ValueError, "id 9 is out of range: the vocabulary has ids 0..8"),
        ([-1], ValueError, "id -1 is out of range"),
        ([2.0], TypeError, "ids must be ints, got float 2.0"),
        ([True], TypeError, "ids must be ints, got bool"),
        ("ab", TypeError, "sequence of int ids, got str"),
        (torch.tensor([1.0]), TypeError, "1-D integer tensor, got torch.float32"),
        (torch.zeros(2, 2, dtype=torch.long), TypeError, r"shape \(2, 2\)"),
    ],
)
def test_decode_bad(ids, error, match):
    with pytest.raises(error, match=match):
        Vocab.build(TEXTS).decode(ids)


@pytest.mark.parametrize(
    "data, match",
    [
        (["<pad>", "<unk>"], "got <class 'list'>"),
        ({"chars": "ab"}, r"got the keys \['chars'\]"),
        ({"tokens": "<pad><unk>"}, "'tokens' must be a list, got str"),
    ],
)
def test_from_dict_bad(data, match):
    with pytest.raises(ValueError, match=f"not a vocabulary: .*{match}"):
        Vocab.from_dict(data)
    with pytest.raises(ValueError, match="starts with"):
        Vocab.from_dict({"tokens": ["a", "b"]})
