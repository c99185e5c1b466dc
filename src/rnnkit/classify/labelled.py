"""Labelled texts for classification: reading them from csv, tsv, jsonl, txt or a folder per
label (their held-out split is in rnnkit.classify.heldout).

Texts are kept raw (IMDB's `<br />` included: the tokenizer cleans them); labels are strings.
Every bad input is a ValueError (FileNotFoundError for a missing path) whose one-line message
names the file, and the line where there is one, and says what to do.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.files import text_encoding
from rnnkit.train.options import encoding_example, spelled

FORMATS = ("csv", "tsv", "jsonl", "folder", "txt")
ON_MISSING = ("skip", "error")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "txt",
}
_SUPPORTED = (
    "a .csv, .tsv (.tab), .jsonl (.ndjson) or .txt file, "
    "or a folder with one sub-folder of .txt files per label"
)


@dataclass
class Examples:
    """Texts with their labels, read from one source."""

    texts: list[str]
    labels: list[str] | None  # None when read without labels (labels=False)
    source: str  # what was read, for messages: the path
    skipped: int = 0  # rows skipped: missing/empty text or missing/empty label

    def __post_init__(self) -> None:
        if self.labels is not None and len(self.labels) != len(self.texts):
            raise ValueError(
                f"{self.source}: {len(self.texts)} texts but {len(self.labels)} labels; "
                "give one label per text"
            )

    def __len__(self) -> int:
        return len(self.texts)


def detect_format(path: str | os.PathLike) -> str:
    """The format of `path`, one of FORMATS: "folder" for a directory, else from the suffix."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(
            f"cannot tell the format of {path} from its suffix {path.suffix!r}; give {_SUPPORTED}"
        )
    return kind


def read_labelled(
    path: str | os.PathLike,
    *,
    text_column: str = "text",
    label_column: str = "label",
    labels: bool = True,
    encoding: str = "utf-8",
    on_missing: str = "skip",
) -> Examples:
    """The examples in `path` (csv, tsv, jsonl, txt or a folder per label; see detect_format).

    labels=False reads the texts only (for predicting): `labels` is then None. A row with a
    missing or empty text or label is skipped and counted (on_missing="skip") or raises an
    error naming its line (on_missing="error"). text_column and label_column name the csv/tsv
    header columns or the jsonl keys; folders and txt files ignore them.
    """
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be 'skip' or 'error', got {on_missing!r}")
    _check_encoding(encoding)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder; check the path of the examples")
    kind = detect_format(path)
    rows = _Rows(str(path), labels, on_missing)
    if kind == "folder":
        _read_folder(path, rows, encoding)
        return rows.examples()
    if kind == "txt" and labels:
        raise ValueError(
            f"{path} is a .txt file, which has no labels; "
            + spelled("pass labels=False to read its lines as texts, or ", "")
            + "give labelled examples as csv, tsv, jsonl or a folder per label"
        )
    text = _read_file(path, encoding)
    if kind == "txt":
        _read_lines(path, text, rows)
    elif kind == "jsonl":
        _read_jsonl(path, text, rows, text_column, label_column)
    else:
        _read_table(path, text, rows, text_column, label_column, kind)
    return rows.examples()


# ---- rows -----------------------------------------------------------------------------------


class _Rows:
    """The examples read so far, with the skipped rows counted by reason."""

    def __init__(self, source: str, labels: bool, on_missing: str):
        self.source = source
        self.texts: list[str] = []
        self.labels: list[str] | None = [] if labels else None
        self.on_missing = on_missing
        self.skipped: Counter[str] = Counter()

    def add(self, where: str, text: str | None, label: str | None) -> None:
        """One row: `where` names it in messages ("file, line N"); None is a missing field."""
        problem = _problem(text, label, self.labels is not None)
        if problem:
            self.bad(where, problem)
        else:
            self.texts.append(text)
            if self.labels is not None:
                self.labels.append(label.strip())

    def bad(self, where: str, problem: str) -> None:
        if self.on_missing == "error":
            skip = spelled("on_missing='skip'", "--on-missing skip")
            raise ValueError(f"{where}: {problem}; fix the row, or pass {skip} to skip such rows")
        self.skipped[problem] += 1

    def examples(self) -> Examples:
        skipped = sum(self.skipped.values())
        if not self.texts:
            reasons = ", ".join(f"{count} with {why}" for why, count in self.skipped.items())
            raise ValueError(
                f"{self.source}: no usable examples; all {skipped} rows were skipped "
                f"({reasons}); check text_column, label_column and the file"
            )
        return Examples(self.texts, self.labels, self.source, skipped)


def _problem(text: str | None, label: str | None, labels: bool) -> str | None:
    if text is None:
        return "no text"
    if not text.strip():
        return "an empty text"
    if labels and label is None:
        return "no label"
    if labels and not label.strip():
        return "an empty label"
    return None


# ---- files ----------------------------------------------------------------------------------


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"unknown encoding {encoding!r}; try 'utf-8' or 'latin-1'") from None


