"""Pretrained word vectors (GloVe or word2vec text files) read for the tokens of a vocabulary."""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.data.vocab import Vocab
from rnnkit.train.options import encoding_example

_HEADER = re.compile(r"(\d+) (\d+)")  # word2vec text format: "count dim"
_EXACT, _LOWER, _FOLDED, _NONE = 0, 1, 2, 3  # how well a file word matches a token, best first


def read_vectors(
    path: str | os.PathLike, vocab: Vocab, *, encoding: str = "utf-8"
) -> tuple[Tensor, Tensor]:
    """(vectors (V, D) float32, found (V,) bool) for the tokens of `vocab` from a GloVe text file
    (`word v1 ... vD` per line) or word2vec text format (same, after a first line `count dim`).

    Rows of tokens not in the file are 0 and found False; so are <pad> and <unk>, which are never
    looked up. Lookup is exact first, then lower-cased: for token t, the file's line for t, else
    its line for t.lower(), else the first line whose word lower-cased is t.lower(). The file is
    read as a stream, one line at a time. D comes from the first line (the header's dim, or the
    field count - 1); a word may hold spaces (glove.840B): the last D fields are the values. Every
    line's field count is checked; the values are parsed (and checked) on the lines used.
    """
    path = _check_path(path)
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a Vocab, got {type(vocab).__name__}")
    _check_encoding(encoding, path)
    lookup = _Lookup(vocab)
    vectors, dim, declared, count = None, 0, None, 0
    with open(path, "rb") as file:
        for n, raw in enumerate(file, 1):
            line = _decode(raw, n, path, encoding).rstrip("\r\n\t ")
            if n == 1:
                line = line.lstrip("\ufeff")  # a byte-order mark
                header = _HEADER.fullmatch(line)
                if header:
                    declared, dim = int(header[1]), int(header[2])
                    if dim < 1:
                        raise ValueError(f"{path}, line 1: header dim {dim}; expected >= 1")
                    continue
            if not line:
                continue
            if not dim:
                dim = line.count(" ")
                if dim < 1:
                    raise ValueError(f"{path}, line {n}: {line!r:.60} has no values after the word")
            if vectors is None:
                vectors = torch.zeros(len(vocab), dim)
            word, values = _split(line, dim, n, path)
            count += 1
            matches = lookup.match(word)
            if matches:
                vector = _parse(values, n, path)
                for i in matches:
                    vectors[i] = vector
    if vectors is None:
        raise ValueError(f"{path} holds no vectors; expected lines 'word v1 ... vD'")
    if declared is not None and declared != count:
        raise ValueError(
            f"{path}: the header says {declared} vectors but the file has {count}; is it "
            "truncated? (or fix the count in the first line)"
        )
    return vectors, lookup.found()


def _check_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; check the path of the word-vectors file")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a word-vectors text file (GloVe, word2vec)")
    return path


def _check_encoding(encoding: str, path: Path) -> None:
    """A known encoding in which "\\n" is the byte 0x0a (the file is split into lines as bytes)."""
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(
            f"unknown encoding {encoding!r} for {path}; try 'utf-8' or 'latin-1'"
        ) from None
    if " \n".encode(encoding) != b" \n":
        raise ValueError(
            f"encoding {encoding!r} is not ASCII-compatible; vector files are read as lines of "
            "bytes: convert the file to utf-8"
        )


def _decode(raw: bytes, n: int, path: Path, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}, line {n}: not valid {encoding} (byte 0x{raw[exc.start]:02x}); "
            f"pass its encoding, e.g. {encoding_example()}"
        ) from None


def _split(line: str, dim: int, n: int, path: Path) -> tuple[str, list[str] | str]:
    """(word, values): the last `dim` fields are the values, the rest (joined by spaces) the word.

    The values come back as one string in the usual case (one field for the word) and are
    split only by `_parse`, on the lines used.
    """
    spaces = line.count(" ")
    if spaces == dim:
        word, _, values = line.partition(" ")
    elif spaces < dim:
        raise _mismatch(path, n, spaces, dim)
    else:  # a word with spaces, or too many values
        word, *values = line.rsplit(" ", dim)
        if _is_number(word.rpartition(" ")[2]) or "  " in line:
            raise _mismatch(path, n, spaces, dim, double="  " in line)
    if not word or word[0] == " " or word[-1] == " " or "  " in word:
        raise ValueError(
            f"{path}, line {n}: no word before the values (or two spaces in a row); "
            "expected 'word v1 ... vD'"
        )
    return word, values


def _mismatch(path: Path, n: int, values: int, dim: int, double: bool = False) -> ValueError:
    if double:
        return ValueError(f"{path}, line {n}: two spaces in a row; expected 'word v1 ... v{dim}'")
    return ValueError(
        f"{path}, line {n}: {values} values, but the vectors have {dim} (from the first line)"
    )


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _parse(values: list[str] | str, n: int, path: Path) -> Tensor:
    """The values of line n as a (D,) float32 tensor; a value that is not a finite number raises."""
    fields = values.split(" ") if isinstance(values, str) else values
    try:
        vector = torch.tensor([float(x) for x in fields], dtype=torch.float32)
    except ValueError:
        bad = next(x for x in fields if not _is_number(x))
        raise ValueError(f"{path}, line {n}: value {bad!r:.30} is not a number") from None
    if not torch.isfinite(vector).all():
        bad = fields[int((~torch.isfinite(vector)).nonzero()[0])]
        raise ValueError(f"{path}, line {n}: value {bad!r:.30} is not a finite float32 number")
    return vector


class _Lookup:
    """Which vocabulary ids a file word gives a vector to, each keeping its best match so far."""

    def __init__(self, vocab: Vocab):
        tokens = vocab.tokens
        specials = {vocab.pad_id, vocab.unk_id}
        self.exact = {t: i for i, t in enumerate(tokens) if i not in specials}
        self.lower: dict[str, list[int]] = {}
        for t, i in self.exact.items():
            self.lower.setdefault(t.lower(), []).append(i)
        self.rank = [_NONE] * len(tokens)

    def match(self, word: str) -> list[int]:
        """The ids whose vector this word's line gives (better than what they have), ranks set."""
        out = []
        i = self.exact.get(word)
        if i is not None and self.rank[i] > _EXACT:
            self.rank[i] = _EXACT
            out.append(i)
        lowered = word.lower()
        rank = _LOWER if word == lowered else _FOLDED
        for i in self.lower.get(lowered, ()):
            if self.rank[i] > rank:
                self.rank[i] = rank
                out.append(i)
        return out

    def found(self) -> Tensor:
        return torch.tensor([r != _NONE for r in self.rank], dtype=torch.bool)
