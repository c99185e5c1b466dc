"""Exporting models that use rnnkit's layers: ONNX (through torch.onnx's dynamo exporter, with
ONNX's own RNN, LSTM and GRU operators) and torch.export programs (.pt2).

    import rnnkit.export
    program = rnnkit.export.onnx(model, (x,), "model.onnx", dynamic_shapes=...)

is `torch.onnx.export(model, (x,), "model.onnx", dynamo=True,
custom_translation_table=rnnkit.export.onnx_translations(), ...)`: the table tells the exporter
how to write rnnkit's operators (`rnnkit.bptt.ops`); any other torch.onnx.export argument passes
through. ONNX needs the `export` extra: pip install 'rnnkit[export]'.
"""

from __future__ import annotations

import importlib.util

import torch

EXTRA = "pip install 'rnnkit[export]'"


def require_onnx() -> None:
    """A clear ModuleNotFoundError when the export extra is missing."""
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(
            f"exporting to ONNX needs {' and '.join(missing)}: {EXTRA}", name=missing[0]
        )


def onnx_translations() -> dict:
    """{rnnkit operator: its ONNX translation}, for torch.onnx.export's custom_translation_table."""
    require_onnx()
    from rnnkit.bptt import ops  # noqa: F401  (registers torch.ops.rnnkit)
    from rnnkit.export import onnx_ops

    rnnkit_ops = torch.ops.rnnkit
    return {
        rnnkit_ops.rnn.default: onnx_ops.rnn,
        rnnkit_ops.lstm.default: onnx_ops.lstm,
        rnnkit_ops.gru.default: onnx_ops.gru,
        rnnkit_ops.lstm_cell.default: onnx_ops.lstm_cell,
    }


def onnx(model: torch.nn.Module, args: tuple, f=None, **options):
    """torch.onnx.export(model, args, f, dynamo=True, ...) with rnnkit's translations; returns
    the torch.onnx.ONNXProgram. The model is exported as it is called in eval mode. An LSTM
    with proj_size > 0 is refused before tracing (ONNX's LSTM has no projection)."""
    table = {**onnx_translations(), **options.pop("custom_translation_table", {})}
    from rnnkit.export.onnx_ops import refuse_projection

    for module in model.modules():
        refuse_projection(getattr(module, "proj_size", 0))  # torch.nn's and rnnkit's LSTMs
    options.setdefault("verbose", False)
    from rnnkit.export import symbolic

    with symbolic.translating():  # the layers call their operators: the table writes them
        return torch.onnx.export(
            model, args, f, dynamo=True, custom_translation_table=table, **options
        )
