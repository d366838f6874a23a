"""A NumPyro model's joint density as a potential: its AIS log Z is the model's log evidence."""

from __future__ import annotations

import math

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from jax.scipy.special import gammaln

import ebm_ppl as ep

Y = np.array([3.0, 5.0, 2.0, 4.0, 6.0])
A, B = 2.0, 0.5  # lambda ~ Gamma(A, B) (rate B), y_i ~ Poisson(lambda)


def _poisson_gamma(y):
    lam = numpyro.sample("lam", dist.Gamma(A, B))
    numpyro.sample("y", dist.Poisson(lam), obs=y)


def _normal_normal(y):
    mu = numpyro.sample("mu", dist.Normal(1.0, 2.0))
    numpyro.sample("y", dist.Normal(mu, 0.5), obs=y)


def _log_evidence_poisson_gamma(y):
    """p(y) = B^A / Gamma(A) Gamma(A + S) / (B + n)^(A + S) / prod y_i!, S = sum y (conjugacy)."""
    s, n = y.sum(), len(y)
    return (A * math.log(B) - float(gammaln(A)) + float(gammaln(A + s)) - (A + s) * math.log(B + n)
            - float(gammaln(y + 1).sum()))


def _log_evidence_normal_normal(y):
    """y ~ N(1, 0.25 I + 4 11^T)."""
    cov = 0.25 * np.eye(len(y)) + 4.0 * np.ones((len(y), len(y)))
    diff = y - 1.0
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (diff @ np.linalg.solve(cov, diff) + logdet + len(y) * math.log(2 * math.pi))


@pytest.mark.slow
@pytest.mark.parametrize("model, exact", [(_poisson_gamma, _log_evidence_poisson_gamma),
                                          (_normal_normal, _log_evidence_normal_normal)])
def test_ais_on_a_model_potential_gives_its_log_evidence(model, exact):
    """The Poisson-Gamma model's rate is positive, so its unconstrained site carries a Jacobian
    (NumPyro's potential_energy includes it): its evidence checks that it is counted once. The
    AIS base is a Gaussian fitted to NUTS draws of the posterior (``data=``): from N(0, 1) the
    narrow normal-normal posterior (sd 0.22 at 4) needs far more temperatures."""
    potential = ep.numpyro.potential_from_model(model, Y)
    draws = ep.sample(jax.random.key(1), potential, "nuts", num_chains=2, num_samples=500).posterior["x"].values
    est = ep.ais(jax.random.key(0), potential, num_chains=300, num_temperatures=1000,
                 data=draws.reshape(-1, *potential.event_shape))
    assert abs(est.log_z - exact(Y)) < max(0.05, 3 * est.stderr), (est, exact(Y))
    assert abs(est.log_z - exact(Y)) < 0.05


def test_model_potential_sites_and_refusals():
    potential = ep.numpyro.potential_from_model(_poisson_gamma, Y)
    assert potential.event_shape == (1,) and potential.support == ep.Support.REAL
    idata = ep.sample(jax.random.key(1), potential, "nuts", num_chains=2, num_warmup=300, num_samples=300)
    lam = potential.sites(idata.posterior["x"].values)["lam"]
    assert lam.shape == (2, 300) and np.all(lam > 0)
    assert abs(float(lam.mean()) - (A + Y.sum()) / (B + len(Y))) < 0.3  # posterior mean 4, sd 0.87

    def discrete():
        numpyro.sample("k", dist.Bernoulli(0.5))

    with pytest.raises(ValueError, match="discrete latent site"):
        ep.numpyro.potential_from_model(discrete)
    with pytest.raises(TypeError, match="cannot be saved"):
        ep.save("/tmp/never.ebm", potential)
