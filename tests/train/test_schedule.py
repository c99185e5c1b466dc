"""Tests for the learning-rate schedules."""

import math

import pytest

from rnnkit.train.schedule import Schedule


def test_warmup_then_cosine_to_the_floor():
    s = Schedule("cosine", 1.0, warmup_steps=4, max_steps=14, floor=0.1)
    assert [s.lr(k) for k in range(4)] == [0.2, 0.4, 0.6, 0.8]
    assert s.lr(4) == 1.0
    assert s.lr(9) == pytest.approx(0.55)  # halfway
    assert s.lr(14) == pytest.approx(0.1) and s.lr(100) == pytest.approx(0.1)


def test_cosine_over_time_without_max_steps():
    s = Schedule("cosine", 1.0, max_time=10.0)
    assert s.lr(50, elapsed=5.0) == pytest.approx(0.5)
    assert s.lr(50, elapsed=10.0) == pytest.approx(0.0)


def test_plateau_halves_after_patience_and_round_trips():
    s = Schedule("plateau", 1.0, floor=0.2, factor=0.5, patience=2)
    for value in (1.0, 0.9, 0.95, 0.95):  # improves, then 2 evaluations without
        s.observe(value)
    assert s.lr(10) == 0.5
    for value in (0.9, 0.9, 0.9, 0.9):
        s.observe(value)
    assert s.lr(10) == 0.2  # 0.125, floored
    t = Schedule("plateau", 1.0, floor=0.2, factor=0.5, patience=2)
    t.load_state_dict(s.state_dict())
    assert t.state_dict() == s.state_dict()


def test_constant_and_bad_kind():
    assert Schedule("constant", 0.3).lr(1000) == 0.3
    with pytest.raises(ValueError, match="'linear'"):
        Schedule("linear", 0.3)
    with pytest.raises(ValueError, match="max_steps or max_time"):
        Schedule("cosine", 0.3)
    assert math.isclose(Schedule("cosine", 1.0, max_steps=2).lr(1), 0.5)
