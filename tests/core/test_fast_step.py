"""fast_step.py: the LSTM's short generation step against RNNBase.step's reference path."""

import copy

import pytest
import torch

import rnnkit
from rnnkit import fast_step
from rnnkit.bptt import native

needs_loops = pytest.mark.skipif(
    native.for_cpu(torch.zeros(1)) is None, reason="the C++ loops are not built here"
)


def _state(layer, B, dtype):
    L, H = layer.num_layers, layer.hidden_size
    g = torch.Generator().manual_seed(2)
    h = torch.randn(L, B, layer.proj_size or H, generator=g, dtype=dtype)
    return h, torch.randn(L, B, H, generator=g, dtype=dtype)


def _reference(layer, x, hx):
    """RNNBase.step on its reference path (a gradient enabled: the short path declines)."""
    with torch.enable_grad():
        assert fast_step.step(layer, x, hx) is None
        out, (h, c) = layer.step(x, hx)
    return out.detach(), (h.detach(), c.detach())


@needs_loops
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "kw", [{}, {"bias": False}, {"proj_size": 5}, {"num_layers": 3, "dropout": 0.5}]
)
def test_the_short_step_equals_the_reference(dtype, kw):
    torch.manual_seed(0)
    kw = {"num_layers": 2, **kw}
    layer = rnnkit.LSTM(7, 12, dtype=dtype, **kw).eval()
    x = torch.randn(3, 7, dtype=dtype)
    hx = _state(layer, 3, dtype)
    with torch.no_grad():
        got = fast_step.step(layer, x, hx)
        assert got is not None  # the short path applies here
        via_layer = layer.step(x, hx)
    want = _reference(layer, x, hx)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for g, v, w in zip((got[0], *got[1]), (via_layer[0], *via_layer[1]), (want[0], *want[1])):
        assert g.shape == w.shape and g.dtype == w.dtype
        torch.testing.assert_close(g, w, atol=tol, rtol=tol)
        torch.testing.assert_close(v, w, atol=tol, rtol=tol)


def _assert_close(got, want, tol=1e-5):
    for g, w in zip((got[0], *got[1]), (want[0], *want[1])):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, atol=tol, rtol=tol)


UPDATES = [  # each makes a new weight version: in place, a bias, a tensor swapped in
    lambda layer: layer.weight_hh_l1.mul_(0.5),
    lambda layer: layer.bias_ih_l0.add_(0.25) if layer.bias else layer.weight_ih_l0.add_(0.1),
    lambda layer: setattr(layer.weight_ih_l1, "data", layer.weight_ih_l1.data * 0.8),
]


@needs_loops
@pytest.mark.parametrize(
    "size, kw", [(12, {}), (12, {"bias": False}), (12, {"proj_size": 5}), (512, {})]
)
def test_the_joined_weights_follow_every_update(size, kw):
    """From the second step at a weight version on, the gates are one product with [W_ih, W_hh]
    (at 512 units on oneDNN where torch has it); each update makes the next steps rejoin."""
    torch.manual_seed(3)
    layer = rnnkit.LSTM(7, size, num_layers=2, **kw).eval()
    B = 1 if size > 100 else 3
    x, hx = torch.randn(B, 7), _state(layer, B, torch.float32)
    with torch.no_grad():
        for update in [*UPDATES, None]:
            for _ in range(3):  # apart, then joined, then joined from the kept weights
                _assert_close(fast_step.step(layer, x, hx), _reference(layer, x, hx))
            assert fast_step._JOINED[layer][1] is not None
            if update:
                update(layer)
    copied = copy.deepcopy(layer)  # the joined weights stay outside the layer
    assert copied not in fast_step._JOINED
    assert set(layer.state_dict()) == set(dict(layer.named_parameters()))


@needs_loops
def test_stepping_a_sequence_equals_forward():
    torch.manual_seed(1)
    layer = rnnkit.LSTM(4, 9, num_layers=2).eval()
    x = torch.randn(6, 2, 4)
    hx = _state(layer, 2, torch.float32)
    with torch.no_grad():
        out, (h_n, c_n) = layer(x, hx)
        state, outs = hx, []
        for t in range(len(x)):
            y, state = layer.step(x[t], state)
            outs.append(y)
    torch.testing.assert_close(torch.stack(outs), out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state[0], h_n, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state[1], c_n, atol=1e-5, rtol=1e-5)


def _declines(layer, x, hx):
    with torch.no_grad():
        return fast_step.step(layer, x, hx) is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.GRU(4, 6),
        lambda: rnnkit.LSTM(4, 6, bidirectional=True),
        lambda: rnnkit.LSTM(4, 6, layer_norm=True),
        lambda: rnnkit.LSTM(4, 6, zoneout=0.1).eval(),
        lambda: rnnkit.LSTM(4, 6, num_layers=2, dropout=0.3).train(),
    ],
)
def test_the_short_step_declines_what_it_does_not_compute(make):
    layer = make()
    D = 2 if layer.bidirectional else 1
    hx = torch.zeros(D, 2, 6), torch.zeros(D, 2, 6)
    assert _declines(layer, torch.zeros(2, 4), hx)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_steps_on_the_reference_path(dtype):
    """The loops are float32 and float64 only: a half-precision layer's step takes the
    reference path (which computes in float32, precision.py) and matches the float32 step."""
    torch.manual_seed(4)
    layer = rnnkit.LSTM(4, 6, num_layers=2).eval()
    low = copy.deepcopy(layer).to(dtype)
    x, hx = torch.randn(2, 4), _state(layer, 2, torch.float32)
    low_hx = tuple(s.to(dtype) for s in hx)
    assert _declines(low, x.to(dtype), low_hx)
    with torch.no_grad():
        for _ in range(3):
            out, low_out = layer.step(x, hx)[0], low.step(x.to(dtype), low_hx)[0]
    assert low_out.dtype == dtype
    torch.testing.assert_close(low_out.float(), out, atol=0.05, rtol=0)


def test_bad_input_takes_the_reference_path_and_its_errors():
    layer = rnnkit.LSTM(4, 6).eval()
    good = torch.zeros(1, 2, 6), torch.zeros(1, 2, 6)
    bad_inputs = [
        (torch.zeros(2, 5), good),  # input size
        (torch.zeros(2, 4), (torch.zeros(1, 3, 6), torch.zeros(1, 2, 6))),  # h_0's batch
        (torch.zeros(2, 4, dtype=torch.float64), good),  # dtype
        (torch.zeros(2, 4), good[0]),  # a tensor, not (h_0, c_0)
    ]
    for x, hx in bad_inputs:
        assert _declines(layer, x, hx)
        with torch.no_grad(), pytest.raises((ValueError, TypeError, RuntimeError)):
            layer.step(x, hx)
    assert _declines(layer, torch.zeros(2, 4), None)  # no state: the reference makes zeros
    with torch.no_grad():
        out, (h, c) = layer.step(torch.zeros(2, 4))
    assert out.shape == (2, 6) and h.shape == c.shape == (1, 2, 6)
