"""Exact samples of every RBM over layers (enumerating the smaller discrete layer), and of
binary potentials without their own sampler, against exact marginals by enumeration."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.partition import exact_samples
from ebm_ppl.potentials.enumeration import all_binary_states

NUM = 20_000


def _exact_distribution(potential, d):
    states = all_binary_states(d, jnp.float32)
    log_p = -potential.energy(states)
    return np.asarray(states), np.asarray(jax.nn.softmax(log_p))


def _counts(draws, d):
    index = np.asarray(draws, np.int64) @ (1 << np.arange(d))
    return np.bincount(index, minlength=2**d) / draws.shape[0]


@pytest.mark.parametrize("make", [
    lambda k: ep.SubspaceRBM.init(k, 5, 2, 2, scale=1.0),          # hidden route, (1 + 2^2)^2 = 25 < 2^5
    lambda k: ep.BernoulliRBM.init(k, 4, 6, scale=1.0),            # visible route, 2^4 < 2^6
    lambda k: ep.BoltzmannMachine.init(k, 5, scale=1.0),
])
def test_binary_exact_samples_match_enumeration(make):
    """Each state's frequency in 20,000 draws is within 5 binomial standard errors of its exact
    probability (exp(-F(x)) / Z over all 2^D states)."""
    model = make(jax.random.key(3))
    d = model.event_shape[0]
    draws = exact_samples(jax.random.key(4), model, NUM)
    assert draws.shape == (NUM, d)
    _, p = _exact_distribution(model, d)
    se = np.sqrt(p * (1 - p) / NUM) + 1e-4
    assert np.all(np.abs(_counts(draws, d) - p) < 5 * se)


def test_gaussian_bernoulli_exact_samples_match_the_exact_mean_and_variance():
    """E[x] = sum_h p(h) (b + sigma W h) and Var[x_i] = sigma_i^2 + Var_h[(b + sigma W h)_i], with
    p(h) by enumerating the 2^M hidden states; the sample mean is within 5 standard errors."""
    rbm = ep.GaussianBernoulliRBM(np.array([[1.0, -0.5], [0.3, 0.8], [-1.2, 0.4]]), np.array([0.1, -0.2, 0.5]),
                                  np.array([0.2, -0.4]), np.array([0.7, 1.0, 1.3]))
    h = all_binary_states(2, jnp.float32)
    log_ph = h @ rbm.c + jnp.sum(rbm.b * (h @ rbm.W.T) / rbm.sigma + 0.5 * (h @ rbm.W.T) ** 2, axis=-1)
    ph = np.asarray(jax.nn.softmax(log_ph))
    means = np.asarray(rbm.b + rbm.sigma * (h @ rbm.W.T))
    mean = ph @ means
    var = np.asarray(rbm.sigma) ** 2 + ph @ (means - mean) ** 2
    draws = np.asarray(exact_samples(jax.random.key(5), rbm, NUM))
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * np.sqrt(var / NUM))
    assert np.all(np.abs(draws.var(0) / var - 1) < 5 * np.sqrt(2 / NUM))


def test_a_binary_potential_without_a_sampler_is_enumerated():
    """A plain binary subclass (no exact_samples of its own) is sampled by enumerating its states."""

    class Chain(ep.Potential):
        name = "test_chain_for_exact_samples"
        support = ep.Support.BINARY

        @property
        def event_shape(self):
            return (4,)

        def unbatched_energy(self, x):
            return -1.5 * jnp.sum(x[1:] * x[:-1]) + 0.5 * jnp.sum(x)

    model = Chain()
    draws = exact_samples(jax.random.key(6), model, NUM)
    _, p = _exact_distribution(model, 4)
    se = np.sqrt(p * (1 - p) / NUM) + 1e-4
    assert np.all(np.abs(_counts(draws, 4) - p) < 5 * se)


def test_exact_samples_memory_does_not_grow_with_the_number_of_draws():
    """Issue 15: one categorical over the 2^20 hidden states of a 64x20 RBM held num x 2^20
    numbers (7 GB for 400 draws). Two-stage draws in batches keep it bounded: 4,000 draws may
    grow the process by at most 300 MB (measured: about 25 MB)."""
    script = """
import resource, jax, ebm_ppl as ep
rbm = ep.BernoulliRBM.init(jax.random.key(0), 64, 20, scale=0.5)
ep.partition.exact_samples(jax.random.key(1), rbm, 10).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
x = ep.partition.exact_samples(jax.random.key(1), rbm, 4000).block_until_ready()
assert x.shape == (4000, 64)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) < 300


@pytest.mark.parametrize("num", [-1, 2.5, "3"])
def test_exact_samples_refuse_a_bad_number_of_draws(num):
    with pytest.raises(ValueError, match="num must be a non-negative integer"):
        exact_samples(jax.random.key(0), ep.BernoulliRBM.init(jax.random.key(0), 4, 2), num)
