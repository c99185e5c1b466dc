"""float16 and bfloat16 layers and cells, and torch.autocast (rnnkit/precision.py): every path
computes in float32 and rounds its results once; dtypes as torch.nn's.

Tolerances, from the dtype's eps = torch.finfo(dtype).eps, one ulp at 1 (float16 2^-10,
bfloat16 2^-7; twice the unit roundoff u):
    ONCE = eps (atol and rtol): rnnkit's half result is the float32 module's on the same
        (rounded) weights and input, rounded once: within u relative; eps leaves a margin of 2
        for the float32 paths' own last bits (measured as |error| / (|value| + 1) over 20
        seeds, 2 layers, both directions: at most 0.36 eps, on dW).
    STEPS = T * eps: torch.nn's half layers round the gates and the state at each of T steps
        (measured the same way: up to 2.5 eps at T = 6, on the Elman RNN's dW).
Under autocast the result is the float32 one rounded once to the autocast dtype (ONCE) and the
float32 parameters' gradients are the float32 module's (FP32).
"""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import rnnkit

T, B, I, H = 6, 4, 3, 5
LENGTHS = torch.tensor([6, 2, 4, 1])  # unsorted, longest == T
HALF = [torch.float16, torch.bfloat16]
FP32 = {"atol": 1e-5, "rtol": 1e-5}  # float32 against float32, two summation orders
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]

# id -> (rnnkit class, torch.nn class, constructor kwargs)
MODES = {
    "rnn_tanh": (rnnkit.RNN, nn.RNN, {}),
    "rnn_relu": (rnnkit.RNN, nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rnnkit.LSTM, nn.LSTM, {}),
    "gru": (rnnkit.GRU, nn.GRU, {}),
}
# id -> (layer kwargs, call with lengths=)
CONFIGS = {
    "plain": ({}, False),
    "2layer-bidir-lengths": ({"num_layers": 2, "bidirectional": True}, True),
    "loop-bidir-lengths": ({"bidirectional": True, "impl": "loop"}, True),
}
CELLS = {
    "rnn": (rnnkit.RNNCell, nn.RNNCell),
    "lstm": (rnnkit.LSTMCell, nn.LSTMCell),
    "gru": (rnnkit.GRUCell, nn.GRUCell),
}


def once(dtype):
    eps = torch.finfo(dtype).eps
    return {"atol": eps, "rtol": eps}


def twins(make, dtype, device="cpu"):
    """(module in dtype, float32 module with the same, rounded, parameters)."""
    low, ref = make().to(device, dtype), make().to(device)
    ref.load_state_dict(low.state_dict())
    return low, ref


def states(result) -> list:
    """A layer's or cell's (output, state) or state as the flat list [out, h(, c)]."""
    if isinstance(result, torch.Tensor):
        return [result]
    return [t for r in result for t in (r if isinstance(r, tuple) else (r,))]


def call(module, x, *args, **kw):
    """(results as `states` lists them, x as a fresh leaf)."""
    x = x.detach().clone().requires_grad_()
    return states(module(x, *args, **kw)), x


def backward(module, results, x):
    """Backward a fixed random weighting of every result: (results, x.grad, parameter grads).
    The weights are quarters in [-1, 1], exact in every dtype (a half result's gradient is
    rounded to its dtype)."""
    gen = torch.Generator().manual_seed(1)
    weights = [torch.randint(-4, 5, r.shape, generator=gen) / 4 for r in results]
    sum((r.float() * w.to(r.device)).sum() for r, w in zip(results, weights)).backward()
    return results, x.grad, [p.grad for p in module.parameters()]


def run(module, x, *args, **kw):
    return backward(module, *call(module, x, *args, **kw))


def assert_all_close(got, want, tol):
    for g, w in zip(got, want, strict=True):
        assert_close(g.float(), w.float(), **tol)


def assert_dtypes(results, dtype):
    assert [r.dtype for r in results] == [dtype] * len(results)


