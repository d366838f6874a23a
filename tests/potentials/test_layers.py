"""RBM layers (Binary, Spin, Potts, Gaussian, ReLU, dReLU) and ep.RBM over any pair: energies,
CGFs, conditionals, exact log Z and sampling against brute-force enumeration and quadrature."""

from __future__ import annotations

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

import ebm_ppl as ep
from ebm_ppl.potentials.layers import Binary, DReLU, Gaussian, Potts, ReLU, Spin

L = ep.layers


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _random_layer(kind: str, size: int, rng: np.random.Generator):
    """A layer of ``size`` units with random parameters of order 1 (positive where they must be)."""
    normal = lambda *shape: jnp.asarray(rng.normal(0.0, 1.0, shape))  # noqa: E731
    positive = lambda *shape: jnp.asarray(rng.uniform(0.5, 2.0, shape))  # noqa: E731
    return {"binary": lambda: Binary(normal(size)), "spin": lambda: Spin(normal(size)),
            "potts": lambda: Potts(normal(size, 3)), "gaussian": lambda: Gaussian(normal(size), positive(size)),
            "relu": lambda: ReLU(normal(size), positive(size)),
            "drelu": lambda: DReLU(normal(size), normal(size), positive(size), positive(size))}[kind]()


def _states(layer):
    """Every state of a discrete layer, ``(num_states, size)``."""
    values = {"binary": (0.0, 1.0), "spin": (-1.0, 1.0)}.get(type(layer).__name__.lower(), None)
    if values is None:  # Potts
        values = tuple(float(v) for v in range(layer.num_categories))
    return jnp.asarray(list(itertools.product(values, repeat=layer.size)))


@eqx.filter_jit
def _unit_energies(layer, j, h):
    """E_j(h) - E_j(0) of unit j of ``layer`` at the values ``h`` ``(n,)`` (the other units at 0);
    compiled once per layer kind, so quadrature's many scalar calls cost a dispatch each."""
    x = jnp.zeros((h.shape[0], layer.size), h.dtype).at[:, j].set(h)
    return layer.energy(x) - layer.energy(jnp.zeros(layer.size, h.dtype))


def _unit_log_integral(layer, j: int, field: float) -> float:
    """log of the integral over one continuous unit j of exp(-E_j(h) + field h), by quadrature
    (shifted by the integrand's peak so that large fields do not overflow; the parameters keep
    the mass well inside [-60, 60])."""
    def energy(h):
        return float(_unit_energies(layer, j, np.array([h]))[0])

    low = 0.0 if isinstance(layer, ReLU) else -60.0  # ReLU units live on [0, inf)
    grid = np.linspace(low, 60, 1201)
    peak = float(np.max(-np.asarray(_unit_energies(layer, j, grid)) + field * grid))
    value, _ = integrate.quad(lambda h: math.exp(-energy(h) + field * h - peak), low, 60.0, limit=400,
                              points=None if low == 0.0 else [0.0], epsabs=0.0, epsrel=1e-11)
    return math.log(value) + peak


