"""The shared IMDB archive unpacked once into a cache folder, for the IMDB benchmarks.

../shared/data/imdb/aclImdb_v1_labeled.tar.gz -> CACHE/aclImdb/{train,test}/{pos,neg}/*.txt,
the layout `rnnkit classify train --train DIR` reads as one sub-folder per label.
"""

import os
import tarfile
import tempfile
from pathlib import Path

ARCHIVE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "imdb"
ARCHIVE = ARCHIVE / "aclImdb_v1_labeled.tar.gz"
CACHE = Path(os.environ.get("RNNKIT_CACHE", Path(tempfile.gettempdir()) / "rnnkit-cache"))


def unpacked() -> Path:
    """CACHE/aclImdb, unpacked on first use (about 10 s; 50,000 reviews)."""
    root = CACHE / "aclImdb"
    done = CACHE / "aclImdb.done"
    if not done.exists():
        if not ARCHIVE.exists():
            raise SystemExit(f"error: {ARCHIVE} not found (the shared IMDB archive)")
        CACHE.mkdir(parents=True, exist_ok=True)
        with tarfile.open(ARCHIVE, "r:gz") as tar:
            tar.extractall(CACHE, filter="data")
        done.touch()
    return root
