"""Shared test setup: one intra-op thread and the same random state for every test."""

import pytest
import torch

# The tests use tiny tensors: extra threads only spin, and on a busy machine they slow the
# whole run down by an order of magnitude.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