@pytest.mark.parametrize("kind", ["gaussian", "relu", "drelu"])
def test_continuous_cgf_against_quadrature_and_its_gradient_is_the_mean(kind, x64):
    layer = _random_layer(kind, 3, np.random.default_rng(0))
    field = jnp.asarray([-2.5, 0.3, 4.0])
    exact = sum(_unit_log_integral(layer, j, float(field[j])) for j in range(3))
    assert abs(float(layer.cgf(field)) - exact) < 1e-6 * max(1.0, abs(exact))
    np.testing.assert_allclose(jax.grad(layer.cgf)(field), layer.mean(field), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kind", ["relu", "drelu"])
def test_rectified_cgf_is_stable_in_float32_far_in_the_tails(kind):
    """Fields of +-60 (thousands of nats) in float32: the CGF equals its float64 value to a few ulps
    of its size, finite; the mean stays on the right side of 0."""
    layer32 = _random_layer(kind, 4, np.random.default_rng(1))
    layer32 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), layer32)
    field = jnp.asarray([-60.0, -20.0, 20.0, 60.0], jnp.float32)
    with jax.enable_x64(True):
        layer64 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), layer32)
        exact = np.asarray(jax.vmap(lambda f, j: layer64.cgf(jnp.zeros(4).at[j].set(f)) - layer64.cgf(jnp.zeros(4)))(
            field.astype(jnp.float64), jnp.arange(4)))
    approx = np.asarray(jax.vmap(lambda f, j: layer32.cgf(jnp.zeros(4, jnp.float32).at[j].set(f))
                                 - layer32.cgf(jnp.zeros(4, jnp.float32)))(field, jnp.arange(4)))
    assert np.all(np.isfinite(approx))
    np.testing.assert_allclose(approx, exact, rtol=1e-5, atol=1e-3)
    mean = np.asarray(layer32.mean(field))
    assert np.all(np.isfinite(mean)) and mean[-1] > 0


def _half_normal_mean64(z: float) -> float:
    """The mean of N(z, 1) restricted to (0, inf) in float64, independently of the library: for
    z >= 0 ``z + phi(z) / Phi(z)`` (no cancellation); for z = -t < 0, with u = t h,
    ``(1 / t) int u e^(-u - u^2 / 2t^2) du / int e^(-u - u^2 / 2t^2) du`` by quadrature (agrees with
    mpmath at 40 digits to 1e-15 relative from t = 1 to 1000; scipy's truncnorm.mean is off by 1e-5
    relative at t = 1000)."""
    if z >= 0:
        return z + math.exp(stats.norm.logpdf(z) - special.log_ndtr(z))
    t = -z
    moment = lambda k: integrate.quad(lambda u: u**k * math.exp(-u - u * u / (2 * t * t)), 0, np.inf,  # noqa: E731
                                      epsabs=0.0, epsrel=1e-13)[0]
    return moment(1) / moment(0) / t


def test_relu_and_drelu_means_are_exact_in_float32_far_in_the_tails():
    """E[h | I] of ReLU units (precision 1 and 2.5) over fields from -1000 to 1000, and of dReLU
    units pushed towards 0 from both sides (biases -B and 2B, the mean ~0.5 / B), within 1e-4
    relative of float64 (float32 keeps ~1e-7 of the field; the mean is smooth in it) and never on
    the wrong side of 0. ``mu + s phi(z) / Phi(z)`` cancelled: at I = -1000 it gave -1.5, not 0.001."""
    fields = np.concatenate([-np.geomspace(1000, 0.01, 40), [0.0], np.geomspace(0.01, 1000, 40)]).astype(np.float32)
    for precision in (1.0, 2.5):
        layer = ReLU(jnp.zeros(fields.size, jnp.float32), jnp.full(fields.size, precision, jnp.float32))
        mean = np.asarray(layer.mean(jnp.asarray(fields)))
        s = 1 / math.sqrt(precision)
        exact = np.array([s * _half_normal_mean64(float(f) / math.sqrt(precision)) for f in fields])
        assert np.all(mean > 0)
        np.testing.assert_allclose(mean, exact, rtol=1e-4)
    b = np.array([10.0, 50.0, 100.0, 1000.0])
    drelu = DReLU(jnp.asarray(-b, jnp.float32), jnp.asarray(2 * b, jnp.float32), jnp.ones(4, jnp.float32),
                  jnp.ones(4, jnp.float32))
    log_pos = np.array([special.log_ndtr(-v) + v * v / 2 for v in b])  # log half-Gaussian integrals (common terms off)
    log_neg = np.array([special.log_ndtr(-2 * v) + 2 * v * v for v in b])
    p_pos = 1 / (1 + np.exp(log_neg - log_pos))
    exact = np.array([p * _half_normal_mean64(-v) - (1 - p) * _half_normal_mean64(-2 * v) for p, v in zip(p_pos, b)])
    mean = np.asarray(drelu.mean(jnp.zeros(4, jnp.float32)))
    assert np.all(mean > 0)
    np.testing.assert_allclose(mean, exact, rtol=1e-4)


