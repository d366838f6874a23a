"""The kernels' ``init`` checks its position at the public boundary, as ``ep.sample`` checks
``init``: shape, values on the support and finite where concrete, shape only where traced."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep

SPIN = ep.potential(lambda x: -0.3 * jnp.sum(x), event_shape=(3,), support="spin")
RBM = ep.BernoulliRBM.init(jax.random.key(0), 3, 2, scale=0.5)


def _algorithms():
    return [("site_gibbs", ep.kernels.site_gibbs(SPIN)), ("gibbs_with_gradients", ep.kernels.gibbs_with_gradients(SPIN)),
            ("discrete_langevin", ep.kernels.discrete_langevin(SPIN, step_size=0.2)),
            ("block_gibbs", ep.kernels.block_gibbs(RBM))]


@pytest.mark.parametrize("name, algo", _algorithms())
def test_init_refuses_positions_ep_sample_refuses(name, algo):
    key = jax.random.key(0)
    support_problem = "must be spins" if name != "block_gibbs" else "must be binary"
    off_support = jnp.zeros(3) if name != "block_gibbs" else 0.5 * jnp.ones(3)
    for position, message in [(off_support, support_problem), (jnp.ones(4), r"has shape \(4,\); expected \(3,\)"),
                              (jnp.ones((2, 3)), r"has shape \(2, 3\)"), (jnp.full(3, jnp.nan), "contains 3 NaN")]:
        with pytest.raises(ValueError, match=f"{name}.init: position {message}"):
            algo.init(position, key)
    state = algo.init(jnp.ones(3), key)
    np.testing.assert_array_equal(state.position, np.ones(3))
    traced = jax.jit(jax.vmap(lambda x, k: algo.step(k, algo.init(x, k))[0].position))(
        jnp.ones((2, 3)), jax.random.split(key, 2))  # traced positions: shape checked only
    assert traced.shape == (2, 3)
