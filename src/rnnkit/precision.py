"""The dtypes a layer or cell computes in and returns: float16 and bfloat16 modules computed in
float32, and torch.autocast honoured as torch.nn honours it.

A recurrence carries its state through T steps, so a state rounded to float16 (eps 2^-10) or
bfloat16 (eps 2^-7) at every step accumulates T roundings (the log-space scan of MinGRU and
MinLSTM worse: bfloat16 logs are off by 0.2 after 100 steps). rnnkit keeps the state in float32
whatever the module's dtype: a float16 or bfloat16 module casts its input, states and parameters
up at its boundary, differentiably (a half parameter gets a half gradient through autograd),
runs the float32 kernels (C++ loops on the CPU, Python loops elsewhere) and casts its output and
final states down once. Its result is the float32 one rounded once, within about an ulp of the
output dtype of the float32 module on the same (rounded) weights and input.

Under torch.autocast(device_type) (CPU: bfloat16 by default; CUDA: float16) the kernels run in
float32 too, with autocast off around them (it would round their GEMMs), and the result has the
dtype torch.nn's class returns under autocast (`plan`): the autocast dtype, except where
torch.nn's state arithmetic promotes it back to the dtype of the input and states (on the CPU,
torch.nn.GRU, LSTMCell and GRUCell). float32 parameters get float32 gradients, the input a
gradient of its own dtype. A float64 module ignores autocast, as torch.nn's does.
"""

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

HALF = (torch.float16, torch.bfloat16)  # the dtypes computed in float32
_NO_CONTEXT = contextlib.nullcontext()  # reusable: it holds no state


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype torch.autocast casts to on `device_type` if autocast is on there, else None."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type that autocast does not know ("meta")
        return None
    return torch.get_autocast_dtype(device_type) if enabled else None


def autocasting(device_type: str, dtype: torch.dtype) -> bool:
    """Whether torch.autocast applies to a module of `dtype` on `device_type`: on there and the
    dtype not float64. Then, as in torch.nn, the input and states may have any floating dtype."""
    return dtype != torch.float64 and autocast_dtype(device_type) is not None


def cast(t: Tensor, dtype: torch.dtype) -> Tensor:
    """t.to(dtype), differentiable; t itself when it has the dtype, without Tensor.to's call
    (1.3 us against 0.07: a generation step casts some 15 tensors)."""
    return t if t.dtype == dtype else t.to(dtype)


@dataclass(frozen=True)
class Precision:
    """The dtypes of one call: what the kernels compute in, what the module returns."""

    compute: torch.dtype  # float32 for float16/bfloat16 modules and under autocast
    output: torch.dtype  # of the output and the final states
    autocast: str | None = None  # the device type whose autocast is off around the kernels

    def up(self, t: Tensor) -> Tensor:
        """t in the compute dtype (a differentiable cast; none when it has it)."""
        return cast(t, self.compute)

    def down(self, t: Tensor) -> Tensor:
        """t in the output dtype."""
        return cast(t, self.output)

    def kernels(self):
        """The context the kernels run in: autocast off where it is on."""
        if self.autocast is None:
            return _NO_CONTEXT
        return torch.autocast(self.autocast, enabled=False)


# without autocast, per parameter dtype: made once (a generation step plans each call)
_PLAIN = {t: Precision(torch.float32, t) for t in (*HALF, torch.float32)}
_PLAIN[torch.float64] = Precision(torch.float64, torch.float64)


def plan(dtype: torch.dtype, tensors: Iterable[Tensor], promotes_on=()) -> Precision:
    """The Precision of a module of parameters `dtype` called on `tensors` (the input, then the
    states given). Without autocast it computes in float32 if `dtype` is float16 or bfloat16
    and returns `dtype`. Under autocast it computes in float32 and returns the autocast dtype,
    or on the device types `promotes_on` the promotion of it with the tensors' dtypes (where
    torch.nn's gate GEMMs give the autocast dtype and its state arithmetic promotes them)."""
    tensors = list(tensors)
    device_type = tensors[0].device.type
    if not autocasting(device_type, dtype):
        return _PLAIN.get(dtype) or Precision(dtype, dtype)
    out = autocast_dtype(device_type)
    if device_type in promotes_on:
        for t in tensors:
            out = torch.promote_types(out, t.dtype)
    return Precision(torch.float32, out, device_type)
