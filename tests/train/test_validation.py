"""Tests for rnnkit.train.validation: which result is the best so far, and running valid_fn
without disturbing training."""

import math

import pytest
import torch
from torch import nn

from rnnkit.train.validation import improves, run_validation


def test_a_lower_metric_improves_and_the_first_finite_one_does():
    assert improves(0.5, None, None, None)
    assert improves(0.4, 9.0, 0.5, 1.0)
    assert not improves(0.6, 0.1, 0.5, 1.0)
    assert not improves(math.nan, 0.1, None, None)
    assert not improves(math.inf, 0.1, 0.5, 1.0)


def test_a_tie_goes_to_the_lower_validation_loss():
    assert improves(0.0, 0.3, 0.0, 0.4)
    assert not improves(0.0, 0.4, 0.0, 0.4)
    assert not improves(0.0, None, 0.0, 0.4)
    assert not improves(0.0, math.nan, 0.0, 0.4)


def test_run_validation_restores_the_rng_the_carried_state_and_train_mode():
    model = nn.Dropout(0.5).train()
    carried = []

    def valid_fn(m):
        assert not m.training and not torch.is_grad_enabled()
        torch.rand(3)  # draws from a forked generator
        return torch.tensor(0.25)

    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    metrics = run_validation(
        model, valid_fn, "loss", torch.device("cpu"), lambda: "h", carried.append
    )
    assert metrics == {"loss": 0.25} and model.training and carried == ["h"]
    torch.testing.assert_close(torch.rand(2), expected)


def test_run_validation_needs_the_metric():
    with pytest.raises(ValueError, match="not TrainConfig.metric 'error'"):
        run_validation(nn.Linear(1, 1), lambda m: {"loss": 1.0}, "error", torch.device("cpu"))
