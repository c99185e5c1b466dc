"""Tests for the gradient lab: the generated tasks and their baselines, the initialisations,
the gradient measurements (against autograd and closed forms), and `rnnkit lab`."""

import json
import math

import pytest
import torch
from budget import SEED, margin
from clirun import assert_one_error_line, rnnkit

import rnnkit as rk
from rnnkit import init
from rnnkit.lab import (
    ADDING_BASELINE_MSE,
    adding_problem,
    copy_baseline_ce,
    copy_memory,
    hidden_grad_norms,
    jacobian_norms,
    scale_spectral_radius_,
    spectral_radius,
)
from rnnkit.lab.model import LabModel

# ---- tasks


def test_adding_problem_has_one_marker_in_each_half_and_sums_the_marked_values():
    x, y = adding_problem(500, 30, torch.Generator().manual_seed(0))
    assert x.shape == (500, 30, 2) and y.shape == (500,)
    marks = x[..., 1]
    assert (marks.sum(1) == 2).all()
    assert (marks[:, :15].sum(1) == 1).all() and (marks[:, 15:].sum(1) == 1).all()
    torch.testing.assert_close(y, (x[..., 0] * marks).sum(1))
    assert 0 <= x[..., 0].min() and x[..., 0].max() < 1


def test_always_answering_one_scores_the_adding_baseline():
    _, y = adding_problem(200_000, 4, torch.Generator().manual_seed(1))
    assert ((y - 1) ** 2).mean().item() == pytest.approx(ADDING_BASELINE_MSE, rel=0.01)


def test_copy_memory_layout():
    x, y = copy_memory(4, 6, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 26)
    symbols = x[:, :10]
    assert ((1 <= symbols) & (symbols <= 8)).all()
    assert (x[:, 10:15] == 0).all() and (x[:, 15] == 9).all() and (x[:, 16:] == 0).all()
    assert (y[:, :16] == 0).all() and (y[:, 16:] == symbols).all()


def test_the_memoryless_copy_strategy_scores_the_copy_baseline():
    T = 50
    x, y = copy_memory(2000, T, torch.Generator().manual_seed(2))
    logits = torch.full((*y.shape, 9), -1e9)
    logits[:, : T + 10, 0] = 0.0  # blank, sure, until the delimiter has passed
    logits[:, T + 10 :, 1:] = 0.0  # then a uniform guess over the 8 symbols
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert ce.item() == pytest.approx(copy_baseline_ce(T), rel=1e-6)
    assert copy_baseline_ce(100) == pytest.approx(10 * math.log(8) / 120)


@pytest.mark.parametrize("make", [adding_problem, copy_memory])
def test_bad_task_arguments(make):
    with pytest.raises(ValueError, match="length must be an int >= "):
        make(3, 0)
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        make(0, 10)


# ---- initialisations


@pytest.mark.parametrize("make", [rk.LSTM, rk.GRU, rk.RNN, torch.nn.LSTM])
def test_orthogonal_blocks(make):
    layer = make(3, 8, num_layers=2, bidirectional=True)
    init.initialize(layer, "orthogonal")
    gates = layer.weight_hh_l1_reverse.shape[0] // 8
    for g in range(gates):
        block = layer.weight_hh_l1_reverse[g * 8 : (g + 1) * 8].detach()
        torch.testing.assert_close(block @ block.T, torch.eye(8), atol=1e-5, rtol=0)
    if "LSTM" in type(layer).__name__:
        assert (layer.bias_ih_l0[8:16] == 1).all() and (layer.bias_hh_l0[8:16] == 0).all()


def test_identity_is_the_irnn_and_only_for_the_elman_rnn():
    layer = init.initialize(rk.RNN(3, 6, nonlinearity="relu"), "identity")
    assert torch.equal(layer.weight_hh_l0.detach(), torch.eye(6))
    assert (layer.bias_ih_l0 == 0).all() and layer.weight_ih_l0.abs().max() < 0.01
    with pytest.raises(ValueError, match="for the Elman RNN; got a GRU"):
        init.initialize(rk.GRU(3, 6), "identity")


def test_chrono_biases():
    T_max = 50
    lstm = init.initialize(rk.LSTM(3, 16), "chrono", t_max=T_max)
    b_f, b_i = lstm.bias_ih_l0[16:32].detach(), lstm.bias_ih_l0[:16].detach()
    assert (b_f >= 0).all() and (b_f <= math.log(T_max - 1)).all()
    torch.testing.assert_close(b_i, -b_f)
    assert (lstm.bias_hh_l0[:32] == 0).all()
    gru = init.initialize(rk.GRU(3, 16), "chrono", t_max=T_max)
    b_z = gru.bias_ih_l0[16:32].detach()
    assert (b_z >= 0).all() and b_z.std() > 0.1
    with pytest.raises(ValueError, match="needs t_max"):
        init.initialize(rk.LSTM(3, 4), "chrono")
    with pytest.raises(ValueError, match="use it with LSTM or GRU"):
        init.initialize(rk.RNN(3, 4), "chrono", t_max=10)


def test_forget_bias_and_bad_schemes():
    lstm = init.forget_bias_(rk.LSTM(2, 4), 2.0)
    assert (lstm.bias_ih_l0[4:8] == 2).all() and (lstm.bias_hh_l0[4:8] == 0).all()
    with pytest.raises(ValueError, match="init must be one of"):
        init.initialize(rk.LSTM(2, 4), "xavier")
    with pytest.raises(TypeError, match="expected an RNN, LSTM or GRU layer, got Linear"):
        init.initialize(torch.nn.Linear(2, 2), "orthogonal")
    with pytest.raises(ValueError, match="the LSTM's; got a GRU"):
        init.forget_bias_(rk.GRU(2, 4))


# ---- gradient measurements


