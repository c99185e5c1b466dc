"""Tests for rnnkit.classify.labelled: reading labelled texts in every format."""

import json

import pytest

from rnnkit.classify.labelled import FORMATS, Examples, detect_format, read_labelled


def write(path, data: str | bytes):
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", newline="")
    else:
        path.write_bytes(data)
    return path


def write_jsonl(path, records):
    return write(path, "".join(json.dumps(r) + "\n" for r in records))


def make_folder(root, files: dict[str, str]):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


# ---- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.csv", "csv"),
        ("a.CSV", "csv"),
        ("a.tsv", "tsv"),
        ("a.tab", "tsv"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.txt", "txt"),
    ],
)
def test_detect_format_by_suffix(tmp_path, name, kind):
    assert detect_format(tmp_path / name) == kind
    assert kind in FORMATS


def test_detect_format_folder(tmp_path):
    assert detect_format(tmp_path) == "folder"


def test_detect_format_unknown_suffix_lists_kinds(tmp_path):
    with pytest.raises(
        ValueError, match=r"data\.parquet.*'\.parquet'.*\.csv.*\.tsv.*\.jsonl.*folder"
    ):
        detect_format(tmp_path / "data.parquet")


# ---- csv ------------------------------------------------------------------------------------


def test_csv_round_trip(tmp_path):
    path = write(
        tmp_path / "r.csv",
        'text,label\n"Great film, really.<br /><br />Loved it.", pos \n'
        '"two\nlines",neg\r\n  padded text  ,pos\n\n',
    )
    ex = read_labelled(path)
    assert ex.texts == ["Great film, really.<br /><br />Loved it.", "two\nlines", "  padded text  "]
    assert ex.labels == ["pos", "neg", "pos"]  # labels stripped, texts raw
    assert ex.source == str(path)
    assert ex.skipped == 0
    assert len(ex) == 3


def test_csv_byte_order_mark_is_dropped(tmp_path):
    path = write(tmp_path / "excel.csv", "\ufefftext,label\nhi,pos\n".encode("utf-8"))
    assert read_labelled(path).texts == ["hi"]


def test_csv_column_selection(tmp_path):
    path = write(tmp_path / "r.csv", "id,review,sentiment\n1,good,positive\n2,bad,negative\n")
    ex = read_labelled(path, text_column="review", label_column="sentiment")
    assert ex.texts == ["good", "bad"]
    assert ex.labels == ["positive", "negative"]


@pytest.mark.parametrize("key", ["text_column", "label_column"])
def test_csv_unknown_column_lists_columns(tmp_path, key):
    path = write(tmp_path / "r.csv", "id, review ,sentiment\n1,good,positive\n")
    kwargs = {"text_column": "review", "label_column": "sentiment", key: "nope"}
    with pytest.raises(
        ValueError, match=r"r\.csv has no column 'nope'; its columns are: id, review, sentiment"
    ):
        read_labelled(path, **kwargs)


def test_csv_without_labels_needs_no_label_column(tmp_path):
    path = write(tmp_path / "r.csv", "text\nfirst\nsecond\n")
    ex = read_labelled(path, labels=False)
    assert ex.texts == ["first", "second"]
    assert ex.labels is None


def test_csv_missing_fields_are_skipped_and_counted(tmp_path):
    path = write(
        tmp_path / "r.csv",
        "text,label\nok one,pos\nshort row\n   ,neg\nno label,  \nok two,neg\na,b,extra\n"
        "trailing comma,pos,\n",
    )
    ex = read_labelled(path)
    assert ex.texts == ["ok one", "ok two", "trailing comma"]
    assert ex.labels == ["pos", "neg", "pos"]
    assert ex.skipped == 4


def test_csv_error_mode_names_the_line(tmp_path):
    # the quoted newline makes the bad row's line differ from its row number
    path = write(tmp_path / "r.csv", 'text,label\n"multi\nline",pos\n  ,neg\n')
    with pytest.raises(ValueError, match=r"r\.csv, line 4: an empty text; .*on_missing='skip'"):
        read_labelled(path, on_missing="error")


def test_csv_error_mode_short_row(tmp_path):
    path = write(tmp_path / "r.csv", "text,label\nfine,pos\nno label here\n")
    with pytest.raises(ValueError, match=r"line 3: 1 fields where the header has 2"):
        read_labelled(path, on_missing="error")


def test_csv_unclosed_quote_names_the_line(tmp_path):
    path = write(tmp_path / "r.csv", 'text,label\nfine,pos\n"never closed,neg\nmore,pos\n')
    with pytest.raises(ValueError, match=r"r\.csv, line 3: not valid csv .*quotes"):
        read_labelled(path)


