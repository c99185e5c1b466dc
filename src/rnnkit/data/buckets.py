"""Variable-length token sequences as padded batches: the sequences held flat, batches grouped by
similar length (bucketing) for training and sorted by length for evaluation.

A batch is ((ids (B, T) int64, lengths (B,) int64), labels (B,) int64, n_tokens): T is the
longest sequence of the batch (or `pad_to`), ids past each length hold `pad_id`. The model runs
its recurrent layer with `lengths=`, so the padding never changes a result; bucketing only makes
it cheap (little padding to step over).

    N: sequences, B: batch size, T: padded length
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from rnnkit.train import distributed

POOL = 50  # batches sorted together: a training batch mixes lengths within a pool of 50 batches


class Sequences:
    """N token-id sequences stored as one flat tensor with offsets; `labels` optional."""

    def __init__(self, sequences: Sequence[Sequence[int]], labels: Sequence[int] | None = None):
        if len(sequences) == 0:
            raise ValueError("there are no sequences")
        lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)  # (N,)
        if int(lengths.min()) < 1:
            first = int((lengths < 1).nonzero()[0])
            raise ValueError(f"sequence {first} is empty; every sequence needs a token")
        if labels is not None and len(labels) != len(sequences):
            raise ValueError(f"{len(labels)} labels for {len(sequences)} sequences")
        self.flat = torch.tensor([i for s in sequences for i in s], dtype=torch.int64)
        self.lengths = lengths
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def tokens(self) -> int:
        return int(self.lengths.sum())

    def batch(self, index: Tensor, pad_id: int = 0, pad_to: int | None = None):
        """The sequences at `index` (B,) as ((ids, lengths), labels or None, n_tokens)."""
        lengths = self.lengths[index]  # (B,)
        T = int(lengths.max()) if pad_to is None else pad_to
        if T < int(lengths.max()):
            raise ValueError(f"pad_to={pad_to} is shorter than a sequence ({int(lengths.max())})")
        ids = torch.full((len(index), T), pad_id, dtype=torch.int64)  # (B, T)
        for row, (start, n) in enumerate(zip(self.offsets[index].tolist(), lengths.tolist())):
            ids[row, :n] = self.flat[start : start + n]
        labels = None if self.labels is None else self.labels[index]
        return (ids, lengths), labels, int(lengths.sum())


class BucketBatches:
    """`batches(step)` for the training loop: training batch number `step`, grouped by length.

    Epoch e = step // len(self) reshuffles with a generator seeded by seed + e (the same in
    every process): the sequences are shuffled, cut into pools of POOL batches, each pool sorted
    by length and cut into batches, and the batches shuffled. The last incomplete batch of an
    epoch is dropped. Under DistributedDataParallel each process takes every world_size-th
    sequence of the global batch. `pad_to` pads every batch to that length instead of to its
    own longest sequence (to measure what bucketing saves).
    """

    needs_labels = True  # a subclass that builds its own targets sets False

    def __init__(
        self,
        data: Sequences,
        batch_size: int,  # the global batch, over all processes
        *,
        seed: int = 0,
        pool: int = POOL,
        pad_id: int = 0,
        pad_to: int | None = None,
    ):
        world = distributed.world_size()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if batch_size % world:
            raise ValueError(
                f"batch_size must be a multiple of {world} processes, got {batch_size}"
            )
        if data.labels is None and self.needs_labels:
            raise ValueError("training batches need labels")
        if len(data) < batch_size:
            raise ValueError(
                f"{len(data)} training examples are fewer than one batch of {batch_size}; "
                "give more data or a smaller batch"
            )
        if pool < 1:
            raise ValueError(f"pool must be a positive number of batches, got {pool!r}")
        self.data, self.batch_size, self.seed, self.pool = data, batch_size, seed, pool
        self.pad_id, self.pad_to = pad_id, pad_to
        self._epoch, self._batches = None, None

    def __len__(self) -> int:
        """Steps per epoch."""
        return len(self.data) // self.batch_size

    def __call__(self, step: int):
        return self.data.batch(self.indices(step), self.pad_id, self.pad_to)

    def indices(self, step: int) -> Tensor:
        """The sequences of batch number `step` that this process trains on."""
        epoch, i = divmod(step, len(self))
        if epoch != self._epoch:
            self._batches, self._epoch = self._plan(epoch), epoch
        return self._batches[i][distributed.rank() :: distributed.world_size()]

    def _plan(self, epoch: int) -> list[Tensor]:
        """The epoch's batches as index tensors, in the order they are trained on."""
        g = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(len(self.data), generator=g)
        order = order[: len(self) * self.batch_size]  # whole batches only
        span = self.pool * self.batch_size
        batches = []
        for start in range(0, len(order), span):
            pool = order[start : start + span]
            pool = pool[torch.argsort(self.data.lengths[pool], stable=True)]
            batches.extend(pool.split(self.batch_size))
        shuffle = torch.randperm(len(batches), generator=g).tolist()
        return [batches[k] for k in shuffle]


def sorted_batches(
    data: Sequences, batch_size: int, pad_id: int = 0
) -> Iterator[tuple[Tensor, tuple]]:
    """Every sequence once, longest first, in batches of `batch_size` (the last may be smaller):
    yields (index (B,) into `data`, batch) so results can be put back in the original order."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    order = torch.argsort(data.lengths, descending=True, stable=True)
    for index in order.split(batch_size):
        yield index, data.batch(index, pad_id)
