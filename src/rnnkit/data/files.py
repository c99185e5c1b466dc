"""Writing an output file (predictions, translations, a page) so that a reader never sees it
half-written: a temporary sibling, renamed into place."""

from __future__ import annotations

import codecs
import os
import tempfile
from pathlib import Path

# Byte-order marks of the Unicode encodings whose text holds NUL bytes, longest first
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def text_encoding(raw: bytes, encoding: str) -> str:
    """The encoding to read `raw` with: UTF-16 or UTF-32 when it starts with their byte-order
    mark and `encoding` is UTF-8 (the default), else `encoding`. A text saved as "Unicode" by
    an editor reads as its author meant, not as binary."""
    if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig"):
        return encoding
    return next((name for bom, name in _BOMS if raw.startswith(bom)), encoding)


def new_file_mode() -> int:
    """The mode open() gives a new file: 0o666 less the process's umask (0644 under 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, new_file_mode())  # mkstemp's file is private (0600); `path` is not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
