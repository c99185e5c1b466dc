"""Text files to character ids: reading, the vocabulary, the train/validation split and the
truncated-BPTT streams a character language model is trained on.

    N: characters in the text, B: streams (the global batch), T: bptt steps per batch,
    S: characters per stream (N // B)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.files import text_encoding
from rnnkit.train.options import encoding_example

UNK = "\ufffd"  # how decode() shows the <unk> id: the Unicode replacement character


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The whole file as a string, or an error naming the file and what to do.

    Missing file: FileNotFoundError. Directory, empty file, binary file (NUL bytes) or bytes
    that are not valid in `encoding`: ValueError. Line endings are kept as they are.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; check the path of the text file")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a text file")
    raw = path.read_bytes()
    if not raw:
        raise ValueError(f"{path} is empty; give a text file with some text in it")
    try:
        text = raw.decode(text_encoding(raw, encoding))
    except LookupError:
        raise ValueError(
            f"unknown encoding {encoding!r} for {path}; try 'utf-8' or 'latin-1'"
        ) from None
    except UnicodeDecodeError as exc:
        if b"\0" in raw:
            raise ValueError(
                f"{path} looks binary (it holds NUL bytes); give a plain text file"
            ) from None
        bad = raw[exc.start]
        raise ValueError(
            f"{path} is not valid {encoding} (byte 0x{bad:02x} at offset {exc.start}); "
            f"pass its encoding, e.g. {encoding_example()}"
        ) from None
    if "\0" in text:
        raise ValueError(f"{path} looks binary (it holds NUL characters); give a plain text file")
    return text


def builtin_corpus() -> str:
    """English text present on every Python install: the topics of Python's own help().

    About 465k characters (`pydoc_data.topics`), the default when no text file is given.
    """
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, validation): the first 1 - val_fraction of the text, then the rest (nanoGPT)."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise TypeError(f"val_fraction must be a float in [0, 1), got {val_fraction!r}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


class CharVocab:
    """Characters <-> ids: the sorted unique characters of a text, then one <unk> id.

    Id i < len(chars) is chars[i]; id `unk_id` == len(chars) stands for any character the
    text did not have (met at evaluation or in a priming text). len(vocab) counts <unk>.
    """

    def __init__(self, chars: str):
        if not isinstance(chars, str) or not chars:
            raise ValueError("a vocabulary needs at least one character")
        if list(chars) != sorted(set(chars)):
            raise ValueError("vocabulary characters must be unique and sorted")
        self.chars = chars
        self.unk_id = len(chars)
        self._codes = np.frombuffer(chars.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        if not text:
            raise ValueError("cannot build a vocabulary from an empty text")
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars) + 1

    def __eq__(self, other) -> bool:
        return isinstance(other, CharVocab) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"CharVocab({len(self.chars)} chars + <unk>)"

    def encode(self, text: str) -> Tensor:
        """(N,) int64 ids; characters outside the vocabulary become unk_id."""
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        ids = np.searchsorted(self._codes, codes)  # chars are sorted by code point
        found = self._codes[np.minimum(ids, len(self._codes) - 1)] == codes
        return torch.from_numpy(np.where(found, ids, self.unk_id).astype(np.int64))

    def decode(self, ids) -> str:
        """Ids (a tensor or a sequence of ints) back to text; <unk> shows as U+FFFD."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        return "".join(self.chars[i] if 0 <= i < self.unk_id else UNK for i in ids)

    def to_dict(self) -> dict:
        """JSON-able; `CharVocab.from_dict` inverts it."""
        return {"kind": "char", "chars": self.chars, "unk_id": self.unk_id}

    @classmethod
    def from_dict(cls, data: dict) -> CharVocab:
        if not isinstance(data, dict) or data.get("kind") != "char" or "chars" not in data:
            raise ValueError("not a character vocabulary: expected {'kind': 'char', 'chars': ...}")
        return cls(data["chars"])


