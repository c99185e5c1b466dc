"""impl="fused" (torch's own fused operator, cuDNN on CUDA) against rnnkit's kernels: the same
outputs, final states and every gradient in float64 on the CPU, where torch's fused operators
run too; and impl="auto"'s choice: the kernels on the CPU, under a gradient record, for
options the fused operator lacks; the fused operator on CUDA (run when a GPU is at hand)."""

import pytest
import torch

import rnnkit
from rnnkit import fused
from rnnkit.bptt.probe import GradientRecord

T, B, I, H = 6, 4, 3, 5
LENGTHS = torch.tensor([3, 6, 1, 6])  # unsorted, a tie, longest == T
LAYERS = {
    "tanh": lambda **kw: rnnkit.RNN(I, H, **kw),
    "relu": lambda **kw: rnnkit.RNN(I, H, nonlinearity="relu", **kw),
    "lstm": lambda **kw: rnnkit.LSTM(I, H, **kw),
    "lstmp": lambda **kw: rnnkit.LSTM(I, H, proj_size=2, **kw),
    "gru": lambda **kw: rnnkit.GRU(I, H, **kw),
}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def run(layer, x, hx, lengths, impl, device="cpu"):
    """(output, final states, gradients of x, hx and every parameter) of one call."""
    layer = layer.to(device)
    x = x.detach().to(device).requires_grad_()
    hx = [s.detach().to(device).requires_grad_() for s in hx]
    lengths = None if lengths is None else lengths.to(device)
    out, state = layer(x, tuple(hx) if len(hx) == 2 else hx[0], lengths, impl=impl)
    state = list(state) if isinstance(state, tuple) else [state]
    g = torch.Generator().manual_seed(1)  # the same loss weights for every call and device
    weights = torch.randn(out.shape, generator=g, dtype=out.dtype).to(device)
    loss = (out * weights).sum() + sum((s * s).sum() for s in state)
    grads = torch.autograd.grad(loss, [x, *hx, *layer.parameters()])
    return [t.detach().cpu() for t in (out, *state, *grads)]


def inputs(layer, dtype=torch.float64):
    D, L = 2 if layer.bidirectional else 1, layer.num_layers
    P = getattr(layer, "proj_size", 0) or H
    x = torch.randn(T, B, I, dtype=dtype)
    hx = [torch.randn(L * D, B, P, dtype=dtype)]
    if layer.mode == "lstm":
        hx.append(torch.randn(L * D, B, H, dtype=dtype))
    return x, hx


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["equal", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", LAYERS)
def test_the_fused_operator_gives_the_kernels_outputs_and_gradients(kind, bidirectional, lengths):
    torch.manual_seed(0)
    layer = LAYERS[kind](num_layers=2, bidirectional=bidirectional, dtype=torch.float64)
    x, hx = inputs(layer)
    want = run(layer, x, hx, lengths, "bptt")
    got = run(layer, x, hx, lengths, "fused")
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_the_fused_path_keeps_batch_first_and_unbatched_inputs(kind):
    torch.manual_seed(0)
    layer = LAYERS[kind](batch_first=True, dtype=torch.float64)
    x = torch.randn(B, T, I, dtype=torch.float64)
    for inp in (x, x[0]):
        a, b = layer(inp, impl="fused"), layer(inp, impl="bptt")
        torch.testing.assert_close(a[0], b[0], rtol=1e-10, atol=1e-10)


def test_auto_runs_the_kernels_on_the_cpu_and_the_fused_operator_on_cuda():
    layer = rnnkit.LSTM(I, H)
    assert layer.impl == "auto"
    assert not fused.chosen(layer, torch.device("cpu"))
    assert fused.chosen(layer, torch.device("cuda"))
    with GradientRecord():  # the gradient lab reads dL/dh_t from the kernels
        assert not fused.chosen(layer, torch.device("cuda"))


def test_a_gradient_record_is_filled_by_the_default_layer():
    layer, x = rnnkit.GRU(I, H), torch.randn(T, B, I)
    with GradientRecord() as record:
        layer(x)[0].sum().backward()
    assert len(record.norms) == 1 and record.norms[0].shape == (T,)


def test_bad_impl_names_the_choices():
    with pytest.raises(ValueError, match="impl must be one of .*'fused'.*got 'cudnn'"):
        rnnkit.LSTM(I, H, impl="cudnn")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["tanh", "lstm", "lstmp", "gru"])
def test_auto_on_each_device_gives_the_cpu_kernels_results(kind, device):
    """On CUDA this runs cuDNN (float32 there: cuDNN's float64 is not its fast path)."""
    torch.manual_seed(0)
    layer = LAYERS[kind](num_layers=2, bidirectional=True)
    x, hx = inputs(layer, torch.float32)
    want = run(layer, x, hx, LENGTHS, "bptt")
    got = run(layer, x, hx, LENGTHS, "auto", device)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
