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