class TextStreams:
    """Truncated-BPTT batches: the text cut into B contiguous streams read T steps at a time.

    Stream j holds characters [j*S, (j+1)*S) (S = N // B; the last N - B*S are dropped).
    Batch k of epoch e = k // len(self) reads columns [t, t + T) with t = (k % len(self)) * T:
    inputs (B, T) and targets (B, T), the inputs shifted by one character. Batch k + 1
    continues batch k in every stream, so a model may carry its hidden state from one to the
    next (detached). Batch k with `is_epoch_start(k)` starts the streams again from the top:
    a state carried across that seam comes from other text, which is harmless (as after a
    reset) but a trainer may reset there. Batches are addressed by k (`streams(k)` is
    `streams.batch(k)`, the training loop's `batches(step)`), so a run resumes at any step.

    With world_size > 1 the B streams are shared out: rank r gets streams
    [r*B/W, (r+1)*B/W), and the ranks' batches stacked in rank order are the global batch.
    """

    def __init__(
        self,
        ids: Tensor,
        batch_size: int,
        bptt: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        name: str = "text",  # what to call the text in error messages
    ):
        for key, value in [("batch_size", batch_size), ("bptt", bptt), ("world_size", world_size)]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank!r}")
        if batch_size % world_size:
            raise ValueError(
                f"batch_size={batch_size} must be a multiple of world_size={world_size} "
                "(each process takes batch_size / world_size streams)"
            )
        if not isinstance(ids, Tensor) or ids.dim() != 1:
            raise ValueError("ids must be a 1-D tensor of character ids")
        need = batch_size * (bptt + 1)
        if len(ids) < need:
            raise ValueError(
                f"the {name} has {len(ids)} characters, fewer than one batch needs: "
                f"batch {batch_size} x (bptt {bptt} + 1) = {need}; give a longer text or a "
                "smaller batch or bptt"
            )
        self.batch_size, self.bptt = batch_size, bptt
        self.rank, self.world_size = rank, world_size
        self.stream_len = len(ids) // batch_size  # S
        local = batch_size // world_size
        streams = ids[: batch_size * self.stream_len].view(batch_size, self.stream_len)  # (B, S)
        self.data = streams[rank * local : (rank + 1) * local].contiguous()  # (B/W, S)

    def __len__(self) -> int:
        """Batches per epoch: full T-step windows that fit in S - 1 (input, target) pairs."""
        return (self.stream_len - 1) // self.bptt

    def __repr__(self) -> str:
        return (
            f"TextStreams(batch_size={self.batch_size}, bptt={self.bptt}, "
            f"rank={self.rank}/{self.world_size}, {len(self)} batches per epoch)"
        )

    @property
    def tokens_per_batch(self) -> int:
        """Characters predicted per batch by this process: (B / W) * T."""
        return self.data.shape[0] * self.bptt

    @property
    def global_tokens_per_batch(self) -> int:
        """Characters predicted per batch by all processes together: B * T."""
        return self.batch_size * self.bptt

    def epoch(self, k: int) -> int:
        return k // len(self)

    def is_epoch_start(self, k: int) -> bool:
        """True when batch k starts the streams from the top (reset any carried state)."""
        return k % len(self) == 0

    def batch(self, k: int) -> tuple[Tensor, Tensor]:
        """Batch k: (inputs (B/W, T), targets (B/W, T)) int64, for any k >= 0."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"batch index must be an int >= 0, got {k!r}")
        t = (k % len(self)) * self.bptt
        return self._window(t, self.bptt)

    __call__ = batch

    def eval_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """One pass over every (input, target) pair of the streams, the last batch shorter."""
        for t in range(0, self.stream_len - 1, self.bptt):
            yield self._window(t, min(self.bptt, self.stream_len - 1 - t))

    def _window(self, t: int, width: int) -> tuple[Tensor, Tensor]:
        x = self.data[:, t : t + width]  # (B/W, T)
        y = self.data[:, t + 1 : t + 1 + width]  # (B/W, T)
        return x.contiguous(), y.contiguous()
