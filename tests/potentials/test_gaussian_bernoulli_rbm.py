"""GaussianBernoulliRBM: free energy, conditionals and exact log Z against brute force."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import ebm_ppl.potentials as potentials
from ebm_ppl.potentials import GaussianBernoulliRBM, log_partition
from ebm_ppl.potentials.enumeration import all_binary_states


@pytest.fixture
def x64():
    """Run the test body in float64, so exactness checks can use tight tolerances."""
    with jax.enable_x64(True):
        yield


def _model(seed: int, n_visible: int, n_hidden: int) -> GaussianBernoulliRBM:
    """Random parameters of scale ~1 (so every term of the energy matters), sigma in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    return GaussianBernoulliRBM(
        rng.normal(size=(n_visible, n_hidden)),
        rng.normal(size=n_visible),
        rng.normal(size=n_hidden),
        rng.uniform(0.5, 2.0, size=n_visible),
    )


def _np_free_energy(rbm: GaussianBernoulliRBM, x: np.ndarray) -> np.ndarray:
    """F(x) in plain NumPy for the numerical integrals; ``x: (..., D)``."""
    W, b, c, s = (np.asarray(a) for a in (rbm.W, rbm.b, rbm.c, rbm.sigma))
    quad = np.sum((x - b) ** 2 / (2 * s**2), axis=-1)
    return quad - np.sum(np.logaddexp(0.0, c + (x / s) @ W), axis=-1)


def test_registered():
    assert potentials.get_potential("gaussian_bernoulli_rbm") is GaussianBernoulliRBM
    assert GaussianBernoulliRBM.support == potentials.Support.REAL


def test_init_and_default_sigma():
    rbm = GaussianBernoulliRBM.init(jax.random.PRNGKey(0), 5, 3, scale=0.1)
    assert rbm.W.shape == (5, 3) and rbm.b.shape == (5,) and rbm.c.shape == (3,)
    np.testing.assert_array_equal(rbm.sigma, np.ones(5))
    assert rbm.event_shape == (5,) and rbm.n_visible == 5 and rbm.n_hidden == 3
    assert GaussianBernoulliRBM(np.zeros((2, 4)), np.zeros(2), np.zeros(4)).sigma.shape == (2,)


# -- (a) free energy ------------------------------------------------------------------------
def test_energy_joint_convention(x64):
    """Pins the convention: E = sum (x-b)^2/(2 sigma^2) - sum_ij (x_i/sigma_i) W_ij h_j - c^T h."""
    rbm = _model(17, 3, 2)
    W, b, c, s = (np.asarray(a) for a in (rbm.W, rbm.b, rbm.c, rbm.sigma))
    x, h = np.array([0.3, -1.2, 2.0]), np.array([1.0, 0.0])
    expected = sum((x[i] - b[i]) ** 2 / (2 * s[i] ** 2) for i in range(3))
    expected -= sum(x[i] / s[i] * W[i, j] * h[j] for i in range(3) for j in range(2))
    expected -= c @ h
    np.testing.assert_allclose(rbm.energy_joint(x, h), expected, rtol=1e-12)


def test_free_energy_is_minus_log_sum_over_h(x64):
    """F(x) = -log sum_h exp(-E(x, h)) exactly (2^4 hidden states, float64)."""
    rbm = _model(0, 3, 4)
    xs = jnp.asarray(np.random.default_rng(1).normal(scale=2.0, size=(6, 3)))
    hs = all_binary_states(4)
    joint = jax.vmap(lambda h: rbm.energy_joint(xs, jnp.broadcast_to(h, (6, 4))))(hs)  # (16, 6)
    expected = -jax.scipy.special.logsumexp(-joint, axis=0)
    np.testing.assert_allclose(rbm.free_energy(xs), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rbm.energy(xs), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rbm.logdensity(xs), -expected, rtol=1e-12, atol=1e-12)


def test_energy_batches_and_jits(x64):
    rbm = _model(2, 3, 2)
    xs = jnp.asarray(np.random.default_rng(3).normal(size=(2, 4, 3)))
    e = rbm.energy(xs)
    assert e.shape == (2, 4)
    np.testing.assert_allclose(jax.jit(lambda m, x: m.energy(x))(rbm, xs), e, rtol=1e-12)
    np.testing.assert_allclose(e[1, 2], rbm.energy(xs[1, 2]), rtol=1e-12)


