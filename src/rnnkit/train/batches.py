"""Step-indexed batches from a map-style dataset: the distributed sampler of the training loop.

The trainer asks for batch number `step`, so the data position is the step itself and a resumed
run sees exactly the batches it would have seen. Epoch e = step // steps_per_epoch shuffles with
the generator seeded by seed + e (the same in every process); under DistributedDataParallel each
process takes every world_size-th example of the global batch, as DistributedSampler does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import default_collate

from rnnkit.train import distributed


class DatasetBatches:
    """`batches(step)`: this process's share of global batch `step` (incomplete ones dropped)."""

    def __init__(
        self,
        dataset: Sequence,
        batch_size: int,  # the global batch, over all processes
        *,
        shuffle: bool = True,
        seed: int = 0,
        collate_fn: Callable[[list], Any] = default_collate,
    ):
        world = distributed.world_size()
        if batch_size < 1 or batch_size % world:
            raise ValueError(
                f"batch_size must be a positive multiple of {world} processes, got {batch_size}"
            )
        if len(dataset) < batch_size:
            raise ValueError(
                f"the dataset has {len(dataset)} examples, fewer than one batch of {batch_size}"
            )
        self.dataset, self.batch_size, self.shuffle, self.seed = dataset, batch_size, shuffle, seed
        self.collate_fn = collate_fn
        self._epoch, self._order = None, None

    def __len__(self) -> int:
        """Steps per epoch."""
        return len(self.dataset) // self.batch_size

    def __call__(self, step: int):
        epoch, i = divmod(step, len(self))
        if epoch != self._epoch:
            n = len(self.dataset)
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
            self._epoch = epoch
        chunk = self._order[i * self.batch_size : (i + 1) * self.batch_size]
        mine = chunk[distributed.rank() :: distributed.world_size()]
        return self.collate_fn([self.dataset[j] for j in mine.tolist()])


def unpack(batch, step: int) -> tuple[Any, Any, Any]:
    """(inputs, targets, n_tokens) from what `batches(step)` returned; n_tokens defaults to
    targets.numel() (0 when the targets are not one tensor)."""
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise TypeError(
            f"batches({step}) must return (inputs, targets) or (inputs, targets, n_tokens), "
            f"got {type(batch).__name__}"
        )
    inputs, targets = batch[0], batch[1]
    if len(batch) == 3:
        return inputs, targets, batch[2]
    return inputs, targets, targets.numel() if isinstance(targets, Tensor) else 0


def to_device(obj: Any, device) -> Any:
    """`obj` with every tensor inside it (tuples, lists, dicts) moved to `device`."""
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device) for v in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj
