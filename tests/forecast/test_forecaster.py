"""Tests for the Forecaster model: shapes of every architecture and head, the losses against
their formulas, instance normalisation's equivariance, learning a noiseless sine wave, and
bad configurations and inputs."""

import math
import re

import pytest
import torch
from budget import SEED, train_until

from rnnkit.forecast.model import Forecaster, ForecasterConfig

B, L, H, C, P, K = 3, 10, 4, 2, 1, 2


def inputs(b=B, lookback=L, horizon=H, targets=C, past=P, future=K, dtype=torch.float32):
    y = torch.randn(b, lookback, targets, dtype=dtype)
    x = torch.randn(b, lookback, past, dtype=dtype)
    f = torch.randn(b, lookback + horizon, future, dtype=dtype)
    return y, x, f


@pytest.mark.parametrize("arch", ["direct", "seq2seq", "attention"])
@pytest.mark.parametrize(
    "head,extra,tail",
    [
        ("point", {}, ()),
        ("quantile", {"quantiles": [0.1, 0.5, 0.9]}, (3,)),
        ("gaussian", {}, (2,)),
    ],
)
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_every_architecture_head_and_cell_gives_its_shape_and_a_finite_loss(
    arch, head, extra, tail, cell
):
    model = Forecaster(
        C, H, past_features=P, future_features=K, arch=arch, head=head, cell=cell,
        hidden=8, layers=2, **extra,
    )  # fmt: skip
    out, loss = model(inputs(), torch.randn(B, H, C))
    assert out.shape == (B, H, C, *tail)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    out2, none = model.eval()(inputs())
    assert none is None and out2.shape == out.shape


def test_point_losses_are_mse_and_mae_of_the_forecast():
    batch, truth = inputs(), torch.randn(B, H, C)
    for loss_name, fn in (("mse", lambda d: d.pow(2).mean()), ("mae", lambda d: d.abs().mean())):
        model = Forecaster(C, H, past_features=P, future_features=K, loss=loss_name).eval()
        out, loss = model(batch, truth)
        torch.testing.assert_close(loss, fn(out - truth))


def test_quantile_loss_is_the_pinball_loss_and_the_point_is_the_median():
    q = [0.1, 0.5, 0.9]
    model = Forecaster(C, H, past_features=P, future_features=K, head="quantile", quantiles=q)
    batch, truth = inputs(), torch.randn(B, H, C)
    out, loss = model.eval()(batch, truth)
    expected = 0.0
    for k, tau in enumerate(q):
        e = truth - out[..., k]
        expected = expected + torch.where(e >= 0, tau * e, (tau - 1) * e).mean()
    torch.testing.assert_close(loss, expected / len(q))
    torch.testing.assert_close(model.point(out), out[..., 1])


def test_gaussian_loss_is_the_negative_log_likelihood():
    model = Forecaster(C, H, past_features=P, future_features=K, head="gaussian").eval()
    batch, truth = inputs(), torch.randn(B, H, C)
    out, loss = model(batch, truth)
    assert (out[..., 1] > 0).all()
    nll = -torch.distributions.Normal(out[..., 0], out[..., 1]).log_prob(truth).mean()
    torch.testing.assert_close(loss, nll)
    torch.testing.assert_close(model.point(out), out[..., 0])


@pytest.mark.parametrize("arch", ["direct", "seq2seq", "attention"])
def test_instance_norm_makes_the_forecast_follow_a_shift_and_scale_of_the_series(arch):
    model = Forecaster(C, H, arch=arch, hidden=8).double().eval()
    y, x, f = inputs(past=0, future=0, dtype=torch.float64)
    out, _ = model((y, x, f))
    moved, _ = model((3.0 * y + 7.0, x, f))
    # exact but for the 1e-5 added to the variance, which scales by 1, not 9
    torch.testing.assert_close(moved, 3.0 * out + 7.0, rtol=1e-4, atol=1e-4)
    plain = Forecaster(C, H, arch=arch, hidden=8, instance_norm=False).double().eval()
    a, _ = plain((y, x, f))
    b, _ = plain((3.0 * y + 7.0, x, f))
    assert not torch.allclose(b, 3.0 * a + 7.0)


def test_decoders_train_on_their_own_forecasts_unless_teacher_forcing():
    y, x, f = inputs()
    truth = torch.randn(B, H, C)
    free = Forecaster(C, H, past_features=P, future_features=K, arch="seq2seq", dropout=0.0)
    alone, _ = free.eval()((y, x, f))
    trained, _ = free.train()((y, x, f), truth)
    torch.testing.assert_close(trained, alone)  # the truth is never read
    forced = Forecaster(
        C, H, past_features=P, future_features=K, arch="seq2seq", dropout=0.0, teacher_forcing=True
    )
    forced.load_state_dict(free.state_dict())
    with_truth, _ = forced.train()((y, x, f), truth)
    assert not torch.allclose(with_truth, alone)
    with_own, _ = forced((y, x, f), alone.detach())  # fed its own forecasts: the same path
    torch.testing.assert_close(with_own, alone)


def sine_batch(series, starts, lookback, horizon):
    y = torch.stack([series[t - lookback : t] for t in starts]).unsqueeze(-1)
    future = torch.stack([series[t : t + horizon] for t in starts]).unsqueeze(-1)
    return (
        y,
        y.new_zeros(len(starts), lookback, 0),
        y.new_zeros(len(starts), lookback + horizon, 0),
    ), future


@pytest.mark.parametrize("arch,bound", [("direct", 5e-3), ("seq2seq", 0.05)])
def test_learns_a_noiseless_sine_wave(arch, bound):
    """Trained until the held-out MSE is under `bound`, far below the variance (about 0.62)."""
    lookback, horizon, n = 48, 12, 1500
    t = torch.arange(n, dtype=torch.float32)
    series = torch.sin(2 * math.pi * t / 24) + 0.5 * torch.sin(2 * math.pi * t / 60)
    starts = torch.arange(lookback, n - horizon)
    train, test = starts[:-200], starts[-200:]
    model = Forecaster(1, horizon, arch=arch, hidden=32, layers=1, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(SEED)
    variance = float(series.var())  # about 0.62: what forecasting the mean would score
    assert bound < variance / 10

    def step(_: int) -> None:
        pick = train[torch.randint(len(train), (32,), generator=g)].tolist()
        _, loss = model.train()(*sine_batch(series, pick, lookback, horizon))
        opt.zero_grad()
        loss.backward()
        opt.step()

    def below_bound() -> bool:
        with torch.no_grad():
            _, mse = model.eval()(*sine_batch(series, test.tolist(), lookback, horizon))
        return float(mse) < bound

    train_until(step, below_bound, budget=1500, every=50)


@pytest.mark.parametrize(
    "options,error,match",
    [
        ({"arch": "transformer"}, ValueError, "arch must be one of"),
        ({"head": "poisson"}, ValueError, "head must be one of"),
        ({"loss": "huber"}, ValueError, "loss must be one of"),
        ({"cell": "tcn"}, ValueError, "cell must be one of"),
        ({"hidden": 0}, ValueError, "hidden must be an int >= 1, got 0"),
        ({"layers": 1.5}, ValueError, "layers must be an int >= 1, got 1.5"),
        ({"dropout": 1.0}, ValueError, "dropout must be a float in [0, 1)"),
        ({"head": "quantile"}, ValueError, "quantiles must be increasing"),
        ({"head": "quantile", "quantiles": [0.9, 0.1]}, ValueError, "got [0.9, 0.1]"),
        ({"quantiles": [0.5]}, ValueError, "quantiles are for the quantile head"),
        ({"teacher_forcing": True}, ValueError, "teacher_forcing is for the decoders"),
        ({"arch": "seq2seq", "teacher_forcing": 1}, TypeError, "must be a bool, got 1"),
    ],
)
def test_bad_configurations_name_the_value(options, error, match):
    with pytest.raises(error, match=re.escape(match)):
        Forecaster(1, 4, **options)


def test_config_round_trips_and_refuses_unknown_keys():
    model = Forecaster(2, 5, arch="attention", head="quantile", quantiles=[0.2, 0.8])
    again = Forecaster.from_config(model.config.to_dict())
    assert again.config == model.config
    with pytest.raises(ValueError, match="unknown forecaster config keys: \\['colour'\\]"):
        ForecasterConfig.from_dict({**model.config.to_dict(), "colour": 1})


def test_bad_inputs_name_the_expected_shape():
    model = Forecaster(C, H, past_features=P, future_features=K)
    y, x, f = inputs()
    with pytest.raises(TypeError, match="inputs must be"):
        model(y)
    with pytest.raises(ValueError, match=r"x must have shape \(3, 10, 1\), got \(3, 10, 2\)"):
        model((y, torch.randn(B, L, 2), f))
    with pytest.raises(ValueError, match=r"f must have shape \(3, 14, 2\), got \(3, 10, 2\)"):
        model((y, x, f[:, :L]))
    with pytest.raises(ValueError, match="3-D tensors"):
        model((y[0], x, f))
    with pytest.raises(ValueError, match=r"targets must be \(B, H, C\) = \(3, 4, 2\)"):
        model((y, x, f), torch.randn(B, H + 1, C))


@pytest.mark.parametrize("arch", ["direct", "attention"])
def test_quantiles_never_cross_even_untrained(arch):
    q = [0.1, 0.25, 0.5, 0.75, 0.9]
    model = Forecaster(C, H, arch=arch, head="quantile", quantiles=q, hidden=8).eval()
    out, _ = model(inputs(b=64, past=0, future=0))
    assert (out.diff(dim=-1) >= 0).all()