def test_hidden_grad_norms_of_a_model_match_autograd_on_its_states():
    torch.manual_seed(0)
    model = LabModel("adding", cell="gru", hidden=6).double()
    x, y = adding_problem(4, 9, torch.Generator().manual_seed(0))
    x, y = x.double(), y.double()
    norms = hidden_grad_norms(model, x, y)
    assert norms.shape == (1, 9)
    # autograd: the same model with the loop reference, h_t retained by stepping it
    w = [getattr(model.rnn, f"{n}_l0") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    h, hs = x.new_zeros(4, 6), []
    for t in range(9):
        h = rk.functional.gru_step(x[:, t], h, *w)
        h.retain_grad()
        hs.append(h)
    torch.nn.functional.mse_loss(model.head(h).squeeze(-1), y).backward()
    expected = torch.stack([torch.linalg.vector_norm(h.grad) for h in hs])
    torch.testing.assert_close(norms[0], expected, rtol=1e-10, atol=1e-14)


def test_hidden_grad_norms_needs_the_kernels():
    model = LabModel("adding", cell="rnn", hidden=4)
    model.rnn.impl = "loop"
    x, y = adding_problem(2, 5)
    with pytest.raises(ValueError, match="impl='auto' or 'bptt'"):
        hidden_grad_norms(model, x, y)


def test_jacobian_norms_of_a_linear_rnn_are_the_norms_of_the_powers_of_w_hh():
    """relu with a positive state and positive weights is linear: ds_t/ds_0 = W_hh^t."""
    layer = rk.RNN(1, 3, nonlinearity="relu").double()
    with torch.no_grad():
        layer.weight_hh_l0.copy_(torch.tensor([[0.5, 0.2, 0.1], [0.1, 0.6, 0.2], [0.3, 0.1, 0.4]]))
        layer.weight_ih_l0.fill_(1.0)
        layer.bias_ih_l0.fill_(0.1)
        layer.bias_hh_l0.zero_()
    x = torch.ones(12, 1, dtype=torch.float64)
    lags, norms = jacobian_norms(layer, x)
    assert lags[-1] == 11
    W = layer.weight_hh_l0.detach()
    for lag, n in zip(lags.tolist(), norms):
        expected = torch.linalg.matrix_norm(torch.linalg.matrix_power(W, lag), ord=2)
        torch.testing.assert_close(n, expected)


@pytest.mark.parametrize("make", [rk.LSTM, rk.GRU])
def test_jacobian_norms_of_gated_cells_match_autograd(make):
    layer = make(2, 4).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    lags, norms = jacobian_norms(layer, x, points=10)
    assert lags.tolist() == [1, 2, 3, 4]

    def states_after(s0, t):  # the state t steps after s_0, as a function of s_0
        s = s0
        for k in range(1, t + 1):
            if make is rk.LSTM:
                w = [layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0]
                h, c = rk.functional.lstm_step(x[k], (s[:4], s[4:]), *w)
                s = torch.cat([h, c])
            else:
                w = [layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0]
                s = rk.functional.gru_step(x[k], s, *w)
        return s

    with torch.no_grad():
        n = 8 if make is rk.LSTM else 4
        s0 = states_after(torch.zeros(n, dtype=torch.float64), 0)
        w = [layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0]
        if make is rk.LSTM:
            s0 = torch.cat(rk.functional.lstm_step(x[0], (s0[:4], s0[4:]), *w))
        else:
            s0 = rk.functional.gru_step(x[0], s0, *w)
    for lag, value in zip(lags.tolist(), norms):
        J = torch.autograd.functional.jacobian(lambda s, lag=lag: states_after(s, lag), s0)
        torch.testing.assert_close(value, torch.linalg.matrix_norm(J, ord=2))


def test_spectral_radius_and_scaling():
    layer = rk.LSTM(2, 6)
    radii = spectral_radius(layer)
    assert set(radii) == {"i", "f", "g", "o"}
    scale_spectral_radius_(layer, 1.7)
    assert all(r == pytest.approx(1.7, rel=1e-5) for r in spectral_radius(layer).values())
    assert set(spectral_radius(rk.RNN(2, 3))) == {"h"}


# ---- training and the command line


def test_a_gru_learns_a_short_adding_problem():
    from rnnkit.lab import train

    # trained until the validation MSE is a quarter of the baseline's (1/6), within 1,500 steps;
    # the test MSE is then held to half of it
    s = train(
        "adding",
        {"cell": "gru", "hidden": 16, "length": 10, "lr": 0.01, "max_steps": 1500,
         "eval_every": 50, "stop_at": 0.25 / 6, "seed": SEED, "progress": False,
         "tensorboard": False},
    )  # fmt: skip
    margin("steps", s["steps"], 1500)
    assert s["test_mse"] < 0.5 * s["baseline_mse"]
    assert s["steps"] < 1500 and s["seconds"] > 0


def test_lab_adding_cli_json_and_kept_run(tmp_path):
    code, stdout, err = rnnkit(
        "lab", "adding", "--cell", "lstm", "--hidden", "8", "--length", "12",
        "--max-steps", "20", "--eval-every", "10", "--json", "--out", tmp_path / "run",
    )  # fmt: skip
    assert code == 0, err
    s = json.loads(stdout)
    assert set(s) >= {"test_mse", "baseline_mse", "solved", "steps", "seconds"}
    assert s["baseline_mse"] == pytest.approx(1 / 6) and s["steps"] == 20
    assert (tmp_path / "run" / "best").is_dir()
    code, stdout, err = rnnkit(
        "lab", "gradients", "--checkpoint", tmp_path / "run", "--length", "12", "--json"
    )
    assert code == 0, err
    (entry,) = json.loads(stdout).values()
    assert entry["cell"] == "lstm" and entry["grad_norm_last"] > 0


def test_lab_copy_cli(tmp_path):
    code, stdout, err = rnnkit(
        "lab", "copy", "--cell", "gru", "--init", "chrono", "--hidden", "8", "--length", "5",
        "--max-steps", "5", "--json",
    )  # fmt: skip
    assert code == 0, err
    s = json.loads(stdout)
    assert s["baseline_ce"] == pytest.approx(10 * math.log(8) / 25)
    assert 0 <= s["test_accuracy"] <= 1 and s["init"] == "chrono"


def test_lab_gradients_plot_and_orders_of_magnitude(tmp_path):
    png = tmp_path / "grads.png"
    code, stdout, err = rnnkit(
        "lab", "gradients", "--length", "60", "--hidden", "16", "--batch", "8", "--plot", png,
        "--json",
    )  # fmt: skip
    assert code == 0, err
    r = json.loads(stdout)
    assert set(r) == {"rnn", "lstm", "gru"}
    for entry in r.values():
        assert entry["orders_of_magnitude"] > 1  # at initialisation the gradient vanishes
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lab_explode_no_clipping_is_stopped_by_the_guard_clipping_trains():
    code, stdout, err = rnnkit("lab", "explode", "--steps", "30", "--hidden", "32", "--json")
    assert code == 0, err
    r = json.loads(stdout)
    assert r["no_clipping"]["diverged"] and "non-finite loss" in r["no_clipping"]["message"]
    assert not r["clipping"]["diverged"] and r["clipping"]["steps"] == 30
    assert math.isfinite(r["clipping"]["test_mse"])


@pytest.mark.parametrize(
    "args,match",
    [
        (["adding", "--cell", "tcn"], "invalid choice: 'tcn'"),
        (["adding", "--length", "0"], "--length: expected a positive integer"),
        (["adding", "--cell", "gru", "--init", "identity"], "for the Elman RNN; got a GRU"),
        (["adding", "--nonlinearity", "relu"], "relu is for the Elman RNN"),
        (["gradients", "--cell", "rnn,tcn"], "--cell takes names from"),
        (["explode", "--radius", "-1"], "--radius: expected a positive number"),
    ],
)
def test_bad_lab_input_is_one_error_line(args, match):
    code, _, err = (
        rnnkit("lab", *args, "--max-steps", "1") if args[0] == "adding" else rnnkit("lab", *args)
    )
    assert_one_error_line(code, err, match)


def test_gradients_of_a_checkpoint_of_another_kind_is_refused(tmp_path):
    code, _, err = rnnkit("lab", "gradients", "--checkpoint", tmp_path)
    assert_one_error_line(code, err, "not an rnnkit checkpoint")


@pytest.mark.parametrize("make", [rk.LSTM, rk.GRU, rk.RNN])
def test_jacobian_norms_of_layer_normalised_cells_use_their_step(make):
    """layer_norm=True: the Jacobians of the layer-normalised step, not of the plain one."""
    torch.manual_seed(0)
    layer = make(2, 4, layer_norm=True).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    lags, norms = jacobian_norms(layer, x, points=10)
    h = layer(x.unsqueeze(1))[0][:, 0]  # (T, H): the states along the sequence
    n = 8 if make is rk.LSTM else 4
    w = tuple(layer._weights(0, torch.float64))

    def step(x_t, s):
        if make is rk.LSTM:
            return torch.cat(rk.functional_ln.lstm_step(x_t, [s[:4], s[4:]], w))
        return layer._kernels.step(x_t, [s], w, "tanh")[0]

    def states_after(s0, t):
        s = s0
        for j in range(1, t + 1):
            s = step(x[j], s)
        return s

    with torch.no_grad():
        s0 = step(x[0], torch.zeros(n, dtype=torch.float64))
    if make is not rk.LSTM:
        torch.testing.assert_close(s0, h[0].detach())
    for lag, value in zip(lags.tolist(), norms):
        J = torch.autograd.functional.jacobian(lambda s, lag=lag: states_after(s, lag), s0)
        torch.testing.assert_close(value, torch.linalg.matrix_norm(J, ord=2))
