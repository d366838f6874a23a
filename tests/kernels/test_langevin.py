"""Unadjusted Langevin against its exact stationary law on Gaussians (bias checked, not hidden)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_ppl.kernels import langevin
from ebm_ppl.kernels.langevin import run as langevin_run
from ebm_ppl.kernels.langevin import temperature


def _run(logdensity, x0, step_size, noise_scale, num_steps, num_chains, seed=0):
    algo = langevin(logdensity, step_size, noise_scale)
    states = jax.vmap(algo.init)(jnp.broadcast_to(x0, (num_chains, *x0.shape)))

    def body(states, key):
        states, _ = jax.vmap(algo.step)(jax.random.split(key, num_chains), states)
        return states, states.position

    _, xs = jax.lax.scan(body, states, jax.random.split(jax.random.key(seed), num_steps))
    return np.asarray(xs)


@pytest.mark.parametrize("noise_scale", [None, 0.3])
def test_stationary_variance_matches_the_discretised_ou_process(noise_scale):
    """For p = N(0, 1/precision), ULA is the AR(1) x' = (1 - h p) x + sigma xi, whose stationary
    variance is sigma^2 / (2 h p - h^2 p^2) = T / (p (1 - h p / 2)) with T = sigma^2 / (2 h): the
    O(h) bias inflates the variance. Tolerance: 5 standard errors of a variance estimate over
    4000 independent chains (2 var^2 / n)."""
    precision = jnp.array([1.0, 4.0])
    h = 0.1
    xs = _run(lambda x: -0.5 * jnp.sum(precision * x**2), jnp.zeros(2), h, noise_scale, 300, 4000)
    T = temperature(h, noise_scale)
    sigma2 = 2 * h * T
    exact_biased = sigma2 / (2 * h * precision - h**2 * precision**2)
    var = xs[-1].var(axis=0)  # last step of independent chains, long after mixing (AR coef <= 0.9)
    se = np.sqrt(2 / xs.shape[1]) * exact_biased
    np.testing.assert_array_less(np.abs(var - exact_biased), 5 * se)
    # the bias has the predicted sign and size: larger than the target's T / precision
    target = T / np.asarray(precision)
    assert np.all(exact_biased > target)
    np.testing.assert_allclose(exact_biased / target, 1 / (1 - h * np.asarray(precision) / 2), rtol=1e-6)


def test_proper_langevin_means_and_small_step_bias_shrinks():
    mean = jnp.array([1.0, -2.0])
    logdensity = lambda x: -0.5 * jnp.sum((x - mean) ** 2)  # noqa: E731
    for h in (0.2, 0.02):
        xs = _run(logdensity, jnp.zeros(2), h, None, 600, 2000, seed=1)
        var = xs[-1].var(0)
        assert np.all(np.abs(var - 1 / (1 - h / 2)) < 5 * np.sqrt(2 / 2000) / (1 - h / 2))
        assert np.all(np.abs(xs[-1].mean(0) - mean) < 5 * np.sqrt(1 / (1 - h / 2) / 2000))


def test_temperature_and_bad_arguments():
    assert temperature(1.0, 0.01) == pytest.approx(5e-5)
    assert temperature(0.3, None) == 1.0
    with pytest.raises(ValueError, match="step_size"):
        langevin(lambda x: -x @ x, -1.0)
    with pytest.raises(ValueError, match="noise_scale"):
        langevin(lambda x: -x @ x, 1.0, noise_scale=float("nan"))


def _counted(logdensity, counter):
    """``logdensity`` of one vector x whose gradient (its VJP) appends, at run time, the number of
    examples it was evaluated at to ``counter`` (1 per call; the batch size under vmap, where the
    callback sees the batch), also inside jit and scan."""

    @jax.custom_vjp
    def f(x):
        return logdensity(x)

    def fwd(x):
        return logdensity(x), x

    def bwd(x, ct):
        jax.debug.callback(lambda v: counter.append(int(np.prod(np.shape(v)[:-1]))), x)
        return (ct * jax.grad(logdensity)(x),)

    f.defvjp(fwd, bwd)
    return f


def _kernel_by_hand(logdensity, key, x0, num_steps, step_size, noise_scale):
    algo = langevin(logdensity, step_size, noise_scale)
    state = algo.init(x0)
    for k in jax.random.split(key, num_steps):
        state, _ = algo.step(k, state)
    return state


@pytest.mark.parametrize("noise_scale", [None, 0.3])
def test_run_makes_the_kernels_moves_with_one_gradient_per_step(noise_scale):
    """run(key, x0, n) is init + n steps with the keys split(key, n): the same draws and positions,
    but n gradient evaluations instead of n + 1 (no gradient at the final position)."""
    precision = jnp.array([1.0, 4.0, 0.5])
    logdensity = lambda x: -0.5 * jnp.sum(precision * x**2) + jnp.sum(jnp.sin(x))  # noqa: E731
    x0, key, n = jnp.array([1.0, -2.0, 0.5]), jax.random.key(3), 7

    kernel_calls, run_calls = [], []
    state = _kernel_by_hand(_counted(logdensity, kernel_calls), key, x0, n, 0.1, noise_scale)
    out = jax.jit(lambda k, x: langevin_run(k, x, _counted(logdensity, run_calls), n, 0.1, noise_scale))(key, x0)
    jax.effects_barrier()
    assert sum(kernel_calls) == n + 1 and sum(run_calls) == n
    np.testing.assert_allclose(np.asarray(out), np.asarray(state.position), rtol=1e-6, atol=1e-6)

    # vmapped over 5 chains inside jit: 5 n evaluations, each chain its own kernel trajectory
    calls = []
    keys, x0s = jax.random.split(key, 5), jnp.stack([x0 + i for i in range(5)])
    many = jax.jit(jax.vmap(lambda k, x: langevin_run(k, x, _counted(logdensity, calls), n, 0.1, noise_scale)))
    outs = many(keys, x0s)
    jax.effects_barrier()
    assert sum(calls) == 5 * n
    for i in range(5):
        ref = _kernel_by_hand(logdensity, keys[i], x0s[i], n, 0.1, noise_scale).position
        np.testing.assert_allclose(np.asarray(outs[i]), np.asarray(ref), rtol=1e-6, atol=1e-6)


def test_run_with_zero_steps_and_bad_arguments():
    x0 = jnp.array([0.5, -0.5])
    np.testing.assert_array_equal(np.asarray(langevin_run(jax.random.key(0), x0, lambda x: -x @ x, 0, 0.1)), x0)
    with pytest.raises(ValueError, match="num_steps"):
        langevin_run(jax.random.key(0), x0, lambda x: -x @ x, -1, 0.1)
    with pytest.raises(ValueError, match="num_steps"):
        langevin_run(jax.random.key(0), x0, lambda x: -x @ x, 2.0, 0.1)
    with pytest.raises(ValueError, match="step_size"):
        langevin_run(jax.random.key(0), x0, lambda x: -x @ x, 3, 0.0)
    with pytest.raises(ValueError, match="noise_scale"):
        langevin_run(jax.random.key(0), x0, lambda x: -x @ x, 3, 0.1, noise_scale=-1.0)