# -- (b) conditionals ------------------------------------------------------------------------
def test_hidden_probs_match_enumerated_joint(x64):
    """p(h|x) ∝ exp(-E(x, h)) over all 2^M h; it factorises into Bernoulli(hidden_probs)."""
    rbm = _model(4, 3, 4)
    x = jnp.asarray(np.random.default_rng(5).normal(size=3))
    hs = all_binary_states(4)
    log_w = -rbm.energy_joint(jnp.broadcast_to(x, (16, 3)), hs)
    p_h = jnp.exp(log_w - jax.scipy.special.logsumexp(log_w))  # (16,)
    marginals = p_h @ hs  # p(h_j = 1 | x)
    probs = rbm.hidden_probs(x)
    np.testing.assert_allclose(probs, marginals, rtol=1e-12, atol=1e-14)
    product = jnp.prod(hs * probs + (1 - hs) * (1 - probs), axis=-1)
    np.testing.assert_allclose(product, p_h, rtol=1e-12, atol=1e-14)


def test_visible_conditional_is_the_stated_gaussian(x64):
    """E(x, h) is quadratic in x: minimiser b + sigma W h, Hessian diag(1/sigma^2), so p(x|h) is that Normal."""
    rbm = _model(6, 3, 4)
    rng = np.random.default_rng(7)
    for h in all_binary_states(4)[jnp.array([0, 5, 11, 15])]:
        mean = rbm.visible_mean(h)
        e = lambda x: rbm.energy_joint(x, h)  # noqa: E731
        np.testing.assert_allclose(jax.grad(e)(mean), np.zeros(3), atol=1e-12)
        np.testing.assert_allclose(jax.hessian(e)(mean), np.diag(1 / np.asarray(rbm.sigma) ** 2), rtol=1e-12)
        # exactly quadratic: E(x, h) - E(mean, h) = sum (x - mean)^2 / (2 sigma^2) for any x
        x = jnp.asarray(rng.normal(scale=3.0, size=3))
        np.testing.assert_allclose(
            e(x) - e(mean), jnp.sum((x - mean) ** 2 / (2 * rbm.sigma**2)), rtol=1e-10
        )


# -- (c) exact log Z -------------------------------------------------------------------------
def test_log_partition_matches_quadrature_1d(x64):
    """D = 1: log of the adaptive-quadrature integral of exp(-F(x)) over R."""
    rbm = _model(8, 1, 3)
    numeric, err = integrate.quad(lambda t: math.exp(-_np_free_energy(rbm, np.array([t]))), -np.inf, np.inf, epsabs=0, epsrel=1e-11)
    assert err < 1e-9 * numeric
    np.testing.assert_allclose(rbm.log_partition(), math.log(numeric), rtol=1e-7)


def test_log_partition_matches_grid_integral_2d(x64):
    """D = 2: the trapezoid rule on a fine grid is spectrally accurate for this Gaussian mixture.

    Every mixture component has mean b + sigma W h and std sigma, so a box of +-12 sigma around all
    the means misses a mass below 1e-30, and a step of sigma/20 resolves each component.
    """
    rbm = _model(9, 2, 3)
    hs = np.asarray(all_binary_states(3))
    means = np.asarray(rbm.b) + np.asarray(rbm.sigma) * (hs @ np.asarray(rbm.W).T)  # (8, 2)
    s = np.asarray(rbm.sigma)
    axes = [
        np.linspace(means[:, i].min() - 12 * s[i], means[:, i].max() + 12 * s[i], int(np.ceil((np.ptp(means[:, i]) + 24 * s[i]) / (s[i] / 20))))
        for i in range(2)
    ]
    g0, g1 = np.meshgrid(*axes, indexing="ij")
    density = np.exp(-_np_free_energy(rbm, np.stack([g0, g1], axis=-1)))
    numeric = integrate.trapezoid(integrate.trapezoid(density, axes[1], axis=1), axes[0])
    np.testing.assert_allclose(rbm.log_partition(), math.log(numeric), rtol=1e-7)


