"""The kernels' recycled outputs and saved tensors (workspace.recycled): memory is reused only
once nothing references it, so nothing a caller or autograd still holds is ever overwritten."""

import torch
from torch.testing import assert_close

import rnnkit
from rnnkit.bptt import workspace


def test_recycled_reuses_only_free_storage():
    like = torch.empty(1)
    a = workspace.recycled("test.a", (512, 1024), like)
    ptr = a.data_ptr()
    b = workspace.recycled("test.a", (512, 1024), like)  # a is held: new memory
    assert b.data_ptr() != ptr
    view = a[10:]
    del a
    c = workspace.recycled("test.a", (512, 1024), like)  # a view still holds it
    assert c.data_ptr() != ptr
    del view, b, c
    d = workspace.recycled("test.a", (512, 1024), like)
    assert d.data_ptr() == ptr and d._base is None and d.is_contiguous()
    assert d.shape == (512, 1024)
    workspace.release()


def test_small_and_cuda_shapes_are_plain_tensors():
    t = workspace.recycled("test.small", (4, 4), torch.empty(1))
    assert t.shape == (4, 4) and t._base is None


def test_outputs_held_across_calls_are_not_overwritten():
    """Two training steps with the first step's outputs (and its graph) still held: the
    second call must not reuse them; after both backwards the results equal fresh runs."""
    torch.manual_seed(0)
    for cell in ("LSTM", "GRU", "RNN"):
        layer = getattr(rnnkit, cell)(32, 128)
        x1, x2 = torch.randn(60, 40, 32), torch.randn(60, 40, 32)  # outputs over 1 MB
        out1, _ = layer(x1)
        keep = out1.detach().clone()
        out2, _ = layer(x2)
        assert_close(out1.detach(), keep, rtol=0, atol=0)
        assert out1.data_ptr() != out2.data_ptr()
        (out1.sum() + out2.sum()).backward()
        g = [p.grad.clone() for p in layer.parameters()]
        layer.zero_grad()
        want = layer(x1)[0].sum() + layer(x2)[0].sum()
        want.backward()
        for a, b in zip(g, [p.grad for p in layer.parameters()], strict=True):
            assert_close(a, b, rtol=1e-5, atol=1e-5)
