"""Forward and reverse AIS against exact log Z (analytic and enumerated), unbiasedness in Z."""

import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.partition import exact_samples


def _rbm(n_visible=64, n_hidden=16, scale=1.0, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return ep.BernoulliRBM(scale * jax.random.normal(k1, (n_visible, n_hidden)),
                           0.3 * jax.random.normal(k2, (n_visible,)), 0.3 * jax.random.normal(k3, (n_hidden,)))


def _close(est, exact, nats, sigmas=3.0):
    err = est.log_z - exact
    assert abs(err) < nats, f"{est} vs exact {exact:.4f}: error {err:.4f} > {nats}"
    assert abs(err) < sigmas * est.stderr + 1e-3, f"{est}: error {err:.4f} > {sigmas} s.e."


@pytest.mark.slow
def test_forward_ais_on_a_64d_gaussian():
    """Exact: D/2 log 2 pi + 1/2 log det Sigma. 500 chains x 10,000 temperatures of MALA give a
    standard error near 0.01, so both 0.05 nats and 3 s.e. are demanding."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(64, 64)) / 8
    cov = A @ A.T + np.diag(np.linspace(0.3, 2.0, 64))
    g = ep.Gaussian(np.linspace(-1, 1, 64), cov)
    est = ep.ais(jax.random.key(0), g, num_chains=500, num_temperatures=10_000)
    assert est.bound == "lower" and est.log_weights.shape == (500,) and est.log_weight_var.shape == (10_000,)
    _close(est, float(ep.log_partition(g)), 0.05)


@pytest.mark.slow
def test_forward_and_reverse_ais_on_a_coupled_64x16_rbm():
    """W ~ N(0, 1): strongly coupled and multimodal. Exact log Z by enumerating 2^16 hidden states."""
    rbm = _rbm()
    exact = float(ep.log_partition(rbm))
    forward = ep.ais(jax.random.key(1), rbm, num_chains=500, num_temperatures=20_000)
    _close(forward, exact, 0.05)
    start = exact_samples(jax.random.key(2), rbm, 500)
    reverse = ep.reverse_ais(jax.random.key(3), rbm, start, exact=True, num_temperatures=20_000)
    assert reverse.bound == "upper"
    _close(reverse, exact, 0.05)
    both = ep.sandwich(forward, reverse, rbm, start[:50])
    assert abs(both.gap) < 0.1
    assert both.mean_log_likelihood_upper == pytest.approx(
        float(ep.log_likelihood(rbm, start[:50], forward).mean()), abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gaussian_bernoulli_rbm", "subspace_rbm", "boltzmann"])
def test_ais_on_the_other_families_matches_exact_log_z(family):
    key = jax.random.key(4)
    model = {
        "gaussian_bernoulli_rbm": lambda: ep.GaussianBernoulliRBM.init(key, 20, 10, scale=0.5),
        "subspace_rbm": lambda: ep.SubspaceRBM.init(key, 16, 4, 2, scale=0.8),
        "boltzmann": lambda: ep.BoltzmannMachine.init(key, 16, scale=0.5),
    }[family]()
    est = ep.ais(jax.random.key(5), model, num_chains=300, num_temperatures=5_000)
    _close(est, float(ep.log_partition(model)), 0.05)


@pytest.mark.parametrize("support", ["binary", "spin", "real"])
def test_ais_on_energies_with_hard_constraints(support):
    """E = +inf on part of the space (a hard constraint). Base draws there have weight 0 and keep
    it; before, 0 * inf at beta = 0 and -inf - -inf made half the log-weights NaN. Exact: for
    binary sum_{x1, x2} e^{-x1-x2}, for spins with x0 = -1 fixed sum e^{-(x0+x1+x2)/2}, for the
    real square wall log 4; within 3 s.e. for fixed seeds (the weights of the dead chains
    are -inf, the rest have no NaN)."""
    if support == "real":
        model = ep.potential(lambda x: jnp.where(jnp.all(jnp.abs(x) <= 1), 0.0, jnp.inf), event_shape=(2,),
                             support="real")
        exact, kwargs = math.log(4.0), dict(num_chains=500, num_temperatures=100)
    else:
        scale = 1.0 if support == "binary" else 0.5
        model = ep.potential(lambda x: jnp.where(x[0] > 0, jnp.inf, scale * jnp.sum(x)), event_shape=(3,),
                             support=support)
        exact, kwargs = float(ep.log_partition(model)), dict(num_chains=300, num_temperatures=100)
        assert exact == pytest.approx(2 * math.log1p(math.exp(-1)) if support == "binary"
                                      else 0.5 + 2 * math.log(2 * math.cosh(0.5)), rel=1e-6)
    for seed in range(3):
        est = ep.ais(jax.random.key(seed), model, **kwargs)
        weights = np.asarray(est.log_weights)
        assert not np.isnan(weights).any() and np.isneginf(weights).any()
        assert np.isfinite(est.log_weight_var).all()  # over the chains of nonzero weight
        assert abs(est.log_z - exact) < 3 * est.stderr, (est, exact)
    tempering = importlib.import_module("ebm_ppl.moves.tempering")
    mixture = tempering.Mixture(ep.potential(lambda x: jnp.sum(x ** 2), event_shape=model.event_shape,
                                             support=support), model, jnp.zeros(()))
    wall = jnp.full(model.event_shape, 2.0) if support == "real" else jnp.ones(model.event_shape)
    assert float(mixture.energy(wall)) == float(jnp.sum(wall ** 2))  # beta = 0: the base alone, not NaN


def test_ais_is_unbiased_in_z():
    """E[Z_hat / Z] = 1 for any schedule. 4000 chains of a short (50-temperature) run, grouped into
    400 independent runs of 10 chains; their mean of Z_hat / Z must be 1 within 4 standard errors
    of that mean. A biased estimator (the log-space mean, which Jensen pulls down) fails it."""
    rbm = _rbm(10, 6, scale=1.0, seed=1)
    exact = float(ep.log_partition(rbm))
    est = ep.ais(jax.random.key(6), rbm, num_chains=4000, num_temperatures=50)
    ratios = np.exp(est.base_log_z + est.log_weights.reshape(400, 10).astype(np.float64) - exact).mean(1)
    se = ratios.std(ddof=1) / math.sqrt(len(ratios))
    assert abs(ratios.mean() - 1) < 4 * se, (ratios.mean(), se)
    # and the test has power: the log of each run's estimate is biased low by a detectable amount
    assert np.mean(np.log(ratios)) < -2 * np.std(np.log(ratios)) / math.sqrt(len(ratios))


def test_base_rate_model_from_data_and_health_outputs():
    rbm = _rbm(12, 5, seed=2)
    data = np.asarray(exact_samples(jax.random.key(7), rbm, 300))
    est = ep.ais(jax.random.key(8), rbm, num_chains=50, num_temperatures=500, data=data)
    base = ep.partition.factorized_base(rbm, jnp.asarray(data))
    p = (data.sum(0) + 1) / (len(data) + 2)
    np.testing.assert_allclose(jax.nn.sigmoid(base.b), p, rtol=1e-5)
    assert est.base_log_z == pytest.approx(float(ep.log_partition(base)), abs=1e-4)
    assert est.log_weight_var[-1] == pytest.approx(np.var(est.log_weights), rel=1e-4)
    assert est.log_weight_var[0] < est.log_weight_var[-1]
    assert 1 <= est.ess <= 50 and est.wall_time > 0 and "log Z" in str(est)
    assert est.schedule[0] == 0 and est.schedule[-1] == 1


def test_degenerate_weights_warn():
    rbm = _rbm(16, 8, scale=2.0, seed=3)
    with pytest.warns(RuntimeWarning, match="degenerate"):
        ep.ais(jax.random.key(9), rbm, num_chains=100, num_temperatures=10)


def test_same_key_same_estimate():
    rbm = _rbm(8, 4)
    a = ep.ais(jax.random.key(1), rbm, num_chains=20, num_temperatures=100)
    b = ep.ais(jax.random.key(1), rbm, num_chains=20, num_temperatures=100)
    np.testing.assert_array_equal(a.log_weights, b.log_weights)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(schedule=[0.1, 0.5, 1.0]), "start at 0 and end at 1"),
        (dict(schedule=[0.0, 0.5, 0.9]), "start at 0 and end at 1"),
        (dict(schedule=[0.0, 0.6, 0.4, 1.0]), "strictly increasing"),
        (dict(schedule=[0.0, np.nan, 1.0]), "NaN"),
        (dict(num_chains=1), "num_chains must be an integer >= 2"),
        (dict(num_temperatures=3), "num_temperatures must be an integer >= 10"),
        (dict(kernel="nuts"), "Gibbs"),
        (dict(data=np.full((5, 8), 0.5)), "binary"),
        (dict(base=ep.BernoulliRBM.init(jax.random.key(0), 8, 3)), "target's shapes"),
        (dict(schedule="adaptiv"), "or 'adaptive'"),
    ],
)
def test_bad_input_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ep.ais(jax.random.key(0), _rbm(8, 4), **kwargs)


def test_reverse_ais_input_checks_and_exact_samples_limits():
    rbm = _rbm(8, 4)
    with pytest.raises(ValueError, match="start"):
        ep.reverse_ais(jax.random.key(0), rbm, np.zeros(8))
    with pytest.raises(ValueError, match="binary"):
        ep.reverse_ais(jax.random.key(0), rbm, np.full((4, 8), 0.5))
    approx = ep.reverse_ais(jax.random.key(0), rbm, np.zeros((4, 8)), num_temperatures=20)
    assert approx.bound == "approximate upper"
    with pytest.raises(ValueError, match="not available"):
        exact_samples(jax.random.key(0), ep.JEM.init(jax.random.key(0), 4, 2, width=4, depth=1), 3)
    with pytest.raises(ValueError, match="2\\^30"):
        exact_samples(jax.random.key(0), ep.BernoulliRBM.init(jax.random.key(0), 40, 30), 3)
    with pytest.raises(ValueError, match="sandwich takes"):
        ep.sandwich(approx, approx)


@pytest.mark.parametrize("family", ["bernoulli", "gaussian_bernoulli", "potts_binary", "binary_drelu", "spin_potts"])
def test_fused_rbm_path_weights_equal_the_generic_parameter_path(family):
    """RBMPath shares x @ W between the weight and p(h | x); its weight increments must equal the
    generic path's (theta_beta built explicitly, two free energies), also for a base with nonzero
    hidden biases, and its moves must be exact Gibbs sweeps of theta_beta (checked in
    distribution by the AIS accuracy tests above and in tests/potentials/test_layers.py). Potts
    layers (features sites x states) multiply W flattened to a matrix, in the (N, D) layout only."""
    from ebm_ppl.partition.choice import factorized_log_z, make_path
    from ebm_ppl.partition.paths import ParameterPath
    from ebm_ppl.partition.rbm_path import RBMPath

    k = jax.random.split(jax.random.key(5), 4)
    if family == "bernoulli":
        target = _rbm(12, 5, scale=0.7, seed=5)
        base = ep.BernoulliRBM(jnp.zeros((12, 5)), 0.4 * jax.random.normal(k[0], (12,)),
                               0.5 * jax.random.normal(k[1], (5,)))
        xs = jax.random.bernoulli(k[2], 0.5, (30, 12)).astype(jnp.float32)
    elif family in ("potts_binary", "binary_drelu", "spin_potts"):
        rng = np.random.default_rng(5)
        normal = lambda *shape: jnp.asarray(rng.normal(0.0, 1.0, shape), jnp.float32)  # noqa: E731
        positive = lambda *shape: jnp.asarray(rng.uniform(0.5, 2.0, shape), jnp.float32)  # noqa: E731
        L = ep.layers
        visible, hidden = {"potts_binary": (L.Potts(normal(12, 3)), L.Binary(normal(5))),
                           "binary_drelu": (L.Binary(normal(12)), L.DReLU(normal(5), normal(5), positive(5), positive(5))),
                           "spin_potts": (L.Spin(normal(12)), L.Potts(normal(5, 3)))}[family]
        target = ep.RBM.init(k[0], visible, hidden, scale=0.7)
        base_visible = jax.tree.map(lambda a: 0.4 * jax.random.normal(k[1], a.shape), visible)
        base_hidden = jax.tree.map(lambda a: 0.5 * jax.random.normal(k[1], a.shape), hidden) \
            if family != "binary_drelu" else L.DReLU(normal(5), normal(5), hidden.precision_pos, hidden.precision_neg)
        base = ep.RBM(base_visible, base_hidden, jnp.zeros_like(target.W))
        values = {"potts_binary": 3, "binary_drelu": 2, "spin_potts": 2}[family]
        xs = jax.random.randint(k[2], (30, 12), 0, values).astype(jnp.float32)
        xs = 2 * xs - 1 if family == "spin_potts" else xs
    else:
        target = ep.GaussianBernoulliRBM.init(k[0], 12, 5)
        target = ep.GaussianBernoulliRBM(target.W * 2, target.b + 0.3, target.c - 0.2, target.sigma * 1.5)
        base = ep.GaussianBernoulliRBM(jnp.zeros((12, 5)), jnp.full(12, 0.1), 0.5 * jax.random.normal(k[1], (5,)),
                                       target.sigma)
        xs = jax.random.normal(k[2], (30, 12))
    fused = make_path(target, base=base, data=None, kernel=None)
    assert isinstance(fused, RBMPath)
    generic = ParameterPath(base, target, factorized_log_z(base))
    for b0, b1 in [(0.0, 0.3), (0.55, 0.6), (0.99, 1.0), (1.0, 0.9)]:  # forward and reverse steps
        b0, b1 = jnp.float32(b0), jnp.float32(b1)
        _, _, d_g = ParameterPath.anneal_step(generic, k[3], xs, b0, b1, generic.init_aux(12))
        # 30 chains: the (D, N) layout (5 hidden units < 30 chains); 4 chains: the (N, D) layout
        for n, layout in ((30, "transposed"), (4, "rows")):
            path = fused.prepare(n)
            assert path.transposed == (layout == "transposed" and "potts" not in family)
            state = path.to_state(xs[:n])
            x_f, _, d_f = path.anneal_step(path.draws(k[3], state), state, b0, b1, path.init_aux(12))
            x_f = path.from_state(x_f)
            np.testing.assert_allclose(d_f, d_g[:n], rtol=1e-4, atol=1e-4)
            assert x_f.shape == xs[:n].shape and bool(jnp.all(jnp.isfinite(x_f)))


def test_a_new_schedule_length_reuses_the_compiled_program(monkeypatch):
    """Schedules are padded to a power-of-two bucket and the loop length is traced: 100 and 120
    temperatures share one program (bucket 128); the padding never enters the estimate."""
    import importlib

    ais_module = importlib.import_module("ebm_ppl.partition.ais")  # ep.partition.ais is the function
    rbm = _rbm(8, 4, seed=7)
    ep.ais(jax.random.key(1), rbm, num_chains=20, num_temperatures=100)
    size = ais_module._forward.top_level._cached._cache_size()
    b = ep.ais(jax.random.key(1), rbm, num_chains=20, num_temperatures=120)
    assert ais_module._forward.top_level._cached._cache_size() == size
    assert b.log_weight_var.shape == (120,) and b.schedule.shape == (121,)
    monkeypatch.setattr(ais_module, "MIN_BUCKET", 512)  # the same run padded to 512 instead of 128
    c = ep.ais(jax.random.key(1), rbm, num_chains=20, num_temperatures=120)
    np.testing.assert_array_equal(c.log_weights, b.log_weights)
    np.testing.assert_array_equal(c.log_weight_var, b.log_weight_var)


@pytest.mark.slow
def test_reverse_ais_gives_raise_per_example_estimates():
    """From a data point v, exp(start_log_likelihood) is unbiased for q(v), the annealed model's
    probability, which a long schedule makes p(v): its chain mean matches the exact p(v) within
    Monte Carlo error, and the mean of the log estimates lies below log p(v) (Jensen)."""
    rbm = _rbm(10, 5, scale=1.0, seed=11)
    log_z = float(ep.log_partition(rbm))
    points = jnp.asarray(exact_samples(jax.random.key(12), rbm, 3))
    n = 1000
    for i, v in enumerate(points):
        log_p = float(-rbm.energy(v)) - log_z
        rev = ep.reverse_ais(jax.random.key(20 + i), rbm, jnp.broadcast_to(v, (n, 10)), num_temperatures=300)
        ll = rev.start_log_likelihood
        assert ll.shape == (n,)
        w = np.exp(ll - log_p)  # estimates of q(v) / p(v)
        se = w.std() / np.sqrt(n)
        assert abs(w.mean() - 1.0) < 4 * se + 0.01, (w.mean(), se)
        assert ll.mean() <= log_p + 4 * ll.std() / np.sqrt(n)


def test_equal_variance_schedule_equalizes_a_known_profile():
    """A pilot on 0, 0.5, 1 whose second step had 9x the first's variance (3x the thermodynamic
    length): of 8 new steps, 2 go to [0, 0.5] and 6 to [0.5, 1], each of equal length."""
    from ebm_ppl.partition.schedule import equal_variance_schedule

    betas = equal_variance_schedule(np.array([0.0, 0.5, 1.0]), np.array([1.0, 9.0]), 8)
    # floor: rates 1 + 0.002 and 3 + 0.002 (1e-3 of the mean rate 2)
    length = np.array([0.0, 1.002, 4.004])
    expected = np.interp(np.linspace(0, length[-1], 9), length, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(betas, expected)
    assert betas[0] == 0.0 and betas[-1] == 1.0 and np.all(np.diff(betas) > 0)
    assert np.all(np.diff(equal_variance_schedule(np.linspace(0, 1, 5), np.zeros(4), 10)) > 0)


def test_adaptive_schedule_forward_and_reverse():
    """schedule="adaptive" places K + 1 temperatures from a pilot run and the estimate is as good
    as the default's: within 3 standard errors (and 0.1 nats) of the exact log Z of a 16x8 RBM."""
    rbm = _rbm(16, 8, scale=0.5)
    exact = float(ep.log_partition(rbm))
    est = ep.ais(jax.random.key(5), rbm, num_chains=200, num_temperatures=300, schedule="adaptive")
    assert est.schedule.shape == (301,) and est.schedule[0] == 0 and est.schedule[-1] == 1
    assert np.all(np.diff(est.schedule) > 0)
    _close(est, exact, 0.1)
    again = ep.ais(jax.random.key(5), rbm, num_chains=200, num_temperatures=300, schedule="adaptive")
    np.testing.assert_array_equal(again.schedule, est.schedule)
    reverse = ep.reverse_ais(jax.random.key(6), rbm, exact_samples(jax.random.key(7), rbm, 200), exact=True,
                             num_temperatures=300, schedule="adaptive")
    _close(reverse, exact, 0.1)
