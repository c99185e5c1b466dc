"""Memory of the BPTT kernels, reused across calls instead of allocated anew.

A fresh large tensor per call costs page faults on first touch (measured: a quarter of an
LSTM training step at B32/H256; glibc maps a block of 32 MB or more anew on every call), so:

- `buffer`: scratch used only inside one kernel call (a backward, or an inference forward's
  rolling state), never returned or saved for autograd, so reuse is always safe; one per name,
  grown to the largest size asked for;
- `recycled`: tensors a kernel returns or saves for autograd (outputs, gates, projections),
  taken from a small pool of earlier ones that nothing references any more (the storage's use
  count says so), else new.

Both are per thread and CPU only (CUDA has its caching allocator); `release` frees them.
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


POOL = 8  # recycled tensors kept per name (a stack of layers holds one each until backward)
MIN_BYTES = 1 << 20  # smaller tensors come from the allocator (no page faults to save)


def recycled(name: str, shape, like: Tensor) -> Tensor:
    """An uninitialised contiguous tensor of `shape` with like's dtype and device, that the
    caller may return or save: a pooled one that nothing else holds, or a new one. Not a view
    (autograd treats views of its outputs specially): it shares the pooled storage via set_."""
    n = math.prod(shape)
    if like.device.type != "cpu" or n * like.element_size() < MIN_BYTES:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    pool = _local.__dict__.setdefault("recycled", {}).setdefault((name, like.dtype), [])
    storage = next((s for s in pool if s.nbytes() >= n * like.element_size() and _free(s)), None)
    if storage is None:
        t = torch.empty(shape, dtype=like.dtype)
        if len(pool) < POOL:
            pool.append(t.untyped_storage())
        return t
    t = torch.empty(0, dtype=like.dtype).set_(storage, 0, shape)
    if (
        torch.are_deterministic_algorithms_enabled()
        and torch.utils.deterministic.fill_uninitialized_memory
    ):
        t.fill_(float("nan"))  # as torch.empty does in that mode
    return t


def _free(storage) -> bool:
    """Whether only the pool holds this storage (its own reference and the call's)."""
    return torch._C._storage_Use_Count(storage._cdata) <= 1


def release() -> None:
    """Free this thread's buffers and pooled tensors (they are reallocated when next needed)."""
    _local.__dict__.pop("buffers", None)
    _local.__dict__.pop("recycled", None)
