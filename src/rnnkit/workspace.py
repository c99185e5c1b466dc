"""Scratch buffers of the BPTT kernels, reused across calls instead of allocated anew.

A fresh large tensor per call costs page faults on first touch (measured: a quarter of an
LSTM training step at B32/H256), so the kernels' temporaries come from here. A buffer is used
only inside one kernel call (a backward, or an inference forward's rolling state) and never
returned to the caller or saved for autograd, so reuse is safe; buffers are per thread, and
grow to the largest size asked for under each name.
"""

import math
import threading

import torch
from torch import Tensor

_local = threading.local()


def buffer(name: str, shape, like: Tensor, zero: bool = False) -> Tensor:
    """A contiguous tensor of `shape` with like's dtype and device, zeroed if asked."""
    cache = _local.__dict__.setdefault("buffers", {})
    key = (name, like.dtype, like.device)
    n = math.prod(shape)
    flat = cache.get(key)
    if flat is None or flat.numel() < n:
        flat = torch.empty(n, dtype=like.dtype, device=like.device)
        cache[key] = flat
    view = flat[:n].view(shape)
    return view.zero_() if zero else view


def release() -> None:
    """Free this thread's buffers (they are reallocated on the next backward)."""
    _local.__dict__.pop("buffers", None)
