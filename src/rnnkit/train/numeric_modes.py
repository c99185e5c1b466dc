"""The process-wide numeric modes a training run sets while it trains and sets back after:
denormals flushed to zero, and torch's float32 matmul precision (TrainConfig's flush_denormal
and matmul_precision)."""

import contextlib

import torch

from rnnkit.train.config import TrainConfig


@contextlib.contextmanager
def numeric_modes(cfg: TrainConfig):
    """Both modes of `cfg` while the block runs."""
    with flush_denormals(cfg), matmul_precision(cfg):
        yield


@contextlib.contextmanager
def flush_denormals(cfg: TrainConfig):
    """Denormal floats flushed to zero while training (config.flush_denormal). A vanishing
    gradient passes through the denormal range (below 1.2e-38 in float32) on its way to 0, and
    x86 CPUs compute on denormals 10-100x slower: an LSTM's backward at T = 200 took 13x longer
    (benchmarks/bench_denormal.py). torch has no getter for the mode, so it is set back to
    torch's default (off) afterwards."""
    on = cfg.flush_denormal and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if on:
            torch.set_flush_denormal(False)


@contextlib.contextmanager
def matmul_precision(cfg: TrainConfig):
    """torch's float32 matmul precision set to config.matmul_precision while training, and set
    back afterwards ("medium": bfloat16 products with float32 sums, which rnnkit's kernels
    honour too, bptt/gemm.py)."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)
