"""The vectorization-friendly softplus: the same values and derivative as jax.nn.softplus."""

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl.ops import softplus


def test_softplus_matches_jax_in_value_and_derivative_including_zero():
    x = jnp.concatenate([jnp.linspace(-100, 100, 20_001), jnp.array([0.0, -0.0, jnp.inf, -jnp.inf])])
    np.testing.assert_array_equal(softplus(x), jax.nn.softplus(x))
    finite = x[jnp.isfinite(x)]
    grad = jax.vmap(jax.grad(softplus))(finite)
    np.testing.assert_allclose(grad, jax.nn.sigmoid(finite), rtol=1e-6, atol=0)
    assert float(jax.grad(softplus)(0.0)) == 0.5  # the kinks of max and abs meet here
    second = jax.vmap(jax.grad(jax.grad(softplus)))(finite)
    np.testing.assert_allclose(second, jax.vmap(jax.grad(jax.nn.sigmoid))(finite), rtol=1e-5, atol=1e-30)
    assert bool(jnp.isnan(softplus(jnp.nan)))