def test_header_only_is_an_error(tmp_path):
    path = write(tmp_path / "r.csv", "text,label\n")
    with pytest.raises(ValueError, match=r"r\.csv has a header but no rows"):
        read_labelled(path)


def test_all_rows_skipped_is_an_error(tmp_path):
    path = write(tmp_path / "r.csv", "text,label\n ,pos\nhi,\nthere, \n")
    with pytest.raises(
        ValueError, match=r"all 3 rows were skipped \(1 with an empty text, 2 with an empty label\)"
    ):
        read_labelled(path)


# ---- tsv ------------------------------------------------------------------------------------


def test_tsv_round_trip_keeps_quotes(tmp_path):
    path = write(
        tmp_path / "sst.tsv", 'sentence\tlabel\n"quoted" start, comma\t1\nit \'s fine\t0\n'
    )
    ex = read_labelled(path, text_column="sentence")
    assert ex.texts == ['"quoted" start, comma', "it 's fine"]
    assert ex.labels == ["1", "0"]


def test_tab_suffix_reads_as_tsv(tmp_path):
    path = write(tmp_path / "d.tab", "text\tlabel\na,b\tc\n")
    assert read_labelled(path).texts == ["a,b"]


# ---- jsonl ----------------------------------------------------------------------------------


def test_jsonl_round_trip(tmp_path):
    path = write(
        tmp_path / "d.jsonl",
        '{"text": "good<br />film", "label": "pos"}\r\n\n   \n{"text": "bad", "label": " neg "}\n',
    )
    ex = read_labelled(path)
    assert ex.texts == ["good<br />film", "bad"]
    assert ex.labels == ["pos", "neg"]
    assert ex.skipped == 0


def test_jsonl_column_selection(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"review": "nice", "stars": "5", "text": "x"}])
    ex = read_labelled(path, text_column="review", label_column="stars")
    assert (ex.texts, ex.labels) == (["nice"], ["5"])


def test_jsonl_unknown_column_lists_first_keys(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"review": "a", "y": 1}, {"review": "b", "z": 0}])
    with pytest.raises(ValueError, match=r"d\.jsonl has no column 'text'; .*: review, y;"):
        read_labelled(path, label_column="y")


def test_jsonl_key_in_some_rows_only_skips_the_others(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"text": "a", "label": "x"},
            {"text": "b"},
            {"text": None, "label": "y"},
            {"text": "c", "label": "z"},
        ],
    )
    ex = read_labelled(path)
    assert (ex.texts, ex.labels, ex.skipped) == (["a", "c"], ["x", "z"], 2)
    with pytest.raises(ValueError, match=r"d\.jsonl, line 2: no label"):
        read_labelled(path, on_missing="error")


def test_jsonl_non_string_labels(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"text": "a", "label": 1},
            {"text": "b", "label": 0},
            {"text": "c", "label": True},
            {"text": "d", "label": 2.5},
            {"text": "e", "label": None},
        ],
    )
    ex = read_labelled(path)
    assert ex.labels == ["1", "0", "True", "2.5"]
    assert ex.skipped == 1


def test_jsonl_label_that_is_a_list_is_an_error(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": [1]}]
    )
    with pytest.raises(ValueError, match=r"line 2: 'label' holds a JSON array"):
        read_labelled(path)


