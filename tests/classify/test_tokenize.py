"""Tests for rnnkit.classify.tokenize: the word and character tokenizers and their JSON form."""

import json
import time

import pytest

from rnnkit.classify.tokenize import KINDS, Tokenizer


def test_kinds():
    assert KINDS == ("word", "char")


# ---- word -----------------------------------------------------------------------------------


def test_word_sentence():
    assert Tokenizer()("The movie wasn't great!") == ["the", "movie", "wasn't", "great", "!"]


def test_word_html_breaks_become_spaces():
    tokens = Tokenizer()("Awful.<br /><br />Really<br/>bad</i> <i>film")
    assert tokens == ["awful", ".", "really", "bad", "film"]


def test_word_keeps_non_tags():
    assert Tokenizer()("I <3 it, 2 < 3") == ["i", "<", "3", "it", ",", "2", "<", "3"]


def test_word_apostrophes():
    tokens = Tokenizer()("Don't 'quote' dogs' rock'n'roll ’90s wasn’t")
    assert tokens == ["don't", "'", "quote", "'", "dogs", "'", "rock'n'roll", "'", "90s", "wasn't"]


def test_word_punctuation_one_mark_each():
    assert Tokenizer()("Wow!!! 7/10...") == ["wow", "!", "!", "!", "7", "/", "10", ".", ".", "."]


def test_word_underscore_is_not_a_letter():
    assert Tokenizer()("snake_case __init__") == [
        "snake", "_", "case", "_", "_", "init", "_", "_",
    ]  # fmt: skip


def test_word_unicode_letters():
    assert Tokenizer()("Café ÜBER Москва, naïve") == ["café", "über", "москва", ",", "naïve"]


def test_word_decomposed_accent_is_one_letter():
    assert Tokenizer()("e\u0301te\u0301") == ["\u00e9t\u00e9"]  # NFC: é is one character


def test_word_lower_false():
    assert Tokenizer(lower=False)("The BEST<br />film") == ["The", "BEST", "film"]


def test_word_whitespace_and_empty():
    tokenize = Tokenizer()
    assert tokenize("  a\n\tb  ") == ["a", "b"]
    assert tokenize("") == [] and tokenize(" <br /> ") == []


# ---- char -----------------------------------------------------------------------------------


def test_char_kind():
    tokenize = Tokenizer("char")
    assert tokenize("Hi!<br /><br />Ok") == list("hi! ok")
    assert tokenize("  a \n\t b  ") == ["a", " ", "b"]


def test_char_lower_false_and_unicode():
    assert Tokenizer("char", lower=False)("Ça va") == ["Ç", "a", " ", "v", "a"]
    assert Tokenizer("char")("Ёж") == ["ё", "ж"]


# ---- JSON form, equality --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lower", [True, False])
def test_dict_round_trip(kind, lower):
    tokenizer = Tokenizer(kind, lower)
    data = json.loads(json.dumps(tokenizer.to_dict()))
    assert data == {"kind": kind, "lower": lower}
    again = Tokenizer.from_dict(data)
    assert again == tokenizer and again("A b<br />C") == tokenizer("A b<br />C")


def test_equality_and_repr():
    assert Tokenizer() == Tokenizer("word", True)
    assert Tokenizer() != Tokenizer("char") and Tokenizer() != Tokenizer(lower=False)
    assert Tokenizer() != "word"
    assert len({Tokenizer(), Tokenizer("word")}) == 1
    assert repr(Tokenizer("char", False)) == "Tokenizer(kind='char', lower=False)"


# ---- bad input ------------------------------------------------------------------------------


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind must be one of .* got 'bpe'"):
        Tokenizer("bpe")
    with pytest.raises(TypeError, match="lower must be True or False, got 1"):
        Tokenizer(lower=1)
    with pytest.raises(TypeError, match="takes a str, got bytes"):
        Tokenizer()(b"text")


@pytest.mark.parametrize(
    "data, match",
    [
        (["word", True], "got a list"),
        ({"kind": "word"}, r"got the keys \['kind'\]"),
        ({"kind": "word", "lower": True, "extra": 1}, "got the keys"),
        ({"kind": "bpe", "lower": True}, "'bpe'"),
        ({"kind": "word", "lower": "yes"}, "'yes'"),
    ],
)
def test_from_dict_bad(data, match):
    with pytest.raises(ValueError, match=f"not a tokenizer: .*{match}"):
        Tokenizer.from_dict(data)


def test_messages_are_one_line():
    with pytest.raises(ValueError) as info:
        Tokenizer.from_dict({"kind": "x\ny", "lower": True})
    assert "\n" not in str(info.value).replace("\\n", "")


def test_fast_enough():
    review = "This film wasn't good, honestly.<br /><br />The acting: 3/10! " * 20  # ~1,300 chars
    reviews = [review] * 2_500  # a tenth of IMDB's 25k
    for kind in KINDS:
        start = time.perf_counter()
        total = sum(len(Tokenizer(kind)(r)) for r in reviews)
        assert total > 0 and time.perf_counter() - start < 5  # ~0.1 s on a quiet core