@pytest.mark.parametrize("kind", ["relu", "drelu"])
def test_rectified_draws_follow_their_density(kind):
    """20,000 draws per unit pass a KS test (p > 1e-3) against the CDF by quadrature of
    exp(-E(h) + I h), including a unit whose field pushes it 20 standard deviations into a tail."""
    layer = _random_layer(kind, 3, np.random.default_rng(2))
    field = jnp.asarray([-20.0, 0.0, 1.5])
    draws = np.asarray(layer.sample(jax.random.key(3), jnp.broadcast_to(field, (20_000, 3)), jnp.float32))
    with jax.enable_x64(True):
        layer64 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), layer)
        for j in range(3):
            low = 0.0 if isinstance(layer, ReLU) else draws[:, j].min() - 1  # ReLU units live on [0, inf)
            grid = np.linspace(low, draws[:, j].max() + 1, 4001)
            log_density = np.asarray(jax.vmap(lambda h: -layer64.energy(jnp.zeros(3).at[j].set(h))
                                              + field[j] * h)(jnp.asarray(grid)))
            density = np.exp(log_density - log_density.max())
            cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(grid))])
            cdf /= cdf[-1]
            assert stats.kstest(draws[:, j], lambda v: np.interp(v, grid, cdf)).pvalue > 1e-3, j


def test_potts_inverse_cdf_draws_follow_the_softmax():
    """The fused AIS path draws Potts sites from one uniform each (inverse CDF): 40,000 draws of
    a site with a near-zero state probability pass a chi-square test against softmax(h + I)."""
    layer = Potts(jnp.asarray([[0.0, 1.0, -30.0, 0.5]], jnp.float32))
    field = jnp.asarray([[0.3, -0.2, 0.0, 0.1]], jnp.float32)
    n = 40_000
    draws = layer.sample_from_noise(layer.noise(jax.random.key(0), (n, 1), jnp.float32),
                                    jnp.broadcast_to(field, (n, 1, 4)))
    p = np.asarray(jax.nn.softmax(layer.bias + field, axis=-1), np.float64)[0]
    counts = np.bincount(np.asarray(draws[:, 0], np.int64), minlength=4)
    assert counts[2] == 0 and set(np.unique(np.asarray(draws))) <= {0.0, 1.0, 3.0}
    keep = p > 1e-6
    assert stats.chisquare(counts[keep], p[keep] / p[keep].sum() * n).pvalue > 1e-3


@pytest.mark.parametrize("kind", ["binary", "spin", "gaussian", "relu", "drelu"])
def test_a_layer_on_the_units_by_chains_layout_gives_the_same_numbers(kind):
    """The fused AIS path keeps chains transposed, ``(units, chains)`` (``axis=0``), where the
    hidden layer is narrow: energies, CGFs and the draws from the same noise equal the ``(chains,
    units)`` layout's."""
    layer = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), _random_layer(kind, 5, np.random.default_rng(8)))
    field = jax.random.normal(jax.random.key(1), (7, 5)) * 3
    noise = layer.noise(jax.random.key(2), (7, 5), jnp.float32)
    x = layer.sample_from_noise(noise, field)
    np.testing.assert_allclose(layer.sample_from_noise(noise.T, field.T, axis=0), x.T, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer.cgf(field.T, axis=0), layer.cgf(field), rtol=1e-6)
    np.testing.assert_allclose(layer.energy(x.T, axis=0), layer.energy(x), rtol=1e-5, atol=1e-5)


PAIRS = [("binary", "drelu"), ("potts", "binary"), ("spin", "gaussian"), ("binary", "relu"), ("spin", "potts"),
         ("gaussian", "spin")]


