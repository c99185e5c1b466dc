"""Shared test setup: one intra-op thread and the same random state for every test."""

import os

import pytest
import torch
from budget import SEED

# The tests use tiny tensors: extra threads only spin, and on a busy machine they slow the
# whole run down by an order of magnitude. RNNKIT_TEST_THREADS=2 runs the suite on two
# (the C++ loops split rows across threads, and GEMM libraries change their blocking).
torch.set_num_threads(int(os.environ.get("RNNKIT_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(SEED)  # RNNKIT_TEST_SEED: see budget.py
    yield


@pytest.fixture(params=["native", "python"])
def both_loops(request, monkeypatch):
    """Run a test on each time loop of the LSTM and GRU kernels: C++ and Python."""
    from rnnkit.bptt import native

    if request.param == "native":
        if native.load() is None:
            pytest.skip("the C++ time loops could not be built here (no compiler?)")
    else:
        monkeypatch.setitem(native._state, "module", None)
    return request.param
