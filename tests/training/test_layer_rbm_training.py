"""CD/PCD on RBMs over the new layers: the estimator's gradient against the exact gradient of the
mean negative log-likelihood, computed by enumeration."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.potentials.layers import Binary, DReLU, Potts

NUM_CHAINS = 20_000


def _exact_gradient(rbm, data):
    """grad [mean F(data) + log Z]: the gradient of the mean negative log-likelihood (log Z by
    enumeration is differentiable)."""
    def nll(model):
        return jnp.mean(jax.vmap(model.unbatched_energy)(data)) + ep.log_partition(model)

    return eqx.filter_grad(nll)(rbm)


@pytest.mark.slow
@pytest.mark.parametrize("make", [
    lambda k: ep.RBM.init(k, Potts(jnp.zeros((4, 3))), Binary(jnp.zeros(3)), scale=0.8),
    lambda k: ep.RBM.init(k, Binary(jnp.full(5, 0.2)), DReLU(jnp.full(3, 0.5), jnp.full(3, -0.3), jnp.full(3, 1.5),
                                                               jnp.ones(3)), scale=0.8),
])
def test_pcd_gradient_equals_the_exact_gradient_within_monte_carlo_error(make):
    """With persistent chains at exact model samples, one PCD update's gradient equals the exact
    gradient of the mean NLL within 5 Monte Carlo standard errors (the spread of grad F over the
    chains divided by sqrt(20,000)) in every parameter."""
    rbm = make(jax.random.key(0))
    data = ep.partition.exact_samples(jax.random.key(1), rbm, 50)  # any data will do
    chains = ep.partition.exact_samples(jax.random.key(2), rbm, NUM_CHAINS)
    estimator = ep.training.pcd(k=1, num_chains=NUM_CHAINS)
    state = estimator.init(jax.random.key(3), rbm, data)._replace(chains=chains)
    grads, _, _ = estimator.update(rbm, (data,), state)
    exact = _exact_gradient(rbm, data)
    # the chains after PCD's sweep are again exact samples, so their spread gives the standard error
    per_chain = eqx.filter_vmap(eqx.filter_grad(lambda m, x: m.unbatched_energy(x)), in_axes=(None, 0))(rbm, chains)
    flat = lambda tree: np.concatenate([np.ravel(a) for a in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))])  # noqa: E731
    se = flat(jax.tree.map(lambda g: jnp.std(g, axis=0) / np.sqrt(NUM_CHAINS), per_chain))
    difference = np.abs(flat(grads) - flat(exact))
    assert np.all(difference <= 5 * se + 1e-5), (difference / (se + 1e-12)).max()