@pytest.mark.parametrize("visible, hidden", PAIRS)
def test_free_energy_and_exact_log_z_against_brute_force(visible, hidden, x64):
    """F(x) = E_v(x) - cgf_h(I(x)) equals -log of the sum (integral) over h of exp(-E(x, h)); log Z
    by both routes equals the brute-force sum over all discrete states (the continuous side by
    quadrature), to 1e-6 relative in float64."""
    rng = np.random.default_rng(4)
    vis, hid = _random_layer(visible, 3, rng), _random_layer(hidden, 2, rng)
    rbm = ep.RBM.init(jax.random.key(0), vis, hid, scale=0.7)
    discrete_side = vis if hasattr(vis, "num_states") else hid
    if discrete_side is vis:
        xs = _states(vis)
        if hasattr(hid, "num_states"):
            hs = _states(hid)
            log_joint = jnp.stack([-jax.vmap(lambda h: rbm.energy_joint(x, h))(hs) for x in xs])
            np.testing.assert_allclose(rbm.free_energy(xs), -jax.scipy.special.logsumexp(log_joint, axis=1),
                                       rtol=1e-10)
        else:
            fields = np.asarray(rbm.hidden_field(xs))
            quad = np.array([sum(_unit_log_integral(hid, j, fields[i, j]) for j in range(hid.size))
                             for i in range(len(xs))])
            np.testing.assert_allclose(rbm.free_energy(xs), np.asarray(vis.energy(xs)) - quad, rtol=1e-6)
        exact = float(jax.scipy.special.logsumexp(-rbm.free_energy(xs)))
    else:  # continuous visible: sum over h, integrate x unit by unit
        hs = _states(hid)
        fields = np.asarray(rbm.visible_field(hs))
        terms = [-float(hid.energy(h)) + sum(_unit_log_integral(vis, j, fields[i, j]) for j in range(vis.size))
                 for i, h in enumerate(hs)]
        exact = float(np.logaddexp.reduce(terms))
    for route in [None, *rbm._routes()]:
        assert abs(float(ep.log_partition(rbm, route=route)) - exact) < 1e-6 * max(1.0, abs(exact)), route


@pytest.mark.parametrize("visible, hidden", [("potts", "binary"), ("spin", "spin")])
def test_block_gibbs_leaves_the_exact_distribution_invariant(visible, hidden):
    """From 20,000 exact samples, 5 block-Gibbs sweeps: the visible states' frequencies pass a
    chi-square test against the exact probabilities (p > 1e-3)."""
    rng = np.random.default_rng(5)
    rbm = ep.RBM.init(jax.random.key(0), _random_layer(visible, 4, rng), _random_layer(hidden, 3, rng), scale=0.8)
    xs = np.asarray(_states(rbm.visible), np.float32)
    p = np.asarray(jax.nn.softmax(-rbm.free_energy(xs)), np.float64)
    p /= p.sum()
    start = ep.partition.exact_samples(jax.random.key(1), rbm, 20_000)
    moved = ep.kernels.gibbs_sweeps(jax.random.key(2), rbm, start, 5)
    index = {tuple(x): i for i, x in enumerate(xs)}
    counts = np.bincount([index[tuple(x)] for x in np.asarray(moved)], minlength=len(xs))
    assert stats.chisquare(counts, p * counts.sum()).pvalue > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("visible, hidden", [("potts", "binary"), ("binary", "gaussian"), ("binary", "drelu")])
def test_ais_of_new_pairs_is_within_0_05_nats_of_exact(visible, hidden):
    rng = np.random.default_rng(6)
    rbm = ep.RBM.init(jax.random.key(0), _random_layer(visible, 8, rng), _random_layer(hidden, 4, rng), scale=0.5)
    exact = float(ep.log_partition(rbm))
    est = ep.ais(jax.random.key(1), rbm, num_chains=200, num_temperatures=1000)
    assert abs(est.log_z - exact) < 0.05, (est, exact)


