"""Manifests: the list of (audio file, transcript) pairs a speech run trains and evaluates on.

A manifest is a CSV file with the header `path,transcript` or a JSONL file (`.jsonl`) of
objects {"path": ..., "transcript": ...}. A relative path is relative to the manifest's own
folder, so a manifest and its audio move together.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.files import text_encoding

COLUMNS = ("path", "transcript")


@dataclass(frozen=True)
class Entry:
    path: Path  # the audio file, absolute
    transcript: str  # stripped, never empty


def read_manifest(path: str | Path) -> list[Entry]:
    """The entries of the CSV or JSONL manifest at `path`, in its order."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"manifest {path} does not exist (expected a CSV or JSONL file)")
    text = _text(path)
    rows = _jsonl_rows(text, path) if path.suffix.lower() == ".jsonl" else _csv_rows(text, path)
    entries = []
    for where, audio, transcript in rows:
        if not audio or not audio.strip():
            raise ValueError(f"{where}: the path is empty")
        transcript = (transcript or "").strip()
        if not transcript:
            raise ValueError(f"{where}: the transcript of {audio} is empty")
        audio_path = Path(audio.strip())
        if not audio_path.is_absolute():
            audio_path = path.parent.resolve() / audio_path
        entries.append(Entry(audio_path, transcript))
    if not entries:
        raise ValueError(f"manifest {path} has no entries")
    return entries


def write_manifest(path: str | Path, entries: list[tuple[str | Path, str]]) -> None:
    """A CSV manifest of (audio path, transcript); paths under the manifest's folder are written
    relative to it."""
    path = Path(path)
    base = path.parent.resolve()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for audio, transcript in entries:
        audio = Path(audio).resolve()
        writer.writerow(
            [audio.relative_to(base) if audio.is_relative_to(base) else audio, transcript]
        )
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _text(path: Path) -> str:
    """The manifest as text (UTF-8, or UTF-16/32 with a byte-order mark), the mark dropped."""
    raw = path.read_bytes()
    try:
        text = raw.decode(text_encoding(raw, "utf-8"))
    except UnicodeDecodeError as exc:
        what = "looks binary (it holds NUL bytes)" if b"\0" in raw else "is not UTF-8 text"
        raise ValueError(
            f"manifest {path} {what}: byte 0x{raw[exc.start]:02x} at offset {exc.start}; "
            "save it as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def _csv_rows(text: str, path: Path):
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(
            f"manifest {path} lacks the column(s) {missing}: expected a CSV with the header "
            f"'path,transcript', got {reader.fieldnames}"
        )
    for row in reader:
        yield f"{path}:{reader.line_num}", row["path"], row["transcript"]


def _jsonl_rows(text: str, path: Path):
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not a JSON object ({exc.msg})") from None
        if not isinstance(row, dict) or any(c not in row for c in COLUMNS):
            raise ValueError(f'{where}: expected {{"path": ..., "transcript": ...}}, got {line!r}')
        yield where, str(row["path"]), str(row["transcript"])