def test_jsonl_bad_line_names_it(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n\n{"text": "b", label}\n')
    with pytest.raises(ValueError, match=r"d\.jsonl, line 3: not valid JSON"):
        read_labelled(path)


def test_jsonl_line_not_an_object_names_it(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n["b", "y"]\n')
    with pytest.raises(ValueError, match=r"d\.jsonl, line 2: a JSON array, not an object"):
        read_labelled(path)


# ---- folder ---------------------------------------------------------------------------------


def test_folder_layout(tmp_path):
    root = make_folder(
        tmp_path / "imdb",
        {
            "pos/2.txt": "good two",
            "pos/10.txt": "good ten<br />",
            "neg/b.txt": "bad b\n",
            "neg/a.txt": "bad a",
            "neg/notes.md": "not an example",
            "neg/.hidden.txt": "hidden file",
            "README.txt": "root files are ignored",
            "empty/readme.md": "a sub-folder without .txt files is ignored",
            ".cache/x.txt": "hidden folder",
        },
    )
    ex = read_labelled(root)
    assert ex.labels == ["neg", "neg", "pos", "pos"]  # labels sorted, then files sorted by name
    assert ex.texts == ["bad a", "bad b\n", "good ten<br />", "good two"]
    assert ex.source == str(root)


def test_folder_without_labels_reads_every_text(tmp_path):
    root = make_folder(tmp_path / "d", {"pos/1.txt": "p", "neg/1.txt": "n", "unsup/1.txt": "u"})
    ex = read_labelled(root, labels=False)
    assert ex.labels is None
    assert ex.texts == ["n", "p", "u"]


def test_folder_blank_file_is_skipped_or_named(tmp_path):
    root = make_folder(tmp_path / "d", {"pos/1.txt": "p", "pos/2.txt": "  \n"})
    assert read_labelled(root).skipped == 1
    with pytest.raises(ValueError, match=r"2\.txt: an empty text"):
        read_labelled(root, on_missing="error")


def test_folder_without_label_subfolders_is_an_error(tmp_path):
    root = make_folder(tmp_path / "flat", {"1.txt": "a", "2.txt": "b", "sub/x.md": "c"})
    with pytest.raises(
        ValueError, match=r"flat has no sub-folder holding \.txt files; .*per label"
    ):
        read_labelled(root)


def test_folder_bad_encoding_names_the_file(tmp_path):
    root = make_folder(tmp_path / "d", {"pos/1.txt": "fine"})
    (root / "pos" / "2.txt").write_bytes("ok\ncaf\u00e9".encode("latin-1"))
    with pytest.raises(ValueError, match=r"2\.txt, line 2: byte 0xe9 .*--encoding latin-1"):
        read_labelled(root)
    assert read_labelled(root, encoding="latin-1").texts == ["fine", "ok\ncaf\u00e9"]


# ---- txt ------------------------------------------------------------------------------------


def test_txt_one_text_per_line(tmp_path):
    path = write(tmp_path / "p.txt", "first review\r\n\n  second <br /> one \n\n")
    ex = read_labelled(path, labels=False)
    assert ex.texts == ["first review", "  second <br /> one "]
    assert ex.labels is None


def test_txt_with_labels_is_an_error(tmp_path):
    path = write(tmp_path / "p.txt", "a\nb\n")
    with pytest.raises(
        ValueError, match=r"p\.txt is a \.txt file, which has no labels; .*labels=False"
    ):
        read_labelled(path)


# ---- bad files ------------------------------------------------------------------------------


def test_mixed_encoding_names_line_and_byte(tmp_path):
    path = write(
        tmp_path / "mixed.csv", b"text,label\nfine,pos\n" + "caf\u00e9,neg\n".encode("latin-1")
    )
    with pytest.raises(
        ValueError, match=r"mixed\.csv, line 3: byte 0xe9 .*not valid utf-8; .*--encoding latin-1"
    ):
        read_labelled(path)
    ex = read_labelled(path, encoding="latin-1")
    assert ex.texts == ["fine", "caf\u00e9"]


def test_binary_file(tmp_path):
    path = write(tmp_path / "blob.csv", b"text,label\n\x89PNG\x00\x00\xff,pos\n")
    with pytest.raises(ValueError, match=r"blob\.csv looks binary"):
        read_labelled(path)


def test_nul_in_valid_utf8_is_binary(tmp_path):
    path = write(tmp_path / "nul.jsonl", b'{"text": "a", "label": "b"}\n\x00\n')
    with pytest.raises(ValueError, match=r"nul\.jsonl looks binary"):
        read_labelled(path)


@pytest.mark.parametrize(("name", "data"), [("e.csv", b""), ("e.jsonl", b"\n  \n"), ("e.txt", b"")])
def test_empty_file(tmp_path, name, data):
    path = write(tmp_path / name, data)
    with pytest.raises(ValueError, match=r"e\.\w+ is empty"):
        read_labelled(path, labels=not name.endswith(".txt"))


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv: no such file"):
        read_labelled(tmp_path / "nope.csv")


def test_unknown_encoding(tmp_path):
    path = write(tmp_path / "r.csv", "text,label\na,b\n")
    with pytest.raises(ValueError, match=r"unknown encoding 'utf-9'"):
        read_labelled(path, encoding="utf-9")


def test_bad_on_missing(tmp_path):
    path = write(tmp_path / "r.csv", "text,label\na,b\n")
    with pytest.raises(ValueError, match=r"on_missing must be 'skip' or 'error', got 'drop'"):
        read_labelled(path, on_missing="drop")


def test_examples_needs_one_label_per_text():
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        Examples(["a", "b"], ["x"], "mem")
