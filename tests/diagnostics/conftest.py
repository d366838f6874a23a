"""Shared runs for the diagnostics tests: hand-built draws and one short real RBM run."""

import arviz as az
import jax
import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.inference import sample


def _make_data(x, lp=None, **stats):
    """A DataTree shaped like ``sample``'s: ``posterior.x`` and ``sample_stats`` (lp, ...);
    the default lp is the log density of N(0, I) up to a constant, ``-|x|^2 / 2``."""
    x = np.asarray(x)
    lp = -(x.reshape(*x.shape[:2], -1) ** 2).sum(-1) / 2 if lp is None else lp
    return az.from_dict({"posterior": {"x": x}, "sample_stats": {"lp": lp, **stats}})


@pytest.fixture
def make_data():
    """``make_data(x, lp=None, **stats) -> DataTree`` built with ``arviz.from_dict``."""
    return _make_data


@pytest.fixture(scope="session")
def rbm_run():
    """4 block-Gibbs chains on a random 64-pixel (8x8) Bernoulli RBM: binary images."""
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 64, 16, scale=1.0)
    return sample(jax.random.key(1), rbm, num_chains=4, num_warmup=50, num_samples=200)
