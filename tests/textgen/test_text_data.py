"""Tests for rnnkit.textgen.data: reading files, the vocabulary, the split and the streams."""

import json

import pytest
import torch

from rnnkit.textgen.data import CharVocab, TextStreams, builtin_corpus, read_text, split_text

# ---- reading files --------------------------------------------------------------------------


def test_read_text_utf8(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("héllo\nwörld\n", encoding="utf-8")
    assert read_text(path) == "héllo\nwörld\n"


def test_read_text_missing(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_text(path)


def test_read_text_directory(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        read_text(tmp_path)


def test_read_text_empty(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        read_text(path)


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff", b"abc\x00def"])
def test_read_text_binary(tmp_path, data):
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="blob.bin looks binary"):
        read_text(path)


def test_read_text_latin1(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("café crème\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.txt is not valid utf-8 .*encoding"):
        read_text(path)
    assert read_text(path, encoding="latin-1") == "café crème\n"


def test_read_text_utf16_with_encoding(tmp_path):
    path = tmp_path / "wide.txt"  # UTF-16 holds NUL bytes yet is text when the encoding says so
    path.write_bytes("hi there".encode("utf-16"))
    assert read_text(path, encoding="utf-16") == "hi there"


def test_read_text_unknown_encoding(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("abc")
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        read_text(path, encoding="klingon")


def test_error_messages_are_one_line(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(b"caf\xe9")
    with pytest.raises(ValueError) as info:
        read_text(path)
    assert "\n" not in str(info.value)


def test_builtin_corpus():
    text = builtin_corpus()
    assert len(text) > 100_000 and "\0" not in text


# ---- vocabulary -----------------------------------------------------------------------------


def test_vocab_sorted_with_unk():
    vocab = CharVocab.from_text("hello world")
    assert vocab.chars == " dehlorw"
    assert len(vocab) == 9 and vocab.unk_id == 8


def test_vocab_round_trip():
    text = "To be, or not to be: ünïcödé 🙂\n"
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    again = CharVocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert again == vocab and torch.equal(again.encode(text), ids)


def test_vocab_unknown_chars():
    vocab = CharVocab.from_text("abc")
    ids = vocab.encode("abzc!")
    assert ids.tolist() == [0, 1, vocab.unk_id, 2, vocab.unk_id]
    assert vocab.decode(ids) == "ab\ufffdc\ufffd"


def test_vocab_bad_input():
    with pytest.raises(ValueError, match="empty"):
        CharVocab.from_text("")
    with pytest.raises(ValueError, match="sorted"):
        CharVocab("ba")
    with pytest.raises(ValueError, match="not a character vocabulary"):
        CharVocab.from_dict({"chars": "ab"})


# ---- split ----------------------------------------------------------------------------------


def test_split_sizes():
    text = "".join(chr(97 + i % 26) for i in range(1000))
    train, val = split_text(text)
    assert (len(train), len(val)) == (900, 100) and train + val == text
    train, val = split_text(text, val_fraction=0.25)
    assert (len(train), len(val)) == (750, 250)
    assert split_text(text, val_fraction=0.0) == (text, "")


@pytest.mark.parametrize("fraction", [1.0, -0.1, 2])
def test_split_bad_fraction(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        split_text("abc", fraction)


# ---- streams --------------------------------------------------------------------------------


def test_streams_layout():
    ids = torch.arange(1000)
    streams = TextStreams(ids, batch_size=4, bptt=10)
    assert streams.stream_len == 250 and len(streams) == 24  # (250 - 1) // 10
    assert streams.tokens_per_batch == streams.global_tokens_per_batch == 40
    x, y = streams.batch(0)
    assert x.shape == y.shape == (4, 10)
    assert x[:, 0].tolist() == [0, 250, 500, 750]  # stream j starts at j * S


def test_streams_contiguous_and_shifted():
    streams = TextStreams(torch.arange(997), batch_size=3, bptt=7)
    prev = None
    for k in range(len(streams)):
        x, y = streams.batch(k)
        assert torch.equal(y, x + 1)  # targets are the inputs shifted by one character
        if prev is not None:  # batch k continues batch k - 1 in every stream
            assert torch.equal(x[:, 0], prev[:, -1] + 1)
        prev = x


def test_streams_epochs_wrap():
    streams = TextStreams(torch.arange(500), batch_size=2, bptt=8)
    n = len(streams)
    assert streams.is_epoch_start(0) and streams.is_epoch_start(n) and not streams.is_epoch_start(1)
    assert streams.epoch(n - 1) == 0 and streams.epoch(n) == 1
    for a, b in zip(streams.batch(3), streams(3 + 2 * n), strict=True):
        assert torch.equal(a, b)


def test_streams_eval_batches_cover_every_target_once():
    streams = TextStreams(torch.arange(1003), batch_size=4, bptt=16)
    targets = torch.cat([y for _, y in streams.eval_batches()], dim=1)
    assert targets.shape == (4, streams.stream_len - 1)
    assert torch.equal(targets, streams.data[:, 1:])


@pytest.mark.parametrize("world_size", [2, 4])
def test_streams_rank_shards_make_the_global_batch(world_size):
    ids = torch.randint(0, 50, (2000,))
    whole = TextStreams(ids, batch_size=8, bptt=12)
    shards = [
        TextStreams(ids, batch_size=8, bptt=12, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    assert all(len(s) == len(whole) for s in shards)
    assert shards[0].tokens_per_batch * world_size == whole.tokens_per_batch
    for k in (0, 5, len(whole) + 2):
        x, y = whole.batch(k)
        assert torch.equal(torch.cat([s.batch(k)[0] for s in shards]), x)
        assert torch.equal(torch.cat([s.batch(k)[1] for s in shards]), y)


def test_streams_short_text():
    with pytest.raises(ValueError, match=r"has 100 characters.* = 132"):
        TextStreams(torch.arange(100), batch_size=4, bptt=32)
    TextStreams(torch.arange(132), batch_size=4, bptt=32)  # exactly one batch fits


def test_streams_bad_options():
    ids = torch.arange(1000)
    with pytest.raises(ValueError, match="multiple of world_size"):
        TextStreams(ids, batch_size=3, bptt=4, world_size=2)
    with pytest.raises(ValueError, match="rank"):
        TextStreams(ids, batch_size=4, bptt=4, rank=2, world_size=2)
    with pytest.raises(ValueError, match="bptt"):
        TextStreams(ids, batch_size=4, bptt=0)
    with pytest.raises(ValueError, match="batch index"):
        TextStreams(ids, batch_size=4, bptt=4).batch(-1)
