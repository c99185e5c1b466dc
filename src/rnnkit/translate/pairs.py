"""Parallel text read from files: two aligned files (line i of one translates line i of the
other) or one TSV of source<TAB>target pairs; gzip-compressed files (.gz) read as they are."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.files import text_encoding
from rnnkit.train.options import encoding_example


@dataclass
class Pairs:
    """Aligned sentence pairs; pairs with an empty side were skipped and counted."""

    source: list[str]
    target: list[str]
    skipped: int  # pairs left out because a side was empty
    origin: str  # where they came from, for messages

    def __len__(self) -> int:
        return len(self.source)


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """The lines of a text file (or .gz), without their line ends and a byte-order mark."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        text = raw.decode(text_encoding(raw, encoding))
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}; try 'utf-8' or 'latin-1'") from None
    except UnicodeDecodeError as exc:
        if b"\0" in raw:
            raise ValueError(
                f"{path} looks binary (it holds NUL bytes); give a text file"
            ) from None
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{path}, line {line}: byte 0x{raw[exc.start]:02x} is not valid {encoding}; "
            f"pass its encoding, e.g. {encoding_example()}"
        ) from None
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"cannot read {path}: {exc}") from None
    if "\0" in text:
        raise ValueError(f"{path} looks binary (it holds NUL characters); give a text file")
    return text.removeprefix("\ufeff").splitlines()


def read_pairs(
    source: str | Path, target: str | Path | None = None, encoding: str = "utf-8"
) -> Pairs:
    """Pairs from two aligned files, or from one TSV file (`target` None) of two columns."""
    if target is None:
        src, tgt = _split_tsv(source, read_lines(source, encoding))
        origin = str(source)
    else:
        src, tgt = read_lines(source, encoding), read_lines(target, encoding)
        if len(src) != len(tgt):
            raise ValueError(
                f"the parallel files differ in length: {source} has {len(src):,} lines, "
                f"{target} has {len(tgt):,}; line i of one must translate line i of the other"
            )
        origin = f"{source} + {target}"
    kept = [(s.strip(), t.strip()) for s, t in zip(src, tgt, strict=True)]
    kept = [(s, t) for s, t in kept if s and t]
    if not kept:
        raise ValueError(f"{origin} holds no sentence pair with both sides non-empty")
    return Pairs([s for s, _ in kept], [t for _, t in kept], len(src) - len(kept), origin)


def _split_tsv(path, lines: list[str]) -> tuple[list[str], list[str]]:
    src, tgt = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            src.append("")
            tgt.append("")
            continue
        cells = line.split("\t")
        if len(cells) != 2:
            raise ValueError(
                f"{path}:{n}: expected source<TAB>target (2 columns), got {len(cells)} columns; "
                "for two aligned files give --source and --target"
            )
        src.append(cells[0])
        tgt.append(cells[1])
    return src, tgt
