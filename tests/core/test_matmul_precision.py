"""torch's float32 matmul precision in rnnkit's kernels (bptt/gemm.py `bf16_products`): at
"highest" everything stays float32; at "medium", on a CPU with native bfloat16, the step
products go to oneDNN (which honours the setting) instead of MKL's packed GEMM (which does not),
and the results stay within bfloat16's rounding of the float32 ones."""

import contextlib
import copy

import pytest
import torch
from torch.testing import assert_close

import rnnkit
from rnnkit.bptt import gemm

BF16 = gemm.ONEDNN and gemm._bf16_native()


def _has_amx() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return " amx_bf16" in f.read()
    except OSError:
        return False


@contextlib.contextmanager
def precision(name):
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(name)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def test_highest_keeps_float32_products():
    with precision("highest"):
        assert not gemm.bf16_products()


@pytest.mark.skipif(not BF16, reason="a CPU without native bfloat16 (or a torch without oneDNN)")
def test_medium_takes_the_step_products_to_onednn():
    w = torch.randn(2048, 512)
    with precision("highest"):
        plain = gemm.step_weight(w, 64, 128)
    with precision("medium"):
        assert gemm.bf16_products()
        medium = gemm.step_weight(w, 64, 128)
    assert medium.lib != gemm.MKL_PACKED
    if gemm.MKL_PACKED_MIN_ROWS <= 64 and gemm._MKL_REORDER is not None:
        assert plain.lib == gemm.MKL_PACKED  # what "highest" keeps on an Intel CPU


def _outputs_and_grads(layer, x):
    out, state = layer(x)
    flat = [out, *(state if isinstance(state, tuple) else (state,))]
    loss = sum((t * torch.linspace(-1, 1, t.shape[-1])).sum() for t in flat)
    grads = torch.autograd.grad(loss, [x, *layer.parameters()])
    return [t.detach() for t in flat] + list(grads)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_medium_is_float32_within_bfloat16_rounding(cell):
    """B64 H256: shapes past the tiles, on the GEMM libraries. A product of K = 256 terms with
    bfloat16 factors (eps 2^-8) and float32 sums is off by about 2^-8 of its scale, and the
    errors of T steps add up in the gradients: the largest difference seen on a Xeon with AMX
    was 1.6 % of a tensor's largest entry (GRU, RNN; LSTM 0.3 %), the tolerance 10 %."""
    torch.manual_seed(0)
    layer = getattr(rnnkit, cell)(128, 256, num_layers=2, batch_first=True)
    x = torch.randn(64, 40, 128, requires_grad=True)
    with precision("highest"):
        want = _outputs_and_grads(layer, x)
    with precision("medium"):
        got = _outputs_and_grads(copy.deepcopy(layer), x)
    for g, w in zip(got, want):
        scale = w.abs().max().item()
        assert_close(g, w, rtol=0, atol=0.1 * scale)
    if BF16 and _has_amx():  # the setting is honoured: bfloat16 products really ran
        assert any((g - w).abs().max() > 1e-6 * w.abs().max() for g, w in zip(got, want))