def test_generic_rbm_saves_loads_and_refuses_bad_layers(tmp_path):
    rbm = ep.RBM.init(jax.random.key(0), L.Potts.standard(5, num_categories=4), L.DReLU.standard(3), scale=0.3)
    assert rbm.W.shape == (5, 4, 3) and rbm.support == ep.potentials.supports.categorical(4)
    ep.save(tmp_path / "rbm.ebm", rbm)
    back = ep.load(tmp_path / "rbm.ebm")
    np.testing.assert_array_equal(back.W, rbm.W)
    assert type(back.hidden) is DReLU and type(back.visible) is Potts
    with pytest.raises(ValueError, match="must be states 0 .. 3"):
        rbm.energy(jnp.array([0.0, 1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="precision"):
        ep.RBM(L.Binary.standard(2), Gaussian(jnp.zeros(2), jnp.array([1.0, -1.0])), jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"W must have shape \(2, 3\)"):
        ep.RBM(L.Binary.standard(2), L.Binary.standard(3), jnp.zeros((3, 2)))


def test_layer_parameters_must_have_the_layers_shape():
    """A parameter of another shape than the layer's, ``(size,)`` (``(sites, q >= 2)`` for Potts),
    is refused when the layer is built, naming the layer, the parameter and both shapes: a
    ``(1,)`` bias or ``(4, 1)`` precision broadcast silently, a ``(5,)`` precision on 4 units was
    saved and loaded, a 0-d bias or a 1-D Potts bias failed later with an IndexError."""
    bad = [(lambda: DReLU(jnp.zeros(3), jnp.zeros(1), jnp.ones(3), jnp.ones(3)), r"DReLU: parameter bias_neg has shape \(1,\), but bias_pos has \(3,\)"),
           (lambda: Gaussian(jnp.zeros(4), 2 * jnp.ones((4, 1))), r"Gaussian: parameter precision has shape \(4, 1\), but bias has \(4,\)"),
           (lambda: Gaussian(jnp.zeros(4), jnp.ones(5)), r"Gaussian: parameter precision has shape \(5,\)"),
           (lambda: Binary(jnp.zeros((4, 1))), r"Binary: parameter bias must have shape \(size,\).*got \(4, 1\)"),
           (lambda: Binary(jnp.zeros(())), r"Binary: parameter bias must have shape \(size,\).*got \(\)"),
           (lambda: Potts(jnp.zeros(4)), r"Potts: parameter bias must have shape \(sites, states\), got \(4,\)"),
           (lambda: Potts(jnp.zeros((4, 1))), r"Potts: bias must have shape \(sites, q\) with q >= 2")]
    for build, message in bad:
        with pytest.raises(ValueError, match=message):
            build()
    # shapes are static: layers are still built inside compiled code
    assert jax.jit(lambda b: Gaussian(b, jnp.ones(4)).mean(b))(jnp.ones(4)).shape == (4,)


@pytest.mark.parametrize("size", [-3, 0, 2.5, "4", True])
def test_standard_layers_need_a_positive_integer_size(size):
    """``standard(-3)`` failed in a JAX broadcast, ``standard(2.5)`` gave 2 units, ``standard(0)``
    an RBM whose sampler divided by zero."""
    for cls in (Binary, Gaussian, DReLU):
        with pytest.raises(ValueError, match=rf"{cls.__name__}\.standard: size must be a positive integer"):
            cls.standard(size)
    with pytest.raises(ValueError, match="num_categories must be an integer >= 2"):
        Potts.standard(3, num_categories=2.5)


def test_rbm_refuses_a_layer_of_no_units_bad_data_and_a_negative_scale():
    with pytest.raises(ValueError, match="RBM: the visible layer Binary has no units"):
        ep.RBM(Binary(jnp.zeros(0)), Binary.standard(3), jnp.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"RBM.init: data must have shape \(N, 4\).*got \(4,\)"):
        ep.RBM.init(jax.random.key(0), Binary.standard(4), Binary.standard(3), data=jnp.ones(4))
    with pytest.raises(ValueError, match="RBM.init: scale must be >= 0"):
        ep.RBM.init(jax.random.key(0), Binary.standard(4), Binary.standard(3), scale=-1.0)
