"""Block and site Gibbs: empirical state frequencies against exact enumerated probabilities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.kernels import block_gibbs, site_gibbs
from ebm_ppl.potentials.enumeration import all_binary_states


def _chain_states(algo, x0, num_chains, num_steps, burn_in, seed):
    states = jax.vmap(algo.init)(x0, jax.random.split(jax.random.key(seed + 1), num_chains))

    @jax.jit
    def run(states):
        def body(states, key):
            states, info = jax.vmap(algo.step)(jax.random.split(key, num_chains), states)
            return states, states.position

        return jax.lax.scan(body, states, jax.random.split(jax.random.key(seed), num_steps))[1]

    return np.asarray(run(states))[burn_in:]


def _tv_and_bound(xs, potential):
    """Total variation between the empirical and exact laws, and a bound from the sample size.

    For N independent draws E|p_hat_s - p_s| <= sqrt(p_s (1 - p_s) / N), so
    E[TV] <= 1/2 sum_s sqrt(p_s (1 - p_s) / N). Draws are kept every 10th step over many chains,
    so they are nearly independent; we allow 2x that expectation (a z-score of many sigma for a
    sum over ~1000 states)."""
    d = xs.shape[-1]
    codes = (xs.reshape(-1, d) @ (2 ** np.arange(d))).astype(int)
    empirical = np.bincount(codes, minlength=2**d) / codes.size
    with jax.enable_x64(True):
        states = all_binary_states(d)
        logp = -potential.energy(states) - potential.log_partition()
        exact = np.exp(np.asarray(logp))
    tv = 0.5 * np.abs(empirical - exact).sum()
    bound = 2 * 0.5 * np.sum(np.sqrt(exact * (1 - exact) / codes.size))
    return tv, bound


def _rbm(scale=1.0, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return ep.BernoulliRBM(scale * jax.random.normal(k1, (10, 8)), 0.3 * jax.random.normal(k2, (10,)),
                           0.3 * jax.random.normal(k3, (8,)))


@pytest.mark.slow
def test_block_gibbs_on_a_10x8_rbm_matches_enumeration():
    rbm = _rbm()
    x0 = jax.random.bernoulli(jax.random.key(5), 0.5, (200, 10)).astype(jnp.float32)
    xs = _chain_states(block_gibbs(rbm), x0, 200, 2000, 200, seed=0)[::10]
    tv, bound = _tv_and_bound(xs, rbm)
    assert tv < bound, (tv, bound)
    # the test can fail: the same draws scored against a different RBM are far off
    tv_wrong, _ = _tv_and_bound(xs, _rbm(seed=1))
    assert tv_wrong > 3 * bound


@pytest.mark.slow
def test_site_gibbs_on_a_10_unit_boltzmann_machine_matches_enumeration():
    bm = ep.BoltzmannMachine.init(jax.random.key(3), 10, scale=1.0)
    bm = ep.BoltzmannMachine(bm.W, 0.2 * jax.random.normal(jax.random.key(4), (10,)))
    x0 = jax.random.bernoulli(jax.random.key(5), 0.5, (200, 10)).astype(jnp.float32)
    xs = _chain_states(site_gibbs(bm), x0, 200, 2000, 200, seed=1)[::10]
    tv, bound = _tv_and_bound(xs, bm)
    assert tv < bound, (tv, bound)


def test_site_gibbs_generic_route_equals_the_boltzmann_shortcut():
    """A binary potential without site_logit uses energy differences; both give identical chains."""
    bm = ep.BoltzmannMachine.init(jax.random.key(3), 6, scale=1.0)
    rbm_like = _EnergyOnly(bm)
    x0 = jnp.zeros((3, 6))
    a = _chain_states(site_gibbs(bm), x0, 3, 50, 0, seed=2)
    b = _chain_states(site_gibbs(rbm_like), x0, 3, 50, 0, seed=2)
    np.testing.assert_array_equal(a, b)


class _EnergyOnly(ep.Potential):
    name = "energy_only_test"
    support = ep.Support.BINARY
    inner: ep.BoltzmannMachine

    @property
    def event_shape(self):
        return self.inner.event_shape

    def unbatched_energy(self, x):
        return self.inner.unbatched_energy(x)


def test_block_gibbs_state_info_and_errors():
    rbm = _rbm()
    algo = block_gibbs(rbm)
    state = algo.init(jnp.ones(10), jax.random.key(0))
    assert state.latent.shape == (8,)
    state, info = algo.step(jax.random.key(1), state)
    assert state.position.shape == (10,) and set(np.unique(state.position)) <= {0.0, 1.0}
    np.testing.assert_allclose(info.hidden_mean, rbm.hidden_probs(jnp.ones(10)).mean(), rtol=1e-6)
    np.testing.assert_allclose(info.energy, rbm.energy(jnp.ones(10)), rtol=1e-6)  # of the start
    with pytest.raises(ValueError, match="block conditionals"):
        block_gibbs(ep.Gaussian.standard(2))
    with pytest.raises(ValueError, match="binary"):
        site_gibbs(ep.Gaussian.standard(2))


@pytest.mark.parametrize("family", ["gaussian_bernoulli_rbm", "subspace_rbm"])
def test_block_gibbs_runs_on_every_family_with_conditionals(family):
    key = jax.random.key(0)
    model = {"gaussian_bernoulli_rbm": lambda: ep.GaussianBernoulliRBM.init(key, 5, 3, scale=0.5),
             "subspace_rbm": lambda: ep.SubspaceRBM.init(key, 5, 3, 2, scale=0.5)}[family]()
    algo = block_gibbs(model)
    x0 = jnp.zeros(5)
    state = algo.init(x0, jax.random.key(1))
    state, info = jax.jit(algo.step)(jax.random.key(2), state)
    assert state.position.shape == (5,) and np.isfinite(float(info.hidden_mean))
    np.testing.assert_allclose(info.energy, model.energy(x0), rtol=1e-6)  # the start's, from its logits
