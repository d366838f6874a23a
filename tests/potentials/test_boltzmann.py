"""BoltzmannMachine: energy, conditionals and log Z against naive enumeration."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep


def _bm(dim=8, seed=0, scale=1.0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    upper = jnp.triu(scale * jax.random.normal(k1, (dim, dim)), 1)
    return ep.BoltzmannMachine(upper + upper.T, 0.5 * jax.random.normal(k2, (dim,)))


def test_energy_matches_pairwise_sum():
    bm = _bm(5)
    W, b = np.asarray(bm.W), np.asarray(bm.b)
    for state in itertools.product([0.0, 1.0], repeat=5):
        x = np.array(state)
        naive = -sum(W[i, j] * x[i] * x[j] for i in range(5) for j in range(i + 1, 5)) - b @ x
        np.testing.assert_allclose(bm.energy(x), naive, rtol=1e-5, atol=1e-5)


def test_log_z_matches_naive_enumeration():
    with jax.enable_x64(True):
        bm = _bm(10, scale=0.8)
        states = np.array(list(itertools.product([0.0, 1.0], repeat=10)))
        naive = np.logaddexp.reduce(-np.asarray(bm.energy(states)))
        np.testing.assert_allclose(bm.log_partition(), naive, rtol=0, atol=1e-10)
        np.testing.assert_allclose(bm.log_partition(chunk_size=7), naive, rtol=0, atol=1e-10)


def test_site_conditionals_are_ratios_of_joint():
    with jax.enable_x64(True):
        bm = _bm(6)
        x = jnp.asarray([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
        for i in range(6):
            on, off = x.at[i].set(1.0), x.at[i].set(0.0)
            p_on = jax.nn.sigmoid(bm.energy(off) - bm.energy(on))
            np.testing.assert_allclose(jax.nn.sigmoid(bm.site_logits(x)[i]), p_on, atol=1e-12)


def test_2_to_the_24_states_enumerate_in_bounded_memory():
    bm = ep.BoltzmannMachine.init(jax.random.key(1), 24, scale=0.1)
    log_z = float(bm.log_partition())
    # with tiny couplings log Z is close to the independent-unit value 24 log 2 (plus the couplings'
    # mean-field correction, bounded by the sum of |W_ij| / 4 over pairs)
    bound = float(jnp.sum(jnp.abs(jnp.triu(bm.W, 1))))
    assert abs(log_z - 24 * np.log(2)) <= bound


@pytest.mark.parametrize(
    "W, match",
    [
        (np.array([[0.0, 1.0], [0.5, 0.0]]), "symmetric"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), "zero diagonal"),
        (np.zeros((2, 3)), "square"),
    ],
)
def test_bad_couplings_are_refused(W, match):
    with pytest.raises(ValueError, match=match):
        ep.BoltzmannMachine(W, np.zeros(W.shape[0]))


def test_bad_data_and_too_large_enumeration():
    bm = _bm(4)
    with pytest.raises(ValueError, match="binary"):
        bm.energy(np.array([0.0, 2.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"2\^30 terms"):
        ep.BoltzmannMachine.init(jax.random.key(0), 30).log_partition()


def test_models_build_inside_jit_from_closed_over_concrete_arrays():
    """Inside a jit trace a jnp check of a closed-over (concrete) parameter returns a tracer; the
    constructors' checks run in NumPy on such arrays and skip tracers, so these trace: a Boltzmann
    machine with a traced W and a concrete b, a Gaussian from a concrete cov, a ClassRBM's labels."""
    W = 0.8 * (jnp.ones((4, 4)) - jnp.eye(4))
    b = jnp.zeros(4)
    energy = jax.jit(lambda W: ep.BoltzmannMachine(W, b).energy(jnp.ones(4)))(W)
    np.testing.assert_allclose(energy, -0.8 * 6, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda b: ep.BoltzmannMachine(W, b).energy(jnp.ones(4)))(b), -0.8 * 6,
                               rtol=1e-6)
    cov = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(jax.jit(lambda x: ep.Gaussian(jnp.zeros(2), cov=cov).energy(x))(jnp.zeros(2)),
                               ep.Gaussian(jnp.zeros(2), cov=cov).energy(jnp.zeros(2)), rtol=1e-6)
    crbm = ep.ClassRBM.init(jax.random.key(0), 6, 3, 2)
    y = jnp.array([1])
    np.testing.assert_allclose(jax.jit(lambda x: crbm.energy_joint(x, y))(jnp.ones((1, 6))),
                               crbm.energy_joint(jnp.ones((1, 6)), y), rtol=1e-6)
    bad = jnp.full(4, jnp.nan)  # concrete, so still checked inside the trace
    with pytest.raises(ValueError, match="contains NaN or inf"):
        jax.jit(lambda W: ep.BoltzmannMachine(W, bad).energy(jnp.ones(4)))(W)
