"""rnnkit's dropout (regularisers.dropout, regularisers.Dropout): torch.nn's between-layer and
model dropout with the mask drawn from the CPU generator (16-bit draws), checked for what
torch.nn.functional.dropout promises: zeros with probability p, the rest scaled by 1 / (1 - p),
the gradient through the same mask, identity in eval mode, the same mask for the same seed
whatever the thread count."""

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.regularisers import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_zeros_a_fraction_p_and_scales_the_rest(p):
    torch.manual_seed(0)
    x = torch.rand(200, 500) + 1.0  # no zeros of its own
    y = dropout(x, p)
    kept = y != 0
    # 100,000 draws: the kept fraction's standard deviation is below 0.0016
    assert abs(kept.float().mean().item() - (1 - p)) < 0.01
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))


def test_dropout_gradient_goes_through_the_same_mask():
    torch.manual_seed(1)
    x = torch.randn(64, 33, dtype=torch.float64, requires_grad=True)
    g = torch.randn(64, 33, dtype=torch.float64)
    y = dropout(x, 0.3)
    y.backward(g)
    mask = (y.detach() != 0).double() / 0.7
    torch.testing.assert_close(x.grad, g * mask)


def test_dropout_is_reproducible_from_the_seed_whatever_the_thread_count():
    x = torch.randn(512, 1031)  # large enough for a parallel kernel to split
    threads = torch.get_num_threads()
    outs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            torch.manual_seed(5)
            outs.append(dropout(x, 0.25))
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_dropout_off_in_eval_and_at_p_0_and_torchs_at_p_1():
    x = torch.randn(10, 10)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    ints = torch.arange(10)
    with pytest.raises(RuntimeError):  # torch's own message for a non-float input
        dropout(ints, 0.5)


def test_dropout_module_is_nn_dropout_with_the_faster_mask():
    module = Dropout(0.2)
    assert isinstance(module, nn.Dropout)
    assert repr(module) == repr(nn.Dropout(0.2))
    assert module.state_dict() == {}
    x = torch.randn(50, 40) + 5
    torch.manual_seed(3)
    y = module(x)
    torch.manual_seed(3)
    torch.testing.assert_close(y, dropout(x, 0.2))
    assert torch.equal(module.eval()(x), x)


def test_between_layer_dropout_uses_it_and_eval_is_deterministic():
    torch.manual_seed(0)
    lstm = rnnkit.LSTM(4, 8, num_layers=3, dropout=0.5)
    x = torch.randn(6, 2, 4)
    torch.manual_seed(9)
    a, _ = lstm(x)
    torch.manual_seed(9)
    b, _ = lstm(x)
    torch.manual_seed(10)
    c, _ = lstm(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # the seed fixes the masks
    assert (a - c).abs().max() > 1e-3  # another seed, other masks
    lstm.eval()
    torch.testing.assert_close(lstm(x)[0], lstm(x)[0], rtol=0, atol=0)
