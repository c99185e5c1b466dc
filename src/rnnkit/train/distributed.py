"""Process-group helpers for torchrun: join the group from the environment, ask who is main, leave.

`torchrun --nproc-per-node N script.py` starts N processes with RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT set; `setup()` joins them (gloo on CPU, nccl on CUDA). A plain
`python script.py` has no WORLD_SIZE and runs as a single process: every helper then answers as
rank 0 of 1, so callers never branch on whether they were launched distributed.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """Whether this process is in an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def setup(backend: str | None = None) -> bool:
    """Join the process group torchrun describes; return whether running distributed.

    Idempotent. `backend` defaults to "nccl" when CUDA is available and "gloo" otherwise. With
    nccl the process's CUDA device becomes cuda:LOCAL_RANK.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, init_method="env://")
    return True


def cleanup() -> None:
    """Leave the process group, if in one."""
    if is_distributed():
        dist.barrier()  # no rank tears gloo down while another still talks to it
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True in exactly one process, the one that logs and writes checkpoints."""
    return rank() == 0


def device() -> torch.device:
    """The device this process trains on: cuda:LOCAL_RANK when CUDA is available, else the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(x: Tensor) -> Tensor:
    """`x` summed over all processes (in place when distributed; `x` itself otherwise)."""
    if is_distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's `obj`, indexed by rank."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Process `src`'s `obj`, in every process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard(x: Tensor, dim: int = 0) -> Tensor:
    """This process's contiguous share of a global batch `x` along `dim` (all of it when alone).

    With the loss a mean over each share and equal shares, DistributedDataParallel's averaged
    gradient equals the gradient of the mean over the global batch.
    """
    n, k = x.shape[dim], world_size()
    if n % k:
        raise ValueError(f"a batch of {n} along dim {dim} does not split evenly over {k} processes")
    return x.narrow(dim, rank() * (n // k), n // k)