def _read_file(path: Path, encoding: str) -> str:
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file; give a file of examples or a folder")
    text = _decode(path.read_bytes(), path, encoding)
    if not text.strip():
        raise ValueError(f"{path} is empty; give a file with examples in it")
    return text


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    """`raw` as text, without a leading byte-order mark; errors name the file and the line."""
    try:
        text = raw.decode(text_encoding(raw, encoding))
    except LookupError:
        raise ValueError(f"{encoding!r} is not a text encoding; try 'utf-8' or 'latin-1'") from None
    except UnicodeDecodeError as exc:
        if b"\0" in raw:
            raise ValueError(
                f"{path} looks binary (it holds NUL bytes); give a text file"
            ) from None
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{path}, line {line}: byte 0x{raw[exc.start]:02x} (offset {exc.start}) is not valid "
            f"{encoding}; pass the file's encoding, e.g. {encoding_example()}"
        ) from None
    if "\0" in text:
        raise ValueError(f"{path} looks binary (it holds NUL characters); give a text file")
    return text.removeprefix("\ufeff")


def _unknown_column(path: Path, name: str, columns: list[str], what: str = "columns") -> str:
    listed = ", ".join(columns) if columns else "(none)"
    return f"{path} has no column {name!r}; its {what} are: {listed}; name one of them instead"


# ---- formats --------------------------------------------------------------------------------


def _read_table(
    path: Path, text: str, rows: _Rows, text_column: str, label_column: str, kind: str
) -> None:
    """csv (quoted fields may hold delimiters and newlines) or tsv (no quoting, as in GLUE)."""
    if kind == "tsv":
        dialect = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    else:
        dialect = {"delimiter": ",", "quoting": csv.QUOTE_MINIMAL}
    reader = csv.reader(io.StringIO(text, newline=""), strict=True, **dialect)
    records = _csv_records(path, reader, kind)
    _, header = next(records, (0, []))
    columns = [name.strip() for name in header]
    wanted = [text_column, label_column] if rows.labels is not None else [text_column]
    for name in wanted:
        if name not in columns:
            raise ValueError(_unknown_column(path, name, columns))
    text_i = columns.index(text_column)
    label_i = columns.index(label_column) if rows.labels is not None else None
    seen = 0
    for line, row in records:
        seen += 1
        where = f"{path}, line {line}"
        extra = row[len(columns) :]
        if len(row) < len(columns) or any(field.strip() for field in extra):
            rows.bad(where, f"{len(row)} fields where the header has {len(columns)}")
            continue
        rows.add(where, row[text_i], None if label_i is None else row[label_i])
    if not seen:
        raise ValueError(f"{path} has a header but no rows; add one row per example below it")


def _csv_records(path: Path, reader, kind: str):
    """(first line, fields) of each non-blank record; a record may span lines (quoted newlines)."""
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ValueError(
                f"{path}, line {line}: not valid {kind} ({exc}); check the quotes of this row"
            ) from None
        if row:
            yield line, row


def _read_jsonl(path: Path, text: str, rows: _Rows, text_column: str, label_column: str) -> None:
    """One JSON object per non-blank line; a missing key or a null is a missing field."""
    records = list(_json_records(path, text))
    wanted = [text_column, label_column] if rows.labels is not None else [text_column]
    for name in wanted:
        if not any(name in record for _, record in records):
            keys = list(records[0][1])
            raise ValueError(_unknown_column(path, name, keys, "columns (keys of the first line)"))
    for line, record in records:
        where = f"{path}, line {line}"
        text_value = _json_text(record.get(text_column), where, text_column)
        label_value = None
        if rows.labels is not None:
            label_value = _json_text(record.get(label_column), where, label_column)
        rows.add(where, text_value, label_value)


def _json_records(path: Path, text: str):
    for line, source in enumerate(text.split("\n"), 1):
        if not source.strip():
            continue
        try:
            record = json.loads(source)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{path}, line {line}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "give one JSON object per line"
            ) from None
        if not isinstance(record, dict):
            raise ValueError(
                f"{path}, line {line}: a JSON {_json_kind(record)}, not an object; give one "
                'object per line, e.g. {"text": "...", "label": "..."}'
            )
        yield line, record


def _json_text(value, where: str, key: str) -> str | None:
    """A string as it is; a number or bool as str(value); null as None (missing)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return str(value)
    raise ValueError(
        f"{where}: {key!r} holds a JSON {_json_kind(value)}; give a string or a number"
    )


def _json_kind(value) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


def _read_lines(path: Path, text: str, rows: _Rows) -> None:
    """One text per non-blank line (\\n, \\r\\n or \\r ends a line)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for line, source in enumerate(lines, 1):
        if source.strip():
            rows.add(f"{path}, line {line}", source, None)


def _read_folder(path: Path, rows: _Rows, encoding: str) -> None:
    """One sub-folder per label holding one .txt file per example, read in sorted order."""
    groups = [(folder.name, _txt_files(folder)) for folder in _visible(path) if folder.is_dir()]
    groups = [(label, files) for label, files in groups if files]
    if not groups:
        raise ValueError(
            f"{path} has no sub-folder holding .txt files; a folder of examples holds one "
            f"sub-folder per label, one .txt file per example (e.g. {path / 'pos' / '1.txt'})"
        )
    for label, files in groups:
        for file in files:
            rows.add(str(file), _decode(file.read_bytes(), file, encoding), label)


def _txt_files(folder: Path) -> list[Path]:
    return [p for p in _visible(folder) if p.is_file() and p.suffix.lower() == ".txt"]


def _visible(folder: Path) -> list[Path]:
    """The entries of `folder` sorted by name, hidden ones (.git, .DS_Store) left out."""
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
