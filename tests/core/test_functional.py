"""The founding worked example through the public API, and the step equations vs torch.nn."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import rnnkit
from rnnkit import functional as F

# Scalar Elman RNN of the founding notes: W_xh, W_hh, b_h, then a linear head W_hy, b_y.
PARAMS = {"W_xh": 0.5, "W_hh": 0.3, "b_h": 0.1, "W_hy": 0.4, "b_y": 0.2}
X = [1.0, 2.0, 3.0]
EXPECTED_H = [0.53705, 0.85137, 0.95225]
EXPECTED_Y = [0.41482, 0.54055, 0.58090]
TARGETS = [0.5, 0.1, 0.9]


def worked_example(params, dtype, impl):
    """(rnn, head, h, y) for the worked example with the given scalar parameters."""
    rnn = rnnkit.RNN(1, 1, impl=impl, dtype=dtype)
    head = nn.Linear(1, 1, dtype=dtype)
    rnn.load_state_dict(
        {
            "weight_ih_l0": torch.tensor([[params["W_xh"]]], dtype=dtype),
            "weight_hh_l0": torch.tensor([[params["W_hh"]]], dtype=dtype),
            "bias_ih_l0": torch.tensor([params["b_h"]], dtype=dtype),
            "bias_hh_l0": torch.tensor([0.0], dtype=dtype),
        }
    )
    head.load_state_dict(
        {
            "weight": torch.tensor([[params["W_hy"]]], dtype=dtype),
            "bias": torch.tensor([params["b_y"]], dtype=dtype),
        }
    )
    x = torch.tensor(X, dtype=dtype).view(3, 1, 1)
    h0 = torch.zeros(1, 1, 1, dtype=dtype)
    h, h_n = rnn(x, h0)
    y = head(h)
    return rnn, head, h, h_n, y


def example_loss(y):
    targets = torch.tensor(TARGETS, dtype=y.dtype).view(3, 1, 1)
    return ((y - targets) ** 2).sum()


@pytest.mark.parametrize("impl", ["bptt", "loop"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_worked_example_values(impl, dtype):
    _, _, h, h_n, y = worked_example(PARAMS, dtype, impl)
    assert h.shape == (3, 1, 1) and y.shape == (3, 1, 1)
    assert h.dtype == dtype and y.dtype == dtype
    expected_h = torch.tensor(EXPECTED_H, dtype=dtype)
    assert_close(h.detach().flatten(), expected_h, atol=1e-5, rtol=0)
    assert_close(y.detach().flatten(), torch.tensor(EXPECTED_Y, dtype=dtype), atol=1e-5, rtol=0)
    assert_close(h_n.detach().flatten(), expected_h[-1:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["bptt", "loop"])
def test_worked_example_gradients_match_finite_differences(impl):
    rnn, head, _, _, y = worked_example(PARAMS, torch.float64, impl)
    example_loss(y).backward()
    analytic = {
        "W_xh": rnn.weight_ih_l0.grad.item(),
        "W_hh": rnn.weight_hh_l0.grad.item(),
        "b_h": rnn.bias_ih_l0.grad.item(),
        "W_hy": head.weight.grad.item(),
        "b_y": head.bias.grad.item(),
    }
    # b_h enters as b_ih + b_hh: both biases get the same gradient
    assert rnn.bias_hh_l0.grad.item() == pytest.approx(analytic["b_h"], abs=1e-12)

    eps = 1e-6
    for name in PARAMS:

        def loss_at(value, name=name):
            params = dict(PARAMS, **{name: value})
            with torch.no_grad():
                return example_loss(worked_example(params, torch.float64, impl)[4]).item()

        numeric = (loss_at(PARAMS[name] + eps) - loss_at(PARAMS[name] - eps)) / (2 * eps)
        assert analytic[name] == pytest.approx(numeric, abs=1e-7), name
        assert abs(analytic[name]) > 1e-3, name  # a gradient of 0 would prove nothing


# ---- functional steps vs torch.nn cells ---------------------------------------------------

B, I, H = 3, 4, 5


def _weights(cell, bias):
    return (
        cell.weight_ih,
        cell.weight_hh,
        cell.bias_ih if bias else None,
        cell.bias_hh if bias else None,
    )


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_step_matches_torch_rnncell(nonlinearity, bias):
    cell = nn.RNNCell(I, H, bias=bias, nonlinearity=nonlinearity, dtype=torch.float64)
    x = torch.randn(B, I, dtype=torch.float64)
    h = torch.randn(B, H, dtype=torch.float64)
    got = F.rnn_step(x, h, *_weights(cell, bias), nonlinearity=nonlinearity)
    assert_close(got, cell(x, h), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_lstm_step_matches_torch_lstmcell(bias):
    cell = nn.LSTMCell(I, H, bias=bias, dtype=torch.float64)
    x = torch.randn(B, I, dtype=torch.float64)
    h = torch.randn(B, H, dtype=torch.float64)
    c = torch.randn(B, H, dtype=torch.float64)
    got_h, got_c = F.lstm_step(x, (h, c), *_weights(cell, bias))
    want_h, want_c = cell(x, (h, c))
    assert_close(got_h, want_h, atol=1e-12, rtol=1e-12)
    assert_close(got_c, want_c, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_gru_step_matches_torch_grucell(bias):
    cell = nn.GRUCell(I, H, bias=bias, dtype=torch.float64)
    x = torch.randn(B, I, dtype=torch.float64)
    h = torch.randn(B, H, dtype=torch.float64)
    got = F.gru_step(x, h, *_weights(cell, bias))
    assert_close(got, cell(x, h), atol=1e-12, rtol=1e-12)


def test_rnn_step_rejects_unknown_nonlinearity():
    x, h = torch.randn(B, I), torch.randn(B, H)
    w_ih, w_hh = torch.randn(H, I), torch.randn(H, H)
    with pytest.raises(ValueError, match=r"\('tanh', 'relu'\), got 'sigmoid'"):
        F.rnn_step(x, h, w_ih, w_hh, nonlinearity="sigmoid")


# ---- rnnkit cells vs torch.nn cells --------------------------------------------------------

CELLS = [
    ("rnn_tanh", rnnkit.RNNCell, nn.RNNCell, {"nonlinearity": "tanh"}),
    ("rnn_relu", rnnkit.RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
    ("lstm", rnnkit.LSTMCell, nn.LSTMCell, {}),
    ("gru", rnnkit.GRUCell, nn.GRUCell, {}),
]


def _cell_inputs(name, batched):
    lead = (B,) if batched else ()
    x = torch.randn(*lead, I, dtype=torch.float64)
    h = torch.randn(*lead, H, dtype=torch.float64)
    if name == "lstm":
        return x, (h, torch.randn(*lead, H, dtype=torch.float64))
    return x, h


def _assert_cell_outputs_equal(ours, theirs, name, batched):
    x, hx = _cell_inputs(name, batched)
    for state in (hx, None):
        got, want = ours(x, state), theirs(x, state)
        got = got if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape
            assert_close(g, w, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("name,ours_cls,theirs_cls,kw", CELLS, ids=[c[0] for c in CELLS])
def test_cell_parameters_match_torch(name, ours_cls, theirs_cls, kw, bias):
    ours = ours_cls(I, H, bias=bias, **kw)
    theirs = theirs_cls(I, H, bias=bias, **kw)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for key in theirs_sd:
        assert ours_sd[key].shape == theirs_sd[key].shape, key
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("name,ours_cls,theirs_cls,kw", CELLS, ids=[c[0] for c in CELLS])
def test_cell_state_dict_round_trip(name, ours_cls, theirs_cls, kw, batched):
    # torch.nn -> rnnkit
    theirs = theirs_cls(I, H, dtype=torch.float64, **kw)
    ours = ours_cls(I, H, dtype=torch.float64, **kw)
    ours.load_state_dict(theirs.state_dict())
    _assert_cell_outputs_equal(ours, theirs, name, batched)
    # rnnkit -> torch.nn
    ours = ours_cls(I, H, dtype=torch.float64, **kw)
    theirs = theirs_cls(I, H, dtype=torch.float64, **kw)
    theirs.load_state_dict(ours.state_dict())
    _assert_cell_outputs_equal(ours, theirs, name, batched)
