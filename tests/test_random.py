import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep


def test_rekey_is_deterministic_one_to_one_and_keeps_matching_keys():
    k = jax.random.key(11)
    p = ep.random.rekey(k)
    assert str(jax.random.key_impl(p)) == ep.random.DEFAULT_IMPL == "philox2x32_64"
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
    assert ep.random.is_shardable(ep.random.for_sharding(p)) and ep.random.for_sharding(k) is k
    # names and implementation objects both select a generator, JAX's or ebm_ppl's
    assert str(jax.random.key_impl(ep.random.rekey(p, "philox4x32"))) == "philox4x32"
    np.testing.assert_array_equal(jax.random.key_data(ep.random.rekey(k, ep.random.philox2x32_64)),
                                  jax.random.key_data(p))
    assert ep.random.rekey(p, ep.random.philox2x32_64) is p


def test_rekey_rejects_what_is_not_one_key():
    with pytest.raises(TypeError, match="PRNG key"):
        ep.random.rekey(3)
    with pytest.raises(TypeError, match="PRNG key"):
        ep.random.rekey(jnp.zeros(2, jnp.float32))
    with pytest.raises(ValueError, match="single PRNG key"):
        ep.random.rekey(jax.random.split(jax.random.key(0), 3))


def test_default_generator_draws_are_uniform():
    u = np.asarray(jax.random.uniform(ep.random.rekey(jax.random.key(0)), (200_000,)))
    # mean and variance of U(0, 1) within 5 standard errors
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    chi2 = ((counts - u.size / 20) ** 2 / (u.size / 20)).sum()
    assert chi2 < 43.8  # the 0.999 quantile of chi-square with 19 degrees of freedom


def test_philox2x32_round_function_reproduces_random123s_known_answers():
    """Random123's kat_vectors for philox2x32 with 10 rounds: (counter hi, lo, key) -> output."""
    from ebm_ppl.random import philox2x32_block

    cases = [((0x00000000, 0x00000000, 0x00000000), (0xFF1DAE59, 0x6CD10DF2)),
             ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0x2C3F628B, 0xAB4FD7AD)),
             ((0x243F6A88, 0x85A308D3, 0x13198A2E), (0xDD7CE038, 0xF62A4C12))]
    for (hi, lo, key), want in cases:
        got = philox2x32_block(np.uint32(key), jnp.uint32(hi), jnp.uint32(lo))
        assert tuple(int(w) for w in got) == want


def _key(*words):
    return jax.random.wrap_key_data(jnp.asarray(words, jnp.uint32), impl=ep.random.philox2x32_64)


def test_philox2x32_64_is_a_working_jax_generator():
    k = jax.random.key(5, impl=ep.random.philox2x32_64)
    assert jax.random.key_data(k).shape == (2,) and str(jax.random.key_impl(k)) == "philox2x32_64"
    u = jax.random.uniform(k, (3, 4))
    np.testing.assert_array_equal(u, jax.jit(lambda k: jax.random.uniform(k, (3, 4)))(k))  # jit = eager
    keys = jax.random.split(k, 5)
    batched = jax.vmap(lambda kk: jax.random.normal(kk, (7,)))(keys)
    np.testing.assert_array_equal(batched, np.stack([jax.random.normal(kk, (7,)) for kk in keys]))
    assert jax.random.key_data(jax.random.split(k, (2, 3))).shape == (2, 3, 2)
    assert jax.random.uniform(k, (2, 0, 3)).shape == (2, 0, 3)
    for dtype in (jnp.uint8, jnp.uint16, jnp.uint32):
        b = np.asarray(jax.random.bits(k, (4000,), dtype))
        assert b.dtype == dtype and b.max() > np.iinfo(dtype).max * 0.99  # the whole range is used
    with jax.enable_x64(True):
        wide = np.asarray(jax.random.bits(k, (1000,), jnp.uint64))
    assert wide.dtype == np.uint64 and (wide >> np.uint64(32)).max() > 2**31 and (wide & 0xFFFFFFFF).max() > 2**31
    # the children of a split, a fold-in and the parent's own draws are all different streams
    draws = [jax.random.bits(kk, (64,)) for kk in (k, *keys, jax.random.fold_in(k, 0), jax.random.fold_in(k, 1))]
    assert len({np.asarray(d).tobytes() for d in draws}) == len(draws)
    r = np.asarray(jax.random.randint(k, (20_000,), 0, 10))
    assert set(np.unique(r)) == set(range(10))


