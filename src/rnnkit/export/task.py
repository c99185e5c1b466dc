"""What every task's `export` verb shares: the model file written atomically beside its JSON
sidecar, and the parity between the export and eager rnnkit, measured on held-back inputs
(onnxruntime for ONNX, `torch.export.load(...).module()` for .pt2) before anything is written.

A task describes its export as an `Export`: the module (a small wrapper around the trained
model, in eval mode), example inputs to trace, which dimensions are dynamic, the names of the
inputs and outputs, the sidecar, and the held-back batches. `write` exports to a temporary file,
runs the held-back batches through it and through the eager module, and only when they agree
within `TOLERANCE` renames it into place and writes the sidecar; otherwise it deletes it and
raises ValueError, so that a wrong model is never written.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.data.files import new_file_mode

FORMATS = ("onnx", "pt2")
EXTRA = "pip install 'rnnkit[export]'"
SIDECAR_VERSION = 1  # the sidecar's "version"; raised when its keys change meaning
TOLERANCE = 1e-4  # parity limit, relative to max(1, the largest |eager output|); float32
# runs of the same model in two runtimes differ by about 1e-7 to 1e-6 of that scale

Runner = Callable[..., list[np.ndarray]]  # inputs (tensors or None) -> the outputs, as numpy


@dataclass
class Export:
    """One task's trained model, ready to export and to check."""

    module: nn.Module  # eval mode; returns a tensor or a tuple of tensors
    example: tuple  # the inputs traced (their batch and time differ from held_back's)
    dynamic_shapes: tuple  # torch.export's, one entry per input
    input_names: list[str]
    output_names: list[str]
    sidecar: dict  # the task's part of the sidecar (vocabulary, labels, scalers, ...)
    held_back: list[tuple]  # input batches the parity runs through both
    what: str  # what held_back holds, for the parity line: "512 texts (test split)"
    compare: Callable[[Runner, Runner], tuple[float, float]] | None = None  # default: batches


def tensor(name: str, shape: list, dtype: str, about: str) -> dict:
    """A sidecar's description of one input or output."""
    return {"name": name, "shape": shape, "dtype": dtype, "about": about}


