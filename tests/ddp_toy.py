"""Launched by tests/train/test_distributed.py under torchrun: trains the toy on its share."""

import sys

import torch
from toys import Toy, batches

from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig
from rnnkit.train.loop import train
from rnnkit.train.seeding import seed_everything

CONFIG = TrainConfig(
    lr=1e-2,
    warmup_steps=2,
    max_steps=4,
    clip_norm=0.5,
    log_every=1,
    progress=False,
    tensorboard=False,
)


def sharded_batches(step: int):
    x, y = batches(step)  # the global batch
    return distributed.shard(x), distributed.shard(y)


def main(out: str) -> None:
    torch.set_num_threads(1)
    distributed.setup()
    try:
        seed_everything(0)
        train(Toy(), sharded_batches, None, CONFIG, out)
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    main(sys.argv[1])
