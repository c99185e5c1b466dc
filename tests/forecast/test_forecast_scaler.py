"""Tests for rnnkit.forecast.scaler: per-column scaling fitted on the training rows."""

import json

import numpy as np
import pytest

from rnnkit.forecast.scaler import SCALERS, Scaler

X = np.array([[1.0, 10.0, 5.0], [2.0, 20.0, 5.0], [3.0, 60.0, 5.0]])


def test_standard_scaler_uses_the_population_std():
    scaler = Scaler().fit(X)
    np.testing.assert_allclose(scaler.shift, [2, 30, 5])
    np.testing.assert_allclose(scaler.scale, [np.sqrt(2 / 3), np.sqrt(1400 / 3), 1])
    scaled = scaler.transform(X)
    np.testing.assert_allclose(scaled[:, 0], [-np.sqrt(1.5), 0, np.sqrt(1.5)])
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled[:, :2].std(axis=0), 1)
    np.testing.assert_array_equal(scaled[:, 2], 0)  # a constant column: scale 1


def test_minmax_and_none_scalers():
    minmax = Scaler("minmax").fit(X)
    np.testing.assert_allclose(minmax.transform(X), [[0, 0, 0], [0.5, 0.2, 0], [1, 1, 0]])
    none = Scaler("none").fit(X)
    np.testing.assert_array_equal(none.transform(X), X)
    assert SCALERS == ("standard", "minmax", "none")
    with pytest.raises(ValueError, match="unknown scaler 'robust'; give one of standard, minmax"):
        Scaler("robust")


def test_a_constant_column_of_inexact_floats_gets_scale_1():
    x = np.full((7, 1), 0.1)
    scaler = Scaler().fit(x)
    assert scaler.scale[0] == 1.0
    np.testing.assert_allclose(scaler.transform(x), 0, atol=1e-15)


@pytest.mark.parametrize("kind", SCALERS)
def test_scaler_round_trips_any_shape_and_keeps_float32(kind):
    scaler = Scaler(kind).fit(X)
    batch = np.random.default_rng(0).normal(size=(4, 5, 3)) * 20
    np.testing.assert_allclose(scaler.inverse(scaler.transform(batch)), batch)
    assert scaler.transform(batch.astype(np.float32)).dtype == np.float32
    assert scaler.inverse(np.zeros((2, 3), np.float32)).dtype == np.float32


def test_scaler_dict_round_trips_through_json():
    scaler = Scaler("minmax").fit(X)
    again = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert again.kind == "minmax"
    np.testing.assert_array_equal(again.transform(X), scaler.transform(X))
    with pytest.raises(ValueError, match="needs the keys"):
        Scaler.from_dict({"kind": "standard"})
    with pytest.raises(ValueError, match="positive finite scales"):
        Scaler.from_dict({"kind": "standard", "shift": [0.0], "scale": [0.0]})


def test_scaler_fitted_on_the_training_rows_ignores_the_test_rows():
    series = np.arange(20, dtype=np.float64).reshape(10, 2)
    other = series.copy()
    other[7:] *= 1000  # the test rows change
    a, b = Scaler().fit(series[:7]), Scaler().fit(other[:7])
    np.testing.assert_array_equal(a.to_dict()["shift"], b.to_dict()["shift"])
    np.testing.assert_array_equal(a.to_dict()["scale"], b.to_dict()["scale"])
    np.testing.assert_allclose(a.shift, series[:7].mean(axis=0))
    assert not np.allclose(a.shift, series.mean(axis=0))


def test_scaler_errors():
    with pytest.raises(ValueError, match="transform before fit"):
        Scaler().transform(X)
    with pytest.raises(ValueError, match="not fitted"):
        Scaler().to_dict()
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        Scaler().fit(X).transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        Scaler().fit(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        Scaler().fit(np.array([[1.0], [np.nan]]))
