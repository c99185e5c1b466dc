"""Transcripts as model targets: the CTC alphabet (symbol k <-> class k, the blank is class 0)
over characters or words, and class ids for isolated-word classification."""

from __future__ import annotations

from dataclasses import dataclass

UNITS = ("char", "word")


@dataclass
class Alphabet:
    """The symbols a CTC model emits: characters (spaces included) or whitespace words."""

    symbols: list[str]  # symbol of class k + 1; class 0 is the blank
    units: str = "char"  # "char" | "word"

    def __post_init__(self):
        if self.units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}, got {self.units!r}")
        if len(set(self.symbols)) != len(self.symbols) or not self.symbols:
            raise ValueError(f"the alphabet needs distinct symbols, got {self.symbols!r}")

    @classmethod
    def build(cls, transcripts: list[str], units: str = "char") -> Alphabet:
        """Every unit seen in the training transcripts, sorted."""
        if units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}, got {units!r}")
        return cls(sorted({u for t in transcripts for u in split(t, units)}), units)

    @property
    def num_classes(self) -> int:
        return len(self.symbols) + 1

    def encode(self, transcript: str, source: str = "the transcript") -> list[int]:
        """Class ids (>= 1) of the transcript's units; a unit outside the alphabet is an error."""
        index = {s: k + 1 for k, s in enumerate(self.symbols)}
        units = split(transcript, self.units)
        if not units:
            raise ValueError(f"{source} is empty")
        unknown = sorted({u for u in units if u not in index})
        if unknown:
            raise ValueError(
                f"{source} {transcript!r} has {self.units}s outside the trained alphabet: "
                f"{unknown} (the model knows {self.symbols})"
            )
        return [index[u] for u in units]

    def decode(self, ids: list[int]) -> str:
        sep = "" if self.units == "char" else " "
        return sep.join(self.symbols[k - 1] for k in ids)

    def to_dict(self) -> dict:
        return {"symbols": list(self.symbols), "units": self.units}

    @classmethod
    def from_dict(cls, data: dict) -> Alphabet:
        return cls(list(data["symbols"]), data["units"])


def split(transcript: str, units: str) -> list[str]:
    return list(" ".join(transcript.split())) if units == "char" else transcript.split()


def class_ids(transcripts: list[str], classes: list[str], source: str) -> list[int]:
    """The class id of each transcript; one the classifier does not know is an error."""
    index = {c: k for k, c in enumerate(classes)}
    unknown = sorted({t for t in transcripts if t not in index})
    if unknown:
        shown = unknown[:5] + (["..."] if len(unknown) > 5 else [])
        raise ValueError(
            f"{source} has transcripts the classifier was not trained on: {shown} "
            f"(it knows {classes})"
        )
    return [index[t] for t in transcripts]
