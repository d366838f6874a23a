"""Gaussian energy: density, analytic log Z and exact samples against scipy."""

import jax
import numpy as np
import pytest
from scipy import stats

import ebm_ppl as ep


def _cov(dim, seed=0):
    A = np.random.default_rng(seed).normal(size=(dim, dim))
    return A @ A.T / dim + 0.5 * np.eye(dim)


@pytest.mark.parametrize("form", ["cov", "scale_tril", "scale_diag"])
def test_normalized_density_matches_scipy(form):
    with jax.enable_x64(True):
        dim = 4
        mean = np.arange(dim, dtype=float)
        cov = _cov(dim) if form != "scale_diag" else np.diag(np.arange(1.0, dim + 1) ** 2)
        arg = {"cov": cov, "scale_tril": np.linalg.cholesky(cov), "scale_diag": np.sqrt(np.diag(cov))}[form]
        g = ep.Gaussian(mean, **{form: arg}) if form != "cov" else ep.Gaussian(mean, cov)
        x = np.random.default_rng(1).normal(size=(7, dim))
        expected = stats.multivariate_normal(mean, cov).logpdf(x)
        np.testing.assert_allclose(g.logdensity(x) - ep.log_partition(g), expected, rtol=1e-10)
        np.testing.assert_allclose(g.covariance, cov, rtol=1e-10)


def test_samples_have_the_right_moments():
    cov = _cov(3)
    g = ep.Gaussian(np.ones(3), cov)
    n = 40_000
    x = np.asarray(g.sample(jax.random.key(0), (n,)))
    # mean within 5 standard errors sqrt(diag(cov)/n)
    assert np.all(np.abs(x.mean(0) - 1.0) < 5 * np.sqrt(np.diag(cov) / n))
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.05)


def test_standard_is_unit_gaussian():
    g = ep.Gaussian.standard(5)
    np.testing.assert_allclose(ep.log_partition(g), 2.5 * np.log(2 * np.pi), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mean=np.zeros(2), cov=np.array([[1.0, 2.0], [2.0, 1.0]])), "positive definite"),
        (dict(mean=np.zeros(2), cov=np.array([[1.0, 0.5], [0.0, 1.0]])), "symmetric"),
        (dict(mean=np.zeros(2), scale_diag=np.array([1.0, 0.0])), "positive"),
        (dict(mean=np.zeros(2), scale_diag=np.array([1.0, -1.0])), "positive"),
        (dict(mean=np.zeros(2), scale_tril=np.array([[1.0, 1.0], [0.0, 1.0]])), "lower triangular"),
        (dict(mean=np.zeros(2), scale_diag=np.ones(3)), "shape"),
        (dict(mean=np.array([0.0, np.inf])), "NaN or inf"),
        (dict(mean=np.zeros(2), cov=np.eye(2), scale_diag=np.ones(2)), "at most one"),
    ],
)
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ep.Gaussian(**kwargs)


def test_bad_input_is_refused():
    g = ep.Gaussian.standard(3)
    with pytest.raises(ValueError, match="shape"):
        g.energy(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        g.energy(np.array([0.0, np.nan, 1.0]))
