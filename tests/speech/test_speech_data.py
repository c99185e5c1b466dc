"""Manifests, FSDD's official split and digit strings, and the transcripts as targets."""

import csv
import json

import pytest

pytest.importorskip("soundfile")

import soundfile  # noqa: E402
from speech_toys import FSDD, fake_fsdd  # noqa: E402

from rnnkit.speech import fsdd  # noqa: E402
from rnnkit.speech.manifest import read_manifest, write_manifest  # noqa: E402
from rnnkit.speech.text import Alphabet, class_ids  # noqa: E402


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_parse_name_and_the_official_split():
    r = fsdd.parse_name("7_jackson_4.wav")
    assert (r.digit, r.speaker, r.index, r.split) == ("7", "jackson", 4, "test")
    assert fsdd.parse_name("/x/0_theo_5.wav").split == "train"
    with pytest.raises(ValueError, match=r"7-jackson-4\.wav is not an FSDD file name"):
        fsdd.parse_name("7-jackson-4.wav")


def test_manifests_respect_the_split_and_strings_stay_within_it(tmp_path):
    root = fake_fsdd(tmp_path / "fsdd")
    written = fsdd.write_manifests(root, tmp_path / "out", strings=6, test_strings=3, seed=1)
    assert {k: w["entries"] for k, w in written.items()} == {
        "train": 4 * 2 * 3, "test": 4 * 2 * 5, "strings_train": 6, "strings_test": 3,
    }  # fmt: skip
    for split in ("train", "test"):
        entries = read_manifest(tmp_path / "out" / f"{split}.csv")
        assert all(fsdd.parse_name(e.path).split == split for e in entries)
        assert all(e.transcript == fsdd.parse_name(e.path).digit for e in entries)
    for entry in read_manifest(tmp_path / "out" / "strings_test.csv"):
        digits = entry.transcript.split()
        assert 2 <= len(digits) <= 7 and entry.path.is_file()
        assert entry.path.parent == tmp_path / "out" / "strings" / "test"
        # the audio is the test recordings and silences: at least the digits' length
        assert soundfile.info(str(entry.path)).frames >= 0.25 * 8000 * len(digits)
    again = fsdd.write_manifests(root, tmp_path / "again", strings=6, test_strings=3, seed=1)
    first, second = rows(written["strings_train"]["path"]), rows(again["strings_train"]["path"])
    assert [r["transcript"] for r in first] == [r["transcript"] for r in second]  # seeded


def test_strings_use_only_their_splits_recordings(tmp_path, monkeypatch):
    root = fake_fsdd(tmp_path / "fsdd", digits=range(3), indices=range(7))
    pools, real = {}, fsdd._make_strings

    def spy(pool, folder, *args):
        pools[folder.name] = {r.split for r in pool}
        return real(pool, folder, *args)

    monkeypatch.setattr(fsdd, "_make_strings", spy)
    fsdd.write_manifests(root, tmp_path / "out", strings=4, test_strings=4, seed=0)
    assert pools == {"train": {"train"}, "test": {"test"}}


@pytest.mark.skipif(not FSDD.is_dir(), reason="the shared FSDD copy is not here")
def test_the_real_fsdd_split_has_2700_and_300_recordings(tmp_path):
    written = fsdd.write_manifests(FSDD, tmp_path)
    assert (written["train"]["entries"], written["test"]["entries"]) == (2700, 300)


def test_manifest_csv_and_jsonl_with_relative_paths(tmp_path):
    (tmp_path / "a.wav").touch()
    write_manifest(tmp_path / "m.csv", [(tmp_path / "a.wav", "one two")])
    assert rows(tmp_path / "m.csv") == [{"path": "a.wav", "transcript": "one two"}]
    assert read_manifest(tmp_path / "m.csv")[0].path == (tmp_path / "a.wav").resolve()
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "a.wav", "transcript": " 3 "}) + "\n\n")
    (entry,) = read_manifest(tmp_path / "m.jsonl")
    assert entry.transcript == "3" and entry.path == (tmp_path / "a.wav").resolve()


def test_bad_manifests_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"manifest .*none\.csv does not exist"):
        read_manifest(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("path,transcript\na.wav,  \n")
    with pytest.raises(ValueError, match=r"empty\.csv:2: the transcript of a\.wav is empty"):
        read_manifest(tmp_path / "empty.csv")
    (tmp_path / "cols.csv").write_text("file,text\na.wav,1\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['path', 'transcript'\]"):
        read_manifest(tmp_path / "cols.csv")
    (tmp_path / "bad.jsonl").write_text('{"path": "a.wav"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: expected"):
        read_manifest(tmp_path / "bad.jsonl")


def test_alphabet_encodes_chars_or_words_and_names_unknown_symbols():
    chars = Alphabet.build(["1 2", "3"])
    assert chars.symbols == [" ", "1", "2", "3"] and chars.num_classes == 5
    assert chars.decode(chars.encode("3  1")) == "3 1"
    words = Alphabet.build(["one two", "three"], units="word")
    assert words.decode(words.encode("two one")) == "two one"
    with pytest.raises(ValueError, match=r"chars outside the trained alphabet: \['x'\]"):
        chars.encode("1x")
    with pytest.raises(ValueError, match="is empty"):
        chars.encode("   ")
    assert Alphabet.from_dict(words.to_dict()) == words
    with pytest.raises(ValueError, match=r"not trained on: \['7'\]"):
        class_ids(["1", "7"], ["1", "2"], "test.csv")


def test_plan_splits_flat_options_and_rejects_unknown_ones():
    from rnnkit.speech import plan

    data, features, masking, model, train, epochs = plan(
        {"train": "t.csv", "task": "ctc", "n_mels": 20, "time_masks": 2, "hidden": 8, "lr": 0.01}
    )
    assert (data.task, features.n_mels, masking.time_masks, model, train.lr) == (
        "ctc", 20, 2, {"hidden": 8}, 0.01,
    )  # fmt: skip
    assert epochs == 30 and train.metric == "error"
    with pytest.raises(ValueError, match=r"unknown speech options: \['colour'\]"):
        plan({"train": "t.csv", "colour": "red"})
    with pytest.raises(ValueError, match="give the training manifest"):
        plan({})
    with pytest.raises(ValueError, match="units must be one of"):
        plan({"train": "t.csv", "units": "phone"})
