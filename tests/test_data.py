"""ebm_ppl.data.digits: the fixed split, the scalings, train-only noise and argument checks."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

import ebm_ppl as ep
from ebm_ppl import data
from ebm_ppl.data import Digits, digits


@pytest.fixture(scope="module")
def raw():
    bunch = load_digits()
    return bunch.data, bunch.target


def test_sizes_shapes_and_dtypes():
    d = digits()
    assert isinstance(d, Digits)
    assert [len(d.x_train), len(d.x_val), len(d.x_test)] == [1000, 350, 447]
    for x, y in [(d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)]:
        assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
        assert x.shape == (len(y), 64)
        assert x.dtype == np.float32
        assert y.dtype == np.int32
    assert d.image_shape == (8, 8)
    assert d.n_features == 64
    assert d.x_train[0].reshape(d.image_shape).shape == (8, 8)


def test_split_is_by_index_disjoint_and_covering(raw):
    raw_x, raw_y = raw
    d = digits(scale="unit", dtype=np.float64)
    # The split is by index in scikit-learn's order: concatenating it gives the data set back.
    x_all = np.concatenate([d.x_train, d.x_val, d.x_test])
    y_all = np.concatenate([d.y_train, d.y_val, d.y_test])
    np.testing.assert_array_equal(x_all, raw_x / 16.0)
    np.testing.assert_array_equal(y_all, raw_y)
    # The index ranges are disjoint and cover 0 .. 1796 exactly once.
    covered = np.concatenate([np.arange(1797)[s] for s in data.SPLIT.values()])
    np.testing.assert_array_equal(np.sort(covered), np.arange(1797))
    assert len(covered) == len(set(covered.tolist()))
    # Every split holds all ten classes (so a classifier is evaluated on each).
    for y in (d.y_train, d.y_val, d.y_test):
        assert set(np.unique(y).tolist()) == set(range(10))


def test_binarize_threshold(raw):
    raw_x, _ = raw
    d = digits(binarize=True)
    x_all = np.concatenate([d.x_train, d.x_val, d.x_test])
    assert set(np.unique(x_all).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(x_all, (raw_x >= 8).astype(np.float32))


def test_scalings_ranges(raw):
    raw_x, _ = raw
    signed = digits(scale="signed")
    unit = digits(scale="unit")
    for d, lo, hi in [(signed, -1.0, 1.0), (unit, 0.0, 1.0)]:
        x_all = np.concatenate([d.x_train, d.x_val, d.x_test])
        assert x_all.min() == lo and x_all.max() == hi
    # Exact affine maps of the raw 0..16 values (all representable exactly in float32).
    np.testing.assert_array_equal(signed.x_train, (2 * raw_x[:1000] / 16 - 1).astype(np.float32))
    np.testing.assert_array_equal(unit.x_test, (raw_x[1350:] / 16).astype(np.float32))
    assert digits().x_train.min() == -1.0  # default is "signed"


def test_dtype_option():
    assert digits(dtype=np.float64).x_val.dtype == np.float64
    assert digits(binarize=True, dtype="float16").x_test.dtype == np.float16


def test_deterministic_and_fresh_copies():
    a, b = digits(), digits()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    a.x_train[:] = 123.0  # callers may modify their copy ...
    assert digits().x_train.max() == 1.0  # ... without touching the cached data


def test_noise_only_on_train_and_deterministic():
    clean = digits()
    noisy = digits(train_noise=0.1, key=jax.random.key(0))
    again = digits(train_noise=0.1, key=jax.random.key(0))
    other = digits(train_noise=0.1, key=jax.random.key(1))
    np.testing.assert_array_equal(noisy.x_train, again.x_train)
    assert not np.array_equal(noisy.x_train, other.x_train)
    np.testing.assert_array_equal(noisy.x_val, clean.x_val)
    np.testing.assert_array_equal(noisy.x_test, clean.x_test)
    for name in ("y_train", "y_val", "y_test"):
        np.testing.assert_array_equal(getattr(noisy, name), getattr(clean, name))
    delta = noisy.x_train - clean.x_train
    assert noisy.x_train.dtype == np.float32
    # 64,000 draws of N(0, 0.1^2): the sample std is within 2% of 0.1 (its own standard error
    # is 0.1 / sqrt(2 * 64000) ~ 0.28%, so 2% is ~7 standard errors) and the mean is ~0.
    assert abs(delta.std() - 0.1) < 0.002
    assert abs(delta.mean()) < 0.002
    # An old-style uint32 key works too.
    assert digits(train_noise=0.1, key=jax.random.PRNGKey(0)).x_train.shape == (1000, 64)


def test_zero_noise_ignores_key():
    np.testing.assert_array_equal(digits(key=jax.random.key(3)).x_train, digits().x_train)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scale": "minmax"}, "scale must be one of"),
        ({"scale": None}, "scale must be one of"),
        ({"binarize": "yes"}, "binarize must be True or False"),
        ({"train_noise": -0.1, "key": jax.random.key(0)}, "finite number >= 0"),
        ({"train_noise": float("nan"), "key": jax.random.key(0)}, "finite number >= 0"),
        ({"train_noise": "a lot", "key": jax.random.key(0)}, "must be a number"),
        ({"train_noise": 0.1}, "needs a PRNG key"),
        ({"train_noise": 0.1, "key": 0}, "key must be a JAX PRNG key"),
        ({"train_noise": 0.1, "binarize": True, "key": jax.random.key(0)}, "binarize=True"),
        ({"dtype": np.int32}, "floating dtype"),
        ({"dtype": "not-a-dtype"}, "dtype"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        digits(**kwargs)


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        digits(True)  # type: ignore[misc]


def test_digits_in_gray_levels_for_potts_units():
    """levels=q cuts the 0..16 pixel values into q equal bins: states 0..q-1, valid data for an
    ep.categorical(q) support; levels=17 keeps every value."""
    d = ep.data.digits(levels=4)
    assert set(np.unique(d.x_train)) == {0.0, 1.0, 2.0, 3.0}
    assert ep.potentials.supports.categorical(4).problem(d.x_test) is None
    raw = ep.data.digits(scale="unit").x_train * 16
    np.testing.assert_array_equal(ep.data.digits(levels=17).x_train, np.round(raw))
    for bad in (1, 18, 2.5, True):
        with pytest.raises(ValueError, match="levels"):
            ep.data.digits(levels=bad)
    with pytest.raises(ValueError, match="not both"):
        ep.data.digits(levels=4, binarize=True)