def test_log_partition_chunking_and_entry_point(x64):
    rbm = _model(10, 3, 7)
    full = rbm.log_partition()
    np.testing.assert_allclose(rbm.log_partition(chunk_size=5), full, rtol=1e-13)  # 128 = 25 * 5 + 3
    np.testing.assert_allclose(rbm.log_partition(route="hidden"), full, rtol=1e-13)
    np.testing.assert_allclose(log_partition(rbm), full, rtol=1e-13)


def test_base_model_log_partition(x64):
    """W = 0, c = 0: Z = 2^M prod_i sqrt(2 pi) sigma_i, and x ~ N(b, sigma^2)."""
    rbm = _model(11, 3, 4)
    base = rbm.base_model()
    np.testing.assert_array_equal(base.W, np.zeros((3, 4)))
    np.testing.assert_array_equal(base.sigma, rbm.sigma)
    expected = 4 * math.log(2) + np.sum(np.log(np.sqrt(2 * np.pi) * np.asarray(rbm.sigma)))
    np.testing.assert_allclose(base.log_partition(), expected, rtol=1e-13)


def test_log_partition_gradient_is_expected_sufficient_statistic(x64):
    """d log Z / d c_j = E[h_j] under the model; check against the exact mixture weights."""
    import equinox as eqx

    rbm = _model(12, 2, 3)
    grads = eqx.filter_grad(lambda m: m.log_partition())(rbm)
    hs = all_binary_states(3)
    a = hs @ rbm.W.T
    log_w = hs @ rbm.c + jnp.sum(rbm.b * a / rbm.sigma + 0.5 * a**2, axis=-1)
    p_h = jnp.exp(log_w - jax.scipy.special.logsumexp(log_w))
    np.testing.assert_allclose(grads.c, p_h @ hs, rtol=1e-10)


# -- (e) sampling ----------------------------------------------------------------------------
def test_sample_shapes_and_dtypes():
    rbm = GaussianBernoulliRBM.init(jax.random.PRNGKey(0), 5, 3, scale=0.5)
    x = jnp.zeros((2, 4, 5), jnp.float32)
    h = rbm.sample_hidden(jax.random.PRNGKey(1), x)
    assert h.shape == (2, 4, 3) and h.dtype == jnp.float32
    assert set(np.unique(np.asarray(h))) <= {0.0, 1.0}
    xv = rbm.sample_visible(jax.random.PRNGKey(2), h)
    assert xv.shape == (2, 4, 5) and xv.dtype == jnp.float32
    jitted = jax.jit(lambda m, k, h: m.sample_visible(k, h))(rbm, jax.random.PRNGKey(2), h)
    assert jitted.shape == (2, 4, 5)


def test_sample_hidden_frequencies():
    """Counts of h_j = 1 over n draws are Binomial(n, p_j): allow 5 standard errors."""
    rbm = _model(13, 4, 6)
    x = jnp.asarray(np.random.default_rng(14).normal(size=4), jnp.float32)
    n = 20_000
    h = rbm.sample_hidden(jax.random.PRNGKey(3), jnp.broadcast_to(x, (n, 4)))
    p = np.asarray(rbm.hidden_probs(x), np.float64)
    se = np.sqrt(p * (1 - p) / n) + 1e-12
    assert np.all(np.abs(np.asarray(h).mean(0) - p) <= 5 * se)


def test_sample_visible_moments():
    """Sample mean within 5 SE (sigma/sqrt(n)); sample variance within 5 SE (sigma^2 sqrt(2/(n-1)))."""
    rbm = _model(15, 4, 3)
    h = jnp.asarray([1.0, 0.0, 1.0], jnp.float32)
    n = 20_000
    xs = np.asarray(rbm.sample_visible(jax.random.PRNGKey(4), jnp.broadcast_to(h, (n, 3))), np.float64)
    mean = np.asarray(rbm.visible_mean(h), np.float64)
    s = np.asarray(rbm.sigma, np.float64)
    assert np.all(np.abs(xs.mean(0) - mean) <= 5 * s / np.sqrt(n))
    assert np.all(np.abs(xs.var(0, ddof=1) - s**2) <= 5 * s**2 * np.sqrt(2 / (n - 1)))