def require(fmt: str) -> None:
    """A ValueError naming the missing packages and the extra, before any work is done."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; give one of {', '.join(FORMATS)}")
    if fmt != "onnx":
        return
    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if not _installed(m)]
    if missing:
        raise ValueError(f"exporting to ONNX needs {' and '.join(missing)}: {EXTRA}")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def paths(run_dir: str, fmt: str, out: str | None, force: bool) -> tuple[Path, Path]:
    """(model file, sidecar): --out or RUN/export/model.FORMAT, and that name + ".json"
    (model.onnx.json: the two formats' sidecars differ); an existing file is an error unless
    `force`."""
    model = Path(out) if out else Path(run_dir) / "export" / f"model.{fmt}"
    if model.suffix != f".{fmt}":
        raise ValueError(f"--out {model} must end in .{fmt} for --format {fmt}")
    sidecar = model.with_name(model.name + ".json")
    for path in (model, sidecar):
        if path.is_dir():
            raise ValueError(f"{path} is a directory; give --out a file name ending in .{fmt}")
        if path.exists() and not force:
            raise ValueError(f"{path} exists; pass --force to replace it, or choose another --out")
    return model, sidecar


def write(export: Export, fmt: str, model_path: Path, sidecar_path: Path, info: dict) -> dict:
    """Export, measure the parity, and write the model and its sidecar; returns the sidecar."""
    model_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_model, tmp_sidecar = _temporary(model_path), _temporary(sidecar_path)
    try:
        (_onnx if fmt == "onnx" else _pt2)(export, tmp_model)
        try:
            parity = measure(export, runner(fmt, tmp_model, export.input_names))
        except Exception as exc:  # a runtime refusing an input the export should take
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            raise ValueError(
                f"the {fmt} export failed on the held-back {export.what}: "
                f"{type(exc).__name__}: {first}; nothing was written"
            ) from None
        limit = TOLERANCE * max(1.0, parity["max_abs_eager"])
        if not parity["max_abs_diff"] <= limit:
            raise ValueError(
                f"the {fmt} export differs from eager rnnkit by {parity['max_abs_diff']:.3g} "
                f"(more than {limit:.3g}) over {export.what}; nothing was written"
            )
        sidecar = _sidecar(export, fmt, model_path, parity, info)
        text = json.dumps(sidecar, indent=1, ensure_ascii=False) + "\n"
        tmp_sidecar.write_text(text, encoding="utf-8")
        _publish(tmp_model, model_path)
        _publish(tmp_sidecar, sidecar_path)
    finally:
        tmp_model.unlink(missing_ok=True)
        tmp_sidecar.unlink(missing_ok=True)
    return sidecar


def _temporary(path: Path) -> Path:
    """A new empty file beside `path`, for writing it whole before renaming it into place."""
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def _publish(tmp: Path, path: Path) -> None:
    """Rename `tmp` to `path`, readable as a newly created file would be (mkstemp's are 0600)."""
    os.chmod(tmp, new_file_mode())
    os.replace(tmp, path)


def _sidecar(export: Export, fmt: str, model_path: Path, parity: dict, info: dict) -> dict:
    loading = {
        "onnx": "onnxruntime.InferenceSession(model); session.run(None, {input name: array})",
        "pt2": "import rnnkit (it registers the operators the program calls), then "
        "torch.export.load(model).module()(*inputs)",
    }[fmt]
    return {
        "version": SIDECAR_VERSION,
        "format": fmt,
        "model": model_path.name,
        "how_to_run": loading,
        **export.sidecar,
        "parity": {**parity, "over": export.what},
        "checkpoint": {"path": str(info["path"]), "step": info["step"]},
    }


@contextlib.contextmanager
def _quiet():
    """The exporters' warnings and log lines (e.g. "torchvision is not installed") kept off
    stderr: the command's own output is the report."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _onnx(export: Export, path: Path) -> None:
    import rnnkit.export

    with _quiet(), torch.no_grad(), _exporter_errors("torch.onnx.export"):
        program = rnnkit.export.onnx(
            export.module,
            export.example,
            None,
            dynamic_shapes=export.dynamic_shapes,
            input_names=export.input_names,
            output_names=export.output_names,
        )
        program.save(str(path))


def _pt2(export: Export, path: Path) -> None:
    with _quiet(), torch.no_grad(), _exporter_errors("torch.export.export"):
        program = torch.export.export(
            export.module, export.example, dynamic_shapes=export.dynamic_shapes
        )
        torch.export.save(program, str(path))


@contextlib.contextmanager
def _exporter_errors(name: str):
    """An exporter's failure as one ValueError line: the innermost ValueError's message (the
    translations name what ONNX cannot express), else the exception's first line."""
    try:
        yield
    except Exception as exc:
        cause = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, ValueError):
            raise ValueError(str(cause)) from None
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise ValueError(f"{name} failed: {type(cause).__name__}: {first}") from None


def runner(fmt: str, path: Path, input_names: Sequence[str]) -> Runner:
    """The exported model at `path` as a function of the inputs (None: an absent input)."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run_onnx(*inputs) -> list[np.ndarray]:
            feeds = {n: t.numpy() for n, t in zip(input_names, inputs) if t is not None}
            return session.run(None, feeds)

        return run_onnx
    module = torch.export.load(str(path)).module()
    return eager_runner(module)


def eager_runner(module: nn.Module) -> Runner:
    def run(*inputs) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(*inputs)
        return [t.detach().numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]

    return run


def measure(export: Export, exported: Runner) -> dict:
    """{"max_abs_diff", "max_abs_eager", "shapes"}: the largest |export - eager| over every
    output of every held-back batch (integer outputs must agree exactly), the largest
    |eager output|, and the distinct (batch, time) shapes of the first input checked."""
    eager = eager_runner(export.module)
    if export.compare is not None:
        diff, scale = export.compare(exported, eager)
    else:
        diff = scale = 0.0
        for batch in export.held_back:
            d, s = compare_outputs(exported(*batch), eager(*batch))
            diff, scale = max(diff, d), max(scale, s)
    shapes = sorted({tuple(b[0].shape[:2]) for b in export.held_back})
    return {
        "max_abs_diff": diff,
        "max_abs_eager": scale,
        "shapes": [list(s) for s in shapes],
    }


def compare_outputs(got: list[np.ndarray], want: list[np.ndarray]) -> tuple[float, float]:
    """(max |got - want|, max |want|) over the outputs; inf when shapes or integers differ."""
    diff = scale = 0.0
    if len(got) != len(want):
        return float("inf"), 0.0
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            return float("inf"), 0.0
        if not np.issubdtype(w.dtype, np.floating):
            diff = max(diff, 0.0 if np.array_equal(g, w) else float("inf"))
            continue
        if w.size:
            diff = max(diff, float(np.max(np.abs(g.astype(np.float64) - w))))
            scale = max(scale, float(np.max(np.abs(w))))
    return diff, scale


def batches(items: list[Tensor], size: int, pad: Callable) -> list[tuple]:
    """Held-back items as model input batches: consecutive chunks of `size`, then the first item
    alone (batch 1); `pad` turns a list of items into one batch's inputs."""
    chunks = [items[k : k + size] for k in range(0, len(items), size)]
    return [pad(chunk) for chunk in chunks] + [pad(items[:1])]


def parity_line(sidecar: dict) -> str:
    """`parity: max |onnx - eager| = 3.1e-07 over 512 texts (test split), batch sizes 1-64`."""
    p = sidecar["parity"]
    sizes = sorted({s[0] for s in p["shapes"]})
    shown = f"{sizes[0]}-{sizes[-1]}" if len(sizes) > 1 else f"{sizes[0]}"
    return (
        f"parity: max |{sidecar['format']} - eager| = {p['max_abs_diff']:.1e} over {p['over']}, "
        f"batch sizes {shown}"
    )


def check_cells(cell: str) -> None:
    """Only rnnkit's RNN, LSTM and GRU export: the min-RNN layers check their lengths in Python,
    which torch.export cannot trace."""
    if cell not in ("rnn", "lstm", "gru"):
        raise ValueError(
            f"cannot export a model with cell {cell!r}: export supports the rnn, lstm and gru "
            "cells (the min-RNN layers read their lengths as Python numbers, which "
            "torch.export cannot trace)"
        )
