"""Building and opening the C++ time loops' module (native.cpp, native_ln.cpp): its name per
torch version and source, a kernel lock so that one process builds at a time, and the one-line
message when no build is possible. native.py decides when to load it."""

import contextlib
import hashlib
import importlib.util
import logging
import re
import sys
from pathlib import Path

import torch

try:
    import fcntl
except ImportError:  # not POSIX: no kernel lock, builds are serialised by torch's alone
    fcntl = None

logger = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("native.cpp")
# one module: native_ln.cpp has layer_norm's loops, native_math.h what both share
_SOURCES = [_SOURCE, _SOURCE.with_name("native_ln.cpp")]
_HEADERS = [_SOURCE.with_name("native_math.h"), _SOURCE.with_name("native_tile.h")]
# -fopenmp: the loops' `rows` split a step's rows across threads with at::parallel_for, which
# is an OpenMP region only in code compiled with OpenMP (ATen/ParallelOpenMP.h); without it,
# it runs every row on the calling thread, whatever torch.get_num_threads() says. Where torch
# itself runs on OpenMP (its Linux wheels: GNU OpenMP, the runtime g++ links).
_OPENMP = sys.platform.startswith("linux") and torch.backends.openmp.is_available()
_CFLAGS = ["-O3", "-fno-trapping-math"] + (["-fopenmp"] if _OPENMP else [])
_LDFLAGS = ["-fopenmp"] if _OPENMP else []
EXTRA = "pip install 'rnnkit[native]'"


def _name() -> str:
    """The module's name, one per torch version and source: a build is only valid for the
    torch whose headers and ABI it was compiled against, and for the native.cpp it compiled
    (an edited source gets a build of its own instead of replacing a build in use)."""
    text = b"".join(p.read_bytes() for p in _SOURCES + _HEADERS) + repr(_CFLAGS).encode()
    digest = hashlib.sha256(text).hexdigest()[:12]
    return "rnnkit_native_" + re.sub(r"\W", "_", torch.__version__) + "_" + digest


def _build():
    try:
        from torch.utils.cpp_extension import _get_build_directory

        name = _name()
        where = Path(_get_build_directory(name, False))
        with _build_lock(where):
            return _import(name, where / f"{name}.so") or _compile(name, where)
    except Exception as e:  # no compiler, no ninja, a failed build: keep the Python loops
        logger.warning(fallback_message(e))
        return None


@contextlib.contextmanager
def _build_lock(where: Path):
    """One rnnkit process at a time builds or opens the module in `where`: a kernel lock
    (flock), released by the kernel when its holder dies, so a process killed mid-build
    never leaves the others waiting (torch's own "lock" file would: torch.utils.file_baton
    waits for ever on the file of a killed builder)."""
    where.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(where / "rnnkit-build.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _import(name: str, path: Path):
    """The module built at `path` by an earlier process, or None where there is none yet."""
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compile(name: str, where: Path):
    """Build the module with torch.utils.cpp_extension (about 30 s) and load it. Holding the
    build lock, no live rnnkit build owns torch's baton file: one left there was a killed
    build's, and is removed so that torch does not wait on it."""
    from torch.utils import cpp_extension
    from torch.utils.cpp_extension import load as cpp_load

    cpp_extension.verify_ninja_availability()  # before saying that a build starts
    sys.stderr.write("rnnkit: compiling its C++ time loops (once, about 30 s)\n")
    (where / "lock").unlink(missing_ok=True)
    sources = [str(p) for p in _SOURCES]
    return cpp_load(
        name=name, sources=sources, extra_cflags=_CFLAGS, extra_ldflags=_LDFLAGS, verbose=False
    )


def fallback_message(error: Exception) -> str:
    """One line: why the C++ loops are not there, that the Python loops run instead, and how
    to get the fast ones."""
    text = " ".join(str(error).split())
    if "ninja" in text.lower():
        why, need = "ninja is not installed", EXTRA
    else:
        why = f"the C++ time loops did not build ({type(error).__name__}: {text[:100]})"
        need = f"a C++ compiler and {EXTRA}"
    return (
        f"rnnkit: {why}, so the Python time loops run instead (same results, slower); "
        f"for the fast ones: {need}"
    )