# -- (f) bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [[1.0, 0.0], [1.0, -0.5]])
def test_non_positive_sigma_refused(sigma):
    with pytest.raises(ValueError, match=r"sigma .*must be positive"):
        GaussianBernoulliRBM(np.zeros((2, 3)), np.zeros(2), np.zeros(3), sigma)


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.zeros(3), np.zeros(3), np.zeros(2)), r"parameter W must have 2 dimension"),
        ((np.zeros((3, 2)), np.zeros(2), np.zeros(2)), r"parameter b must have shape \(3,\)"),
        ((np.zeros((3, 2)), np.zeros(3), np.zeros(3)), r"parameter c must have shape \(2,\)"),
        ((np.zeros((3, 2)), np.zeros(3), np.zeros(2), np.ones(2)), r"parameter sigma must have shape \(3,\)"),
        ((np.zeros((3, 2)), np.zeros(3), np.zeros(2), np.ones((3, 1))), r"parameter sigma must have shape \(3,\)"),
        ((np.full((3, 2), np.nan), np.zeros(3), np.zeros(2)), r"parameter W contains NaN"),
        ((np.zeros((3, 2)), np.zeros(3), np.zeros(2), [1.0, np.nan, 1.0]), r"parameter sigma contains NaN"),
        ((np.zeros((3, 2)), np.zeros(3), [np.inf, 0.0]), r"parameter c contains NaN or inf"),
    ],
)
def test_bad_parameters_refused(args, match):
    with pytest.raises(ValueError, match=match):
        GaussianBernoulliRBM(*args)


def test_bad_inputs_refused():
    rbm = GaussianBernoulliRBM.init(jax.random.PRNGKey(0), 3, 2)
    with pytest.raises(ValueError, match=r"x has shape \(4,\); expected \(\*batch, 3\)"):
        rbm.energy(np.zeros(4))
    with pytest.raises(ValueError, match=r"x has shape \(2, 4\)"):
        rbm.hidden_probs(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"x contains 1 NaN"):
        rbm.energy([0.0, np.nan, 1.0])
    with pytest.raises(ValueError, match=r"h must be binary"):
        rbm.energy_joint(np.zeros(3), [0.5, 1.0])
    with pytest.raises(ValueError, match=r"h has shape \(3,\)"):
        rbm.visible_mean(np.zeros(3))
    with pytest.raises(ValueError, match="dtype"):
        rbm.energy(np.array(["a", "b", "c"]))


def test_bad_route_refused():
    rbm = GaussianBernoulliRBM.init(jax.random.PRNGKey(0), 3, 2)
    with pytest.raises(ValueError, match=r"real-valued"):
        rbm.log_partition(route="visible")
    with pytest.raises(ValueError, match=r"route must be 'hidden' or None"):
        rbm.log_partition(route="both")


# -- (g) too large ---------------------------------------------------------------------------
def test_too_large_enumeration_points_to_ais():
    rbm = GaussianBernoulliRBM(np.zeros((2, 40)), np.zeros(2), np.zeros(40))
    with pytest.raises(ValueError, match=r"2\^40 terms.*ais"):
        rbm.log_partition()
    small = GaussianBernoulliRBM(np.zeros((2, 8)), np.zeros(2), np.zeros(8))
    with pytest.raises(ValueError, match=r"ebm_ppl\.ais"):
        small.log_partition(max_terms=2**7)
    with pytest.raises(ValueError, match=r"ais"):
        log_partition(small, max_terms=100)


def test_rebuildfrom_config():
    """The default ``from_config`` (used by ebm_ppl.io) rebuilds the model, validating it."""
    rbm = _model(16, 3, 2)
    arrays = {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(rbm)[0]}
    rebuilt = GaussianBernoulliRBM.from_config(rbm.to_config(), arrays)
    np.testing.assert_array_equal(rebuilt.sigma, rbm.sigma)
    arrays[".sigma"] = -arrays[".sigma"]
    with pytest.raises(ValueError, match="positive"):
        GaussianBernoulliRBM.from_config(rbm.to_config(), arrays)
