"""ebm_ppl.training.rows: the bucket of rows ep.fit pads its data to, the shuffle that keeps the
padding out of the minibatches, and the masked means of the metrics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_ppl.random import rekey
from ebm_ppl.training.rows import bucket_rows, masked_mean, pad_rows, permutation_rounds, random_rows, shuffled_rows

shuffled = jax.jit(shuffled_rows, static_argnums=2)


def test_round_counts_match_jax_formula():
    # JAX's _shuffle: ceil(3 log n / log(2^32 - 1)) rounds; the boundaries ep.fit's shuffle switches at
    assert [permutation_rounds(n) for n in (0, 1, 2, 1625, 1626, 2_642_245, 2_642_246)] == [0, 0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize("impl", ["philox2x32_64", "threefry2x32"])
@pytest.mark.parametrize("n", [1, 2, 3, 50, 1000, 1625, 1626, 1700])
def test_shuffled_rows_are_jax_permutation_bit_for_bit(impl, n):
    """The first n indices are jax.random.permutation(key, n) for any padding (the bucket's, or
    one that straddles the one-to-two-rounds boundary at 1625), the rest the padding rows."""
    for seed, size in ((0, bucket_rows(n)), (1, bucket_rows(n)), (2, n), (3, 2 * n + 1700)):
        key = rekey(jax.random.key(seed), impl)
        got = np.asarray(shuffled(key, jnp.int32(n), size))
        np.testing.assert_array_equal(got[:n], np.asarray(jax.random.permutation(key, n)), err_msg=f"{size=}")
        np.testing.assert_array_equal(np.sort(got[n:]), np.arange(n, size))


def test_one_program_serves_every_size_of_a_bucket():
    key = rekey(jax.random.key(0))
    f = jax.jit(lambda key, n: shuffled_rows(key, n, 1024))  # its own cache
    for n in (897, 950, 1024):
        np.testing.assert_array_equal(np.asarray(f(key, jnp.int32(n)))[:n], jax.random.permutation(key, n))
    assert f._cache_size() == 1


def test_pad_rows_appends_copies_of_the_first_row():
    x, y = jnp.arange(12.0).reshape(6, 2), jnp.arange(6)
    px, py = pad_rows((x, y), 8)
    np.testing.assert_array_equal(px, np.concatenate([x, x[:1], x[:1]]))
    np.testing.assert_array_equal(py, [0, 1, 2, 3, 4, 5, 0, 0])
    assert pad_rows((x, y), 6)[0] is x  # a full bucket is not copied
    assert bucket_rows(1000) == 1024 and bucket_rows(1025) == 1280 and bucket_rows(5) == 8


def test_masked_mean_ignores_the_padding():
    values = jnp.asarray([[1.0, 2.0], [3.0, 4.0], [np.nan, np.inf]])  # padding may hold anything
    np.testing.assert_allclose(masked_mean(values, jnp.int32(2)), 2.5)
    assert masked_mean(jnp.asarray([1, 2, 7]), jnp.int32(2)).dtype == jnp.result_type(float)
    np.testing.assert_allclose(masked_mean(jnp.asarray([1, 2, 7]), jnp.int32(2)), 1.5)
    np.testing.assert_allclose(masked_mean(values, jnp.int32(2), axis=0), [2.0, 3.0])  # per column


def test_random_rows_of_padded_data_are_those_of_the_data():
    """PCD's and PT-PCD's chains start at random_rows of the data: the same rows, bit for bit,
    from data padded to a bucket with the true count traced, as from the data alone."""
    x = jnp.arange(290.0)[:, None]
    padded = pad_rows((x,), bucket_rows(290))[0]
    key = jax.random.key(3)
    exact = random_rows(key, x, 50)
    np.testing.assert_array_equal(jax.jit(random_rows, static_argnums=2)(key, padded, 50, jnp.int32(290)), exact)
    assert float(exact.max()) < 290


def test_an_initial_state_from_num_rows_equals_the_one_from_the_data_alone():
    """The centered estimator's offsets from the first num_rows rows (traced) equal jnp.mean's
    over the data, bit for bit, when nothing is padded (masked_mean multiplies by the reciprocal,
    as jnp.mean does); PCD's chains too."""
    import ebm_ppl as ep

    x = (jax.random.uniform(jax.random.key(0), (37, 12)) < 0.4).astype(jnp.float32)
    model = ep.BernoulliRBM.init(jax.random.key(1), 12, 5, scale=0.3)
    estimator = ep.training.centered(ep.training.pcd(num_chains=10), rate=0.5)
    alone = estimator.init(jax.random.key(2), model, x)
    counted = jax.jit(lambda x, n: estimator.init(jax.random.key(2), model, x, num_rows=n))(x, jnp.int32(37))
    def values(a):
        return jax.random.key_data(a) if ep.random.is_key(a) else a

    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(counted)):
        np.testing.assert_array_equal(values(a), values(b))
