"""The exceptions rnnkit's layers and cells raise for bad input, each an instance of the class
torch.nn raises for the same input (so code that catches torch.nn's exception catches rnnkit's),
with rnnkit's message naming the value and what was expected; and the refusal of TorchScript.

Each class derives from every class torch.nn raises for its kind of mistake and from the one
rnnkit raised before, so `except ValueError` (rnnkit's old contract) and `except RuntimeError`
(torch.nn's) both catch a wrong hidden-state shape. tests/core/test_torch_errors.py runs torch.nn
on the same inputs and checks the classes case by case.
"""

import torch


class ShapeError(ValueError, RuntimeError):
    """A size argument or a tensor's shape that does not fit the module.

    ValueError: what rnnkit raised before, and what torch.nn raises for a layer size <= 0 and an
    input that is not 2-D or 3-D. RuntimeError: what torch.nn raises for the other mismatches
    (input.size(-1) != input_size, a state of the wrong shape, a cell's input and state batch
    sizes that differ, an empty sequence) and for a negative size given to a cell.
    """


class ArgumentTypeError(TypeError, ValueError, RuntimeError):
    """An argument of the wrong type: a tensor of the wrong dtype or device, an LSTM state that
    is not a pair (h, c), a dropout that is not a number.

    TypeError: what rnnkit raised before. ValueError: what torch.nn raises for a layer's input
    whose dtype is not the parameters' and for a dropout that is not a number. RuntimeError: what
    torch.nn's ATen ops raise for mixed dtypes (a cell's input, any state) and for an LSTM state
    that is a tensor rather than a pair.
    """


class TorchScriptError(NotImplementedError):
    """torch.jit.script or torch.jit.trace of an rnnkit module.

    TorchScript is deprecated upstream (torch.jit.script warns "Please switch to torch.compile
    or torch.export"). Scripting fails anyway on the layers' Python (keyword-only arguments,
    autograd Functions, the `Cell` descriptor). A trace fails its own check (the graphs differ
    between calls with and without autograd), and with check_trace=False it is wrong without
    saying so: impl="loop" is unrolled at the traced length and returns that many steps for any
    input, impl="bptt" records Python autograd Functions that torch.jit.save cannot store. Both
    refuse with this message instead (`__prepare_scriptable__`, and a check of
    torch.jit.is_tracing() with the input checks).
    """

    def __init__(self, module: object, how: str):
        name = type(module).__name__
        if torch.onnx.is_in_onnx_export():  # the TorchScript-based exporter traces
            super().__init__(
                f"rnnkit.{name} exports to ONNX through torch.onnx's dynamo exporter, not the "
                "TorchScript-based one (dynamo=False): use torch.onnx.export(..., dynamo=True) "
                "or rnnkit.export.onnx(model, args, f)"
            )
            return
        super().__init__(
            f"rnnkit.{name} does not support TorchScript ({how}; TorchScript is deprecated "
            f"upstream): use torch.compile(model), or torch.export.export(model, (input,)) "
            f"for a graph to save or deploy"
        )
