"""The C++ time loops (`native.cpp`), compiled on first use; None where they cannot be.

The kernels run their loops over time here when the tensors are on the CPU (the RNN's, the
LSTM's and the GRU's forward and backward, and the LSTM's no-grad step): the same math as
their Python loops, without an interpreter round trip per op. The build
needs a C++ compiler (torch.utils.cpp_extension, cached in TORCH_EXTENSIONS_DIR, about 30 s
the first time); without one, or with RNNKIT_NATIVE=0, the kernels keep their Python loops,
which give the same results.
"""

import os
import re
import sys
import warnings
from pathlib import Path

_SOURCE = Path(__file__).with_name("native.cpp")
_state: dict = {}


def _name() -> str:
    """The module's name, one per torch version: a build is only valid for the torch whose
    headers and ABI it was compiled against."""
    import torch

    return "rnnkit_native_" + re.sub(r"\W", "_", torch.__version__)


def enabled() -> bool:
    return os.environ.get("RNNKIT_NATIVE", "1") not in ("0", "false", "no", "off")


def load():
    """The compiled module, or None (no compiler, a failed build, or RNNKIT_NATIVE=0)."""
    if not enabled():
        return None
    if "module" not in _state:
        _state["module"] = _build()
    return _state["module"]


def _build():
    try:
        from torch.utils.cpp_extension import _get_build_directory
        from torch.utils.cpp_extension import load as cpp_load

        name = _name()
        if not (Path(_get_build_directory(name, False)) / f"{name}.so").exists():
            sys.stderr.write("rnnkit: compiling its C++ time loops (once, about 30 s)\n")
        return cpp_load(
            name=name,
            sources=[str(_SOURCE)],
            extra_cflags=["-O3", "-fno-trapping-math"],
            verbose=False,
        )
    except Exception as e:  # no compiler, no ninja, a failed build: keep the Python loops
        warnings.warn(
            f"rnnkit: C++ time loops unavailable ({type(e).__name__}: {str(e)[:200]}); "
            "using the Python loops (same results, slower at small shapes)",
            stacklevel=3,
        )
        return None


def for_cpu(x) -> object | None:
    """The module when x is a CPU tensor and the loops are available, else None."""
    return load() if x.device.type == "cpu" else None