def test_draws_are_prefix_stable_where_prefix_stable_says_so():
    """The first n numbers of a larger draw are the draw of n: ebm_ppl's Philox at every width
    (64-bit numbers from words 2i and 2i + 1) and JAX's partitionable threefry; JAX's legacy
    threefry is not, and prefix_stable says so (ep.fit pads its rows only for stable keys)."""
    def stable(key, dtype):
        small, large = jax.random.bits(key, (5, 3), dtype), jax.random.bits(key, (13, 3), dtype)
        return np.array_equal(small, large[:5])

    k = jax.random.key(5, impl=ep.random.philox2x32_64)
    for dtype in (jnp.uint8, jnp.uint16, jnp.uint32):
        assert stable(k, dtype)
    with jax.enable_x64(True):
        assert stable(k, jnp.uint64) and stable(ep.random.for_sharding(k), jnp.uint64)
        u = jax.random.uniform(k, (40,), jnp.float64)
        np.testing.assert_array_equal(u[:7], jax.random.uniform(k, (7,), jnp.float64))
        assert 0.0 <= float(u.min()) and float(u.max()) < 1.0 and len(np.unique(np.asarray(u))) == 40
    assert ep.random.prefix_stable(k) and ep.random.prefix_stable(ep.random.for_sharding(k))
    threefry = jax.random.key(5)
    assert ep.random.prefix_stable(threefry) and stable(threefry, jnp.uint32)
    with jax.threefry_partitionable(False):
        assert not ep.random.prefix_stable(threefry) and not stable(threefry, jnp.uint32)
    assert not ep.random.prefix_stable(jax.random.key(5, impl="rbg"))  # not known to be


def test_philox2x32_64_keys_differing_in_one_word_give_independent_streams():
    """Word 0 keys Philox, word 1 is the counter's high word: flip either one and the draws are
    uncorrelated (|r| within 5 standard errors of 0), as are draws of neighbouring keys."""
    n = 100_000
    base = np.asarray(jax.random.uniform(_key(7, 9), (n,)))
    for other in (_key(8, 9), _key(7, 10), _key(7 ^ 0x80000000, 9), _key(9, 7)):
        u = np.asarray(jax.random.uniform(other, (n,)))
        assert abs(np.corrcoef(base, u)[0, 1]) < 5 / np.sqrt(n)
        assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    # and consecutive numbers of one stream are uncorrelated
    assert abs(np.corrcoef(base[:-1], base[1:])[0, 1]) < 5 / np.sqrt(n)
    # Bernoulli(p) frequencies from 1,000 keys split in one call (as the samplers draw them)
    keys = jax.random.split(_key(1, 2), 1000)
    hits = np.asarray(jax.vmap(lambda kk: jax.random.bernoulli(kk, 0.3, (100,)))(keys)).mean(axis=1)
    assert abs(hits.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / hits.size / 100)
    assert abs(hits.std() - np.sqrt(0.3 * 0.7 / 100)) < 0.1 * np.sqrt(0.3 * 0.7 / 100)


def test_the_sharded_twin_draws_the_same_numbers():
    """ep.random.for_sharding turns a philox2x32_64 key into the twin JAX can partition: every
    split, fold-in, seed and number is equal (its mulhi comes from a 64-bit product instead)."""
    from ebm_ppl.random import mulhi_wide

    p = ep.random.rekey(jax.random.key(5))
    t = ep.random.for_sharding(p)
    assert str(jax.random.key_impl(t)) == ep.random.PHILOX2X32_64_SPMD
    data = lambda k: np.asarray(jax.random.key_data(k))  # noqa: E731
    np.testing.assert_array_equal(data(t), data(p))
    np.testing.assert_array_equal(data(jax.random.split(t, 7)), data(jax.random.split(p, 7)))
    np.testing.assert_array_equal(data(jax.random.fold_in(t, 123)), data(jax.random.fold_in(p, 123)))
    np.testing.assert_array_equal(data(jax.random.key(2**31 - 1, impl=ep.random.philox2x32_64_spmd)),
                                  data(jax.random.key(2**31 - 1, impl=ep.random.philox2x32_64)))
    for dtype in (jnp.uint8, jnp.uint16, jnp.uint32):
        np.testing.assert_array_equal(jax.random.bits(t, (1000,), dtype), jax.random.bits(p, (1000,), dtype))
    np.testing.assert_array_equal(jax.jit(jax.random.normal, static_argnums=1)(t, (50, 3)),
                                  jax.random.normal(p, (50, 3)))
    # the 64-bit product's high word is lax.mulhi's on random words and at the edges
    x = jax.random.bits(jax.random.key(1), (10_000,), jnp.uint32)
    y = jax.random.bits(jax.random.key(2), (10_000,), jnp.uint32)
    np.testing.assert_array_equal(jax.jit(mulhi_wide)(x, y), jax.lax.mulhi(x, y))
    edge = jnp.array([0, 1, 0xFFFF, 0x10000, 0x80000000, 0xFFFFFFFF], jnp.uint32)
    a, b = jnp.meshgrid(edge, edge)
    np.testing.assert_array_equal(mulhi_wide(a, b), jax.lax.mulhi(a, b))
    # the twin is a key of its own, and 64-bit types do not leak out of it
    assert jax.random.bits(t, (3,)).dtype == jnp.uint32 and not jax.config.jax_enable_x64


def test_an_unknown_prng_impl_names_ebm_ppls_own_generators_too():
    """JAX's message lists its own implementations only, not the library's default."""
    with pytest.raises(ValueError, match=r"unrecognized PRNG implementation \"philox\".*Or ebm_ppl's own "
                                         r"'philox2x32_64' \(the default\)"):
        ep.random.rekey(jax.random.key(0), "philox")
