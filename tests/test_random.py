import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep


def test_rekey_is_deterministic_one_to_one_and_keeps_matching_keys():
    k = jax.random.key(11)
    p = ep.random.rekey(k)
    assert str(jax.random.key_impl(p)) == ep.random.DEFAULT_IMPL == "philox4x32"
    np.testing.assert_array_equal(jax.random.key_data(p), jax.random.key_data(k))  # same 64 bits
    assert ep.random.rekey(p) is p
    assert ep.random.rekey(k, None) is k
    np.testing.assert_array_equal(jax.random.key_data(jax.jit(ep.random.rekey)(k)), jax.random.key_data(p))
    # other key shapes are re-seeded from the key's bits, deterministically
    r = jax.random.key(11, impl="rbg")
    a, b = ep.random.rekey(r), ep.random.rekey(r)
    assert jax.random.key_data(a).shape == (2,)
    np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))
    # legacy raw keys are accepted
    raw = jax.random.PRNGKey(11)
    np.testing.assert_array_equal(jax.random.key_data(ep.random.rekey(raw)), jax.random.key_data(p))
    assert not ep.random.is_shardable(p) and ep.random.is_shardable(k)


def test_rekey_rejects_what_is_not_one_key():
    with pytest.raises(TypeError, match="PRNG key"):
        ep.random.rekey(3)
    with pytest.raises(TypeError, match="PRNG key"):
        ep.random.rekey(jnp.zeros(2, jnp.float32))
    with pytest.raises(ValueError, match="single PRNG key"):
        ep.random.rekey(jax.random.split(jax.random.key(0), 3))


def test_philox_draws_are_uniform():
    u = np.asarray(jax.random.uniform(ep.random.rekey(jax.random.key(0)), (200_000,)))
    # mean and variance of U(0, 1) within 5 standard errors
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    chi2 = ((counts - u.size / 20) ** 2 / (u.size / 20)).sum()
    assert chi2 < 43.8  # the 0.999 quantile of chi-square with 19 degrees of freedom
