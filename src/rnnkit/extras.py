"""rnnkit's optional extras (pyproject.toml's optional-dependencies): which extra brings which
module, and `need`, which imports a module or says in one line how to install it.

    need("sacrebleu", "translate train --valid-source")
    # MissingExtraError: translate train --valid-source needs sacrebleu:
    #                    pip install 'rnnkit[translate]'

The module is imported, not only looked up, so that a package that is present but broken
(its own dependency missing) is caught before any work too.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# module -> the extra that installs it (the first extra of pyproject.toml that lists it)
EXTRA_OF = {
    "sacrebleu": "translate",
    "sentencepiece": "translate",
    "matplotlib": "plot",
    "vega_datasets": "forecast",
    "soundfile": "speech",
    "librosa": "speech",
    "soxr": "speech",
    "onnx": "export",
    "onnxscript": "export",
    "onnxruntime": "export",
}


class MissingExtraError(ImportError, ValueError):
    """An optional module a command needs is not importable. An ImportError, and a ValueError so
    that the command line reports it as one `error:` line like its other refusals."""


def need(module: str, what: str, extra: str | None = None) -> ModuleType:
    """The module `module`, imported; MissingExtraError naming `what` needs it (a command and
    its flags: "translate eval") and the pip command of its extra (`extra`, default
    EXTRA_OF[module]) when it cannot be imported."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = extra or EXTRA_OF.get(module)
        install = f"pip install 'rnnkit[{extra}]'" if extra else f"pip install {module}"
        broken = "" if _absent(exc, module) else f" (importing it failed: {_reason(exc)})"
        raise MissingExtraError(f"{what} needs {module}{broken}: {install}") from None


def _absent(exc: ImportError, module: str) -> bool:
    """Whether the import failed because `module` itself is not installed."""
    return isinstance(exc, ModuleNotFoundError) and exc.name == module


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
