"""Tests for TextEncoder: token ids, the three truncations, and its JSON form."""

import pytest

from rnnkit.classify.text import TextEncoder
from rnnkit.classify.tokenize import Tokenizer
from rnnkit.data.vocab import Vocab

WORDS = "a b c d e f g h i j".split()


@pytest.fixture
def vocab():
    return Vocab.build([WORDS], min_freq=1)


@pytest.mark.parametrize(
    "truncate,kept",
    [
        ("head", "a b c d e f g h"),
        ("tail", "c d e f g h i j"),
        ("head+tail", "a b e f g h i j"),  # 8 // 4 = 2 from the head, 6 from the tail
    ],
)
def test_truncations_keep_max_tokens_from_their_end(vocab, truncate, kept):
    enc = TextEncoder(Tokenizer("word"), vocab, max_tokens=8, truncate=truncate)
    assert enc.ids(" ".join(WORDS)) == vocab.encode(kept.split())
    assert enc.ids("a b c") == vocab.encode(["a", "b", "c"])  # short texts are kept whole


def test_no_limit_keeps_everything_and_an_empty_text_is_one_unk(vocab):
    enc = TextEncoder(Tokenizer("word"), vocab, None, "tail")
    assert enc.ids(" ".join(WORDS)) == vocab.encode(WORDS)
    assert enc.ids("<br />") == [vocab.unk_id]


def test_json_round_trip_and_old_checkpoints_read_as_head(vocab):
    enc = TextEncoder(Tokenizer("word"), vocab, 8, "head+tail")
    again = TextEncoder.from_dict(enc.to_dict())
    assert again.truncate == "head+tail" and again.max_tokens == 8
    old = {k: v for k, v in enc.to_dict().items() if k != "truncate"}
    assert TextEncoder.from_dict(old).truncate == "head"


def test_bad_truncate(vocab):
    with pytest.raises(ValueError, match="truncate must be one of .*got 'middle'"):
        TextEncoder(Tokenizer("word"), vocab, 8, "middle")