# ---- float16 and bfloat16 modules ---------------------------------------------------------


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("mode", MODES)
def test_half_layer_is_float32_rounded_once(mode, config, dtype):
    ours, _, kw = MODES[mode]
    layer_kw, with_lengths = CONFIGS[config]
    low, ref = twins(lambda: ours(I, H, **kw, **layer_kw), dtype)
    x = torch.randn(T, B, I).to(dtype)
    lengths = LENGTHS if with_lengths else None
    got, dx, dw = run(low, x, lengths=lengths)
    want, dx_ref, dw_ref = run(ref, x.float(), lengths=lengths)
    assert_dtypes([*got, dx, *dw], dtype)
    assert_all_close([*got, dx, *dw], [*want, dx_ref, *dw_ref], once(dtype))


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("mode", MODES)
def test_half_layer_against_torch_nn(mode, dtype):
    """torch.nn's half layers on the CPU: the same dtypes, values within STEPS."""
    ours, theirs, kw = MODES[mode]
    layer_kw = {"num_layers": 2, "bidirectional": True}
    mine = ours(I, H, **kw, **layer_kw).to(dtype)
    nn_layer = theirs(I, H, **kw, **layer_kw).to(dtype)
    nn_layer.load_state_dict(mine.state_dict())
    x = torch.randn(T, B, I).to(dtype)
    got, dx, dw = run(mine, x)
    want, dx_nn, dw_nn = run(nn_layer, x)
    assert [t.dtype for t in (*got, dx, *dw)] == [t.dtype for t in (*want, dx_nn, *dw_nn)]
    steps = T * torch.finfo(dtype).eps
    assert_all_close([*got, dx, *dw], [*want, dx_nn, *dw_nn], {"atol": steps, "rtol": steps})


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_half_step(mode, dtype):
    ours, _, kw = MODES[mode]
    low, ref = twins(lambda: ours(I, H, num_layers=2, **kw), dtype)
    x = torch.randn(B, I).to(dtype)
    hx = [torch.randn(2, B, H).to(dtype) for _ in range(2)]
    hx = tuple(hx) if mode == "lstm" else hx[0]
    got = states(low.step(x, hx))
    cast = tuple(s.float() for s in hx) if mode == "lstm" else hx.float()
    want = states(ref.step(x.float(), cast))
    assert_dtypes(got, dtype)
    assert_all_close(got, want, once(dtype))
    assert_all_close(got[1:], states(low(x.unsqueeze(0), hx))[1:], once(dtype))  # forward


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("cell", CELLS)
def test_half_cell(cell, dtype):
    ours, theirs = CELLS[cell]
    low, ref = twins(lambda: ours(I, H), dtype)
    x = torch.randn(B, I).to(dtype)
    got, dx, dw = run(low, x)
    want, dx_ref, dw_ref = run(ref, x.float())
    assert_dtypes([*got, dx, *dw], dtype)
    assert_all_close([*got, dx, *dw], [*want, dx_ref, *dw_ref], once(dtype))
    nn_cell = theirs(I, H).to(dtype)
    nn_cell.load_state_dict(low.state_dict())
    assert_all_close(got, states(nn_cell(x)), {"atol": 2 * once(dtype)["atol"], "rtol": 0})


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("impl", ["scan", "loop"])
@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM], ids=["mingru", "minlstm"])
def test_half_minrnn(cls, impl, dtype):
    """The log-space scan in bfloat16 drifted by 0.2 over 100 steps: float32 inside now."""
    low, ref = twins(lambda: cls(I, H, bidirectional=True, impl=impl), dtype)
    x = torch.randn(100, B, I).to(dtype)
    got, dx, dw = run(low, x, lengths=LENGTHS * 16)
    want, dx_ref, dw_ref = run(ref, x.float(), lengths=LENGTHS * 16)
    assert_dtypes([*got, dx, *dw], dtype)
    assert_all_close([*got, dx, *dw], [*want, dx_ref, *dw_ref], once(dtype))
    low, ref = twins(lambda: cls(I, H, num_layers=2), dtype)
    got = states(low.step(x[0]))
    assert_dtypes(got, dtype)
    assert_all_close(got, states(ref.step(x[0].float())), once(dtype))


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_layer_compiled(dtype):
    """The operator path (torch.compile) in float32 too: eager's results, half gradients."""
    layer = rnnkit.LSTM(I, H, bidirectional=True).to(dtype)
    x = torch.randn(T, B, I).to(dtype)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    got, dx, dw = run(compiled, x, lengths=LENGTHS)
    want, dx_eager, dw_eager = run(layer, x, lengths=LENGTHS)
    assert_dtypes([*got, dx, *dw], dtype)
    assert_all_close([*got, dx, *dw], [*want, dx_eager, *dw_eager], once(dtype))
    torch._dynamo.reset()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", MODES)
def test_half_layer_on_device(mode, device):
    ours, _, kw = MODES[mode]
    low, ref = twins(lambda: ours(I, H, bidirectional=True, **kw), torch.float16, device)
    x = torch.randn(T, B, I, device=device).half()
    got, dx, dw = run(low, x, lengths=LENGTHS)
    want, dx_ref, dw_ref = run(ref, x.float(), lengths=LENGTHS)
    assert_all_close([*got, dx, *dw], [*want, dx_ref, *dw_ref], once(torch.float16))


# ---- torch.autocast ------------------------------------------------------------------------


def autocast_dtype(device):
    return torch.get_autocast_dtype(device)  # CPU bfloat16, CUDA float16 by default


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("x_dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("mode", MODES)
def test_autocast_dtypes_are_torch_nn(mode, x_dtype, device):
    """Outputs and states in the dtype torch.nn's layer returns under autocast, and the
    gradients' dtypes too (float32 parameters, the input's own dtype)."""
    ours, theirs, kw = MODES[mode]
    mine = ours(I, H, num_layers=2, bidirectional=True, **kw).to(device)
    nn_layer = theirs(I, H, num_layers=2, bidirectional=True, **kw).to(device)
    x = torch.randn(T, B, I, device=device).to(x_dtype)
    with torch.autocast(device):
        got, dx, dw = run(mine, x)
        want, dx_nn, dw_nn = run(nn_layer, x)
    assert [t.dtype for t in (*got, dx, *dw)] == [t.dtype for t in (*want, dx_nn, *dw_nn)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("mode", MODES)
def test_autocast_is_float32_rounded_once(mode, config, device):
    """Values: the float32 layer's rounded once to the autocast dtype; float32 gradients of
    the parameters equal to the float32 layer's (backward outside the region, as PyTorch
    recommends)."""
    ours, _, kw = MODES[mode]
    layer_kw, with_lengths = CONFIGS[config]
    layer = ours(I, H, **kw, **layer_kw).to(device)
    x = torch.randn(T, B, I, device=device)
    lengths = LENGTHS if with_lengths else None
    want, dx_ref, dw_ref = run(layer, x, lengths=lengths)
    layer.zero_grad()
    with torch.autocast(device):
        results = call(layer, x, lengths=lengths)
    got, dx, dw = backward(layer, *results)
    assert_dtypes(dw, torch.float32)
    assert_all_close(got, want, once(autocast_dtype(device)))
    assert_all_close([dx, *dw], [dx_ref, *dw_ref], FP32)


@pytest.mark.parametrize("mode", MODES)
def test_autocast_backward_inside_the_region(mode):
    """The kernels' backward switches autocast off as their forward did: called inside the
    region, the same float32 gradients (torch's own ops' backward, impl="loop" included,
    would run in the autocast dtype there)."""
    ours, _, kw = MODES[mode]
    layer = ours(I, H, bidirectional=True, **kw)
    x = torch.randn(T, B, I)
    want, dx_ref, dw_ref = run(layer, x, lengths=LENGTHS)
    layer.zero_grad()
    with torch.autocast("cpu"):
        _, dx, dw = run(layer, x, lengths=LENGTHS)
    assert_all_close([dx, *dw], [dx_ref, *dw_ref], FP32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_autocast_step(mode, device):
    ours, theirs, kw = MODES[mode]
    layer = ours(I, H, num_layers=2, **kw).to(device)
    nn_layer = theirs(I, H, num_layers=2, **kw).to(device)
    x = torch.randn(B, I, device=device)
    want = states(layer.step(x))
    with torch.autocast(device):
        got = states(layer.step(x))
        nn_got = states(nn_layer(x.unsqueeze(0)))
    assert [t.dtype for t in got] == [t.dtype for t in nn_got]
    assert_all_close(got, want, once(autocast_dtype(device)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("x_dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("cell", CELLS)
def test_autocast_cell(cell, x_dtype, with_hx, device):
    ours, theirs = CELLS[cell]
    mine, nn_cell = ours(I, H).to(device), theirs(I, H).to(device)
    nn_cell.load_state_dict(mine.state_dict())
    x = torch.randn(B, I, device=device).to(x_dtype)
    hx = None
    if with_hx:
        hx = [torch.randn(B, H, device=device) for _ in range(2)]
        hx = tuple(hx) if cell == "lstm" else hx[0]
    with torch.autocast(device):
        got, dx, dw = run(mine, x, hx)
        want, dx_nn, dw_nn = run(nn_cell, x, hx)
    assert [t.dtype for t in (*got, dx, *dw)] == [t.dtype for t in (*want, dx_nn, *dw_nn)]
    ref = states(mine(x.float(), hx))
    assert_all_close(got, ref, once(autocast_dtype(device)))


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM], ids=["mingru", "minlstm"])
def test_autocast_minrnn(cls):
    layer = cls(I, H, bidirectional=True, impl="scan")
    x = torch.randn(100, B, I)
    want, dx_ref, dw_ref = run(layer, x)
    layer.zero_grad()
    with torch.autocast("cpu"):
        results = call(layer, x)
    got, dx, dw = backward(layer, *results)
    assert_dtypes(got, torch.bfloat16)  # the autocast dtype, as torch.nn.RNN and LSTM
    assert_all_close(got, want, once(torch.bfloat16))
    assert_all_close([dx, *dw], [dx_ref, *dw_ref], FP32)


def test_autocast_compiled():
    layer = rnnkit.RNN(I, H, bidirectional=True)
    x = torch.randn(T, B, I)
    want, _, dw_ref = run(layer, x, lengths=LENGTHS)
    layer.zero_grad()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    with torch.autocast("cpu"):
        results = call(compiled, x, lengths=LENGTHS)
    got, _, dw = backward(layer, *results)
    assert_dtypes(got, torch.bfloat16)
    assert_all_close(got, want, once(torch.bfloat16))
    assert_all_close(dw, dw_ref, FP32)
    torch._dynamo.reset()


def test_autocast_takes_states_of_another_dtype_as_torch_nn():
    """Under autocast torch.nn takes any floating input and states; outside it refuses."""
    layer = rnnkit.LSTM(I, H)
    x = torch.randn(T, B, I).bfloat16()
    hx = (torch.zeros(1, B, H), torch.zeros(1, B, H).bfloat16())
    with torch.autocast("cpu"):
        out, (h, c) = layer(x, hx)
    assert out.dtype == h.dtype == c.dtype == torch.bfloat16
    with pytest.raises(TypeError, match="dtype"):
        layer(x, hx)


def test_float64_ignores_autocast():
    layer = rnnkit.GRU(I, H).double()
    with torch.autocast("cpu"):
        out, h = layer(torch.randn(T, B, I, dtype=torch.float64))
    assert out.dtype == h.dtype == torch.float64
