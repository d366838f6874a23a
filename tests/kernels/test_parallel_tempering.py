"""Parallel tempering: the swap rule against enumeration, mixing on bimodal models where plain
Gibbs and MALA stay in one mode, the ladder and its adaptation, ``ep.sample``'s statistics, and
bad input."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.kernels import replica_exchange as pt
from ebm_ppl.moves.tempering import ParameterTempering, PowerTempering, TemperatureTempering, tempering
from ebm_ppl.potentials.enumeration import all_binary_states


def _ferromagnet(dim=16, coupling=1.0):
    """A Boltzmann machine with two modes of equal mass, all zeros and all ones (E = 0 for both);
    a single flip out of a mode costs coupling (dim - 1) / 2 = 7.5 nats at dim 16."""
    W = coupling * (jnp.ones((dim, dim)) - jnp.eye(dim))
    return ep.BoltzmannMachine(W, -0.5 * coupling * (dim - 1) * jnp.ones(dim))


def _rbm(scale=2.0, seed=0, shape=(10, 4)):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return ep.BernoulliRBM(scale * jax.random.normal(k1, shape), 0.3 * jax.random.normal(k2, shape[:1]),
                           0.3 * jax.random.normal(k3, shape[1:]))


def _tv_and_bound(xs, potential):
    """Total variation between the states ``xs`` ``(N, D)`` and the exact law, and 2x its expected
    value for N independent exact draws, 1/2 sum_s sqrt(p_s (1 - p_s) / N) (E|p_hat - p| <= sd)."""
    xs = np.asarray(xs)
    d = xs.shape[-1]
    codes = (xs @ (2 ** np.arange(d))).astype(int)
    empirical = np.bincount(codes, minlength=2**d) / codes.size
    with jax.enable_x64(True):
        states = all_binary_states(d)
        exact = np.exp(np.asarray(-potential.energy(states) - potential.log_partition()))
    tv = 0.5 * np.abs(empirical - exact).sum()
    return tv, 2 * 0.5 * np.sum(np.sqrt(exact * (1 - exact) / codes.size))


def _final_states(algorithm, x0, num_chains, num_steps, seed):
    """The positions after ``num_steps`` steps of ``num_chains`` independent chains from ``x0``."""
    def run(key):
        key_init, key_run = jax.random.split(key)
        state = algorithm.init(x0, key_init) if algorithm.init.__code__.co_argcount > 1 else algorithm.init(x0)
        state, _ = jax.lax.scan(lambda s, k: algorithm.step(k, s), state, jax.random.split(key_run, num_steps))
        return state.position

    return jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(seed), num_chains))


def test_pt_mixes_a_bimodal_boltzmann_machine_where_site_gibbs_stays_in_one_mode():
    """16-unit ferromagnet, every chain started in the all-zeros mode, 200 sweeps: the PT draws
    are within 0.03 total variation of the exact law (and within 2x the Monte Carlo expectation
    for 3000 independent draws), single-site Gibbs is above 0.2 (it never leaves its mode: 0.5)."""
    bm = _ferromagnet()
    x0 = jnp.zeros(16)
    algorithm = ep.kernels.parallel_tempering(bm, ep.kernels.parallel_tempering.ladder(8, 0.1))
    xs = _final_states(algorithm, x0, 3000, 200, seed=1)
    tv, bound = _tv_and_bound(xs, bm)
    assert tv < 0.03 and tv < bound, (tv, bound)
    gibbs = _final_states(ep.kernels.site_gibbs(bm), x0, 3000, 200, seed=2)
    tv_gibbs, _ = _tv_and_bound(gibbs, bm)
    assert tv_gibbs > 0.2, tv_gibbs


def test_pt_on_a_strongly_coupled_rbm_matches_enumeration():
    """10x4 RBM with N(0, 4) weights, block Gibbs on every rung of the tempered RBM, swaps with
    the tempered free energy: the beta = 1 replica's law is the exact one (TV within 2x its
    Monte Carlo expectation); a run that swapped with beta F(v) instead would not be exact."""
    rbm = _rbm()
    x0 = jnp.zeros(10)
    algorithm = pt.as_top_level_api(rbm, pt.ladder(6, 0.1))
    xs = _final_states(algorithm, x0, 6000, 100, seed=3)
    tv, bound = _tv_and_bound(xs, rbm)
    assert tv < bound, (tv, bound)
    tv_other, _ = _tv_and_bound(xs, _rbm(seed=1))  # the test has power: another RBM is far off
    assert tv_other > 5 * bound


def test_tempered_rbm_energy_is_the_free_energy_of_the_tempered_joint():
    """Rung beta of an RBM: F_beta(v) = -beta b.v - sum_j softplus(beta (c_j + (v W)_j)), which is
    not beta F(v); the family's energies at several betas equal that formula."""
    rbm = _rbm()
    family = tempering(rbm)
    assert isinstance(family, TemperatureTempering) and family.has_reference
    v = jax.random.bernoulli(jax.random.key(0), 0.5, (10,)).astype(jnp.float32)
    betas = jnp.array([0.0, 0.3, 1.0])
    expected = jnp.stack([-b * (v @ rbm.b) - jnp.sum(jax.nn.softplus(b * (rbm.c + v @ rbm.W))) for b in betas])
    np.testing.assert_allclose(family.energies(v, betas), expected, rtol=1e-5, atol=1e-5)
    assert abs(float(family.energies(v, betas)[1] - 0.3 * rbm.unbatched_energy(v))) > 0.1


@pytest.mark.parametrize("parity", [0, 1])
def test_swap_move_leaves_the_product_of_rungs_invariant_exactly(parity):
    """Three rungs of a 3-unit machine; the swap move of one parity (the base moves aside) maps
    the exact joint law prod_r p_beta_r(x_r) over all 8^3 states onto itself, to 1e-6."""
    with jax.enable_x64(True):
        bm = ep.BoltzmannMachine(jnp.array([[0, 2.0, -1.5], [2.0, 0, 1.0], [-1.5, 1.0, 0]]), jnp.array([0.5, -1.0, 0.2]))
        family = tempering(bm)
        betas = jnp.array([0.0, 0.4, 1.0])
        states = all_binary_states(3)
        log_p = jnp.stack([-family.energies(x, betas) for x in states])  # (8, 3) unnormalized
        log_p = log_p - jax.nn.logsumexp(log_p, axis=0)
        joint = {}
        for idx in itertools.product(range(8), repeat=3):
            joint[idx] = float(jnp.exp(sum(log_p[i, r] for r, i in enumerate(idx))))
        moved = dict.fromkeys(joint, 0.0)
        for idx, mass in joint.items():
            log_a, _ = pt.pair_log_acceptance(family, states[jnp.array(idx)], betas)
            a = float(jnp.exp(jnp.minimum(log_a[parity], 0.0)))
            swapped = list(idx)
            swapped[parity], swapped[parity + 1] = idx[parity + 1], idx[parity]
            moved[idx] += (1 - a) * mass
            moved[tuple(swapped)] += a * mass
        np.testing.assert_allclose(np.array(list(moved.values())), np.array(list(joint.values())), atol=1e-6)


def test_ladder_and_its_adaptation():
    np.testing.assert_allclose(pt.ladder(4, 0.01, reference=False), [0.01, 0.01 ** (2 / 3), 0.01 ** (1 / 3), 1.0],
                               rtol=1e-6)
    np.testing.assert_allclose(pt.ladder(4, 0.01), [0.0, 0.01, 0.1, 1.0], rtol=1e-6)
    # rejection 0.1 then 0.9: the barrier is 0.1 at beta 0.5 and 1.0 at beta 1; its midpoint 0.5
    # lies at beta 0.5 + 0.5 * 0.4 / 0.9 = 0.7222
    new = pt.adapt_ladder(jnp.array([0.0, 0.5, 1.0]), jnp.array([0.9, 0.1]))
    np.testing.assert_allclose(new, [0.0, 0.5 + 0.5 * 0.4 / 0.9, 1.0], rtol=1e-6)
    # equal rates leave a ladder alone; a pair that never rejects still moves its rungs apart
    np.testing.assert_allclose(pt.adapt_ladder(jnp.array([0.0, 0.3, 1.0]), jnp.array([0.6, 0.6])), [0.0, 0.3, 1.0],
                               rtol=1e-6)
    assert bool(jnp.all(jnp.diff(pt.adapt_ladder(jnp.linspace(0, 1, 5), jnp.ones(4))) > 0))


def test_sample_returns_the_beta_one_replica_with_swap_statistics():
    """ep.sample: draws of the top rung with lp = -E(draw), the statistics under their names and
    dimensions, a ladder adapted to nearly equal swap rates with fixed ends, both modes visited,
    the same key giving the same run."""
    bm = _ferromagnet()
    run = lambda: ep.sample(jax.random.key(0), bm, "parallel_tempering", num_chains=2, num_warmup=400,  # noqa: E731
                            num_samples=300, init=jnp.zeros(16))
    dt = run()
    stats = dt.sample_stats
    assert stats.swap_acceptance.dims == ("chain", "draw", "pair") and stats.swap_acceptance.shape[-1] == 7
    assert stats.replica.dims == ("chain", "draw", "rung") and stats.beta.shape == (2, 300, 8)
    x = dt.posterior.x.values
    np.testing.assert_allclose(stats.lp.values, -np.asarray(bm.energy(x)), atol=1e-5)
    beta = stats.beta.values[:, -1]
    assert np.all(beta[:, 0] == 0) and np.all(beta[:, -1] == 1) and np.all(np.diff(beta, axis=1) > 0)
    rates = stats.swap_acceptance.mean("draw").values
    assert rates.min() > 0.4 and rates.max() - rates.min() < 0.25, rates
    assert np.all(np.sort(stats.replica.values, axis=-1) == np.arange(8))
    assert np.all(stats.round_trips.values[:, -1] >= 10)
    ones = x.mean(-1) > 0.5
    assert 0.25 < ones.mean() < 0.75  # both modes (exact: one half)
    np.testing.assert_array_equal(run().posterior.x.values, x)
    # a ladder given is kept as given through warm-up (its rungs are not adapted)
    given = (0.0, 0.2, 0.5, 0.8, 1.0)
    fixed = ep.sample(jax.random.key(0), bm, "parallel_tempering", num_chains=2, num_warmup=100, num_samples=5,
                      init=jnp.zeros(16), betas=given)
    np.testing.assert_allclose(fixed.sample_stats.beta.values, np.broadcast_to(given, (2, 5, 5)), rtol=1e-6)


def test_pt_with_mala_visits_both_modes_of_a_gaussian_mixture():
    """A 2-D mixture of N((-4, 0), 0.5^2 I) and N((4, 0), 0.5^2 I): MALA started at the left mode
    stays there; PT over powers beta E (MALA on every rung, step sizes tuned per rung) puts about
    half of its draws on the right."""
    @ep.potential(support="real", event_shape=(2,))
    def mixture(x):
        left = jnp.sum((x - jnp.array([-4.0, 0.0])) ** 2) / 0.5
        right = jnp.sum((x - jnp.array([4.0, 0.0])) ** 2) / 0.5
        return -jnp.logaddexp(-left, -right)

    start = jnp.array([-4.0, 0.0])
    dt = ep.sample(jax.random.key(1), mixture, "parallel_tempering", num_chains=2, num_warmup=600, num_samples=600,
                   num_replicas=8, min_beta=0.01, init=start)
    right = (dt.posterior.x.values[..., 0] > 0).mean()
    assert 0.3 < right < 0.7, right
    assert "step_size" in dt.sample_stats
    mala = ep.sample(jax.random.key(1), mixture, "mala", num_chains=2, num_warmup=300, num_samples=600, init=start)
    assert (mala.posterior.x.values[..., 0] > 0).mean() < 0.01


def test_pt_on_a_bounded_support_runs_on_the_unconstrained_space():
    @ep.potential(support=ep.box(0.0, 1.0), event_shape=(2,))
    def bowl(x):
        return 3.0 * jnp.sum((x - 0.5) ** 2)

    dt = ep.sample(jax.random.key(2), bowl, "parallel_tempering", num_chains=2, num_warmup=100, num_samples=100,
                   num_replicas=4)
    x = dt.posterior.x.values
    assert np.all((x > 0) & (x < 1))
    np.testing.assert_allclose(dt.sample_stats.lp.values, -np.asarray(bowl.energy(x)), atol=1e-5)


def test_default_references():
    k = jax.random.key(0)
    assert isinstance(tempering(_rbm()), TemperatureTempering)
    gb = ep.GaussianBernoulliRBM.init(k, 4, 3)
    assert isinstance(tempering(gb), ParameterTempering)  # no tempered form: the AIS base
    assert isinstance(tempering(ep.Gaussian.standard(2)), PowerTempering)
    assert not tempering(ep.Gaussian.standard(2)).has_reference
    power = tempering(_rbm(), "power")
    assert isinstance(power, PowerTempering) and power.has_reference  # beta = 0 is uniform on {0, 1}^D
    assert pt.default_base_kernel(power) == "site_gibbs" and pt.default_base_kernel(tempering(_rbm())) == "block_gibbs"


@pytest.mark.parametrize("options, message", [
    ({"base_kernel": "nuts"}, "base_kernel must be one of"),
    ({"base_kernel": "block_gibbs"}, "needs block conditionals"),
    ({"base_kernel": "mala"}, "does not sample"),
    ({"betas": (0.0, 0.7, 0.5, 1.0)}, "strictly ascending"),
    ({"betas": (0.0, 0.5, 0.9)}, "last beta must be 1"),
    ({"betas": (-0.5, 0.5, 1.0)}, "lowest beta"),
    ({"betas": (0.5j, 1.0)}, "real numbers"),
    ({"betas": 1.0}, "1-d sequence"),
    ({"num_replicas": 1}, "num_replicas"),
    ({"min_beta": 1.5}, "min_beta must be in"),
    ({"reference": "cold"}, "reference must be one of"),
])
def test_bad_options_are_refused_at_the_boundary(options, message):
    with pytest.raises(ValueError, match=message):
        ep.sample(jax.random.key(0), _ferromagnet(4), "parallel_tempering", num_samples=2, num_warmup=0, **options)


def test_continuous_potential_refuses_a_zero_beta_and_a_base_reference():
    g = ep.Gaussian.standard(2)
    with pytest.raises(ValueError, match="lowest beta must be > 0"):
        ep.sample(jax.random.key(0), g, "parallel_tempering", betas=(0.0, 1.0), num_samples=2, num_warmup=0)
    with pytest.raises(ValueError, match="reference='power'"):
        ep.sample(jax.random.key(0), g, "parallel_tempering", reference="base", num_samples=2, num_warmup=0)


@pytest.mark.parametrize("reference", [None, "base", "power"])
def test_every_family_ends_at_the_target_and_starts_at_its_reference(reference):
    """beta = 1 is the target itself (same energies) for every default family; beta = 0 of a
    family with a proper reference has no couplings (its log Z is the closed form)."""
    k = jax.random.key(0)
    models = [_rbm(), ep.GaussianBernoulliRBM.init(k, 4, 3), _ferromagnet(5), ep.ClassRBM.init(k, 6, 3, 2)]
    for model in models:
        if reference == "base" and not hasattr(model, "base_model"):
            continue
        family = tempering(model, reference)
        x = model.initial_positions(jax.random.key(1), 3)
        np.testing.assert_allclose(jax.vmap(lambda xi: family.energies(xi, jnp.ones(1))[0])(x),
                                   model.energy(x), rtol=1e-5, atol=1e-5)
        log_z0 = family.reference_log_partition()
        if log_z0 is not None and not model.support.continuous:
            zero = family.at(jnp.zeros(()))
            states = ep.potentials.enumeration.index_to_states(jnp.arange(2 ** model.event_shape[0]), (0.0, 1.0),
                                                               model.event_shape[0])
            brute = jax.nn.logsumexp(-jax.vmap(zero.unbatched_energy)(states))
            np.testing.assert_allclose(log_z0, brute, rtol=1e-5)


def test_pt_builds_and_steps_inside_jit_on_a_model_with_concrete_parameters():
    """The model's parameters are concrete arrays closed over by the jitted function (its
    finiteness check runs in NumPy, never on a tracer)."""
    gb = ep.GaussianBernoulliRBM.init(jax.random.key(1), n_visible=3, n_hidden=4, scale=1.0)

    @jax.jit
    def run(key):
        algo = pt.as_top_level_api(gb, pt.ladder(4, 0.2))
        return algo.step(key, algo.init(jnp.zeros(3), key))[0].position

    assert np.all(np.isfinite(run(jax.random.key(0))))


def _box_mean_and_mcse(x):
    """The mean of draws ``(chain, draw)`` and its Monte Carlo standard error, sd / sqrt(ESS)
    (NumPyro's effective sample size over the chains)."""
    from numpyro.diagnostics import effective_sample_size

    x = np.asarray(x, np.float64)
    return x.mean(), x.std() / np.sqrt(effective_sample_size(x))


def test_low_level_pt_with_mala_samples_a_box_through_its_bijection():
    """E(x) = 2 x on box(0, 1): the exact mean is 1/a - 1/(e^a - 1) = 0.3435 (a = 2). MALA on every
    rung runs on R^D through the box's bijection (log-Jacobian included), so every draw of the
    beta = 1 replica is in the box and their mean is within 4 Monte Carlo standard errors of the
    exact one (4 chains x 2000 steps, ESS about 3000); info.energy is E(x) on the box. Before,
    MALA ran on the box's coordinates and the chain drifted to -inf."""
    a = 2.0
    exact = 1 / a - 1 / np.expm1(a)
    u = ep.potential(lambda x: a * jnp.sum(x), event_shape=(1,), support=ep.box(0.0, 1.0))
    algo = pt.as_top_level_api(u, pt.ladder(4, 0.2, reference=False), step_size=0.5)

    def chain(key):
        key_init, key_run = jax.random.split(key)
        state = algo.init(jnp.array([0.5]), key_init)
        assert state.position.shape == (1,)

        def body(state, k):
            state, info = algo.step(k, state)
            return state, (state.position[0], info.energy)

        return jax.lax.scan(body, state, jax.random.split(key_run, 2000))[1]

    x, energy = jax.jit(jax.vmap(chain))(jax.random.split(jax.random.key(0), 4))
    assert np.all((np.asarray(x) >= 0) & (np.asarray(x) <= 1))
    np.testing.assert_allclose(energy, a * np.asarray(x), rtol=1e-5)
    mean, mcse = _box_mean_and_mcse(x)
    assert abs(mean - exact) < 4 * mcse, (mean, exact, mcse)
    with pytest.raises(ValueError, match="pass the potential itself"):
        pt.as_top_level_api(tempering(u), pt.ladder(4, 0.2, reference=False))


def test_low_level_pt_checks_its_position_and_step_size():
    """The constructor and init refuse, naming themselves, what ep.sample refuses: a position of
    the wrong shape (one point or one per rung), not on the support (0.5 on a binary model, 0/1 on
    a spin model), NaN; a step size <= 0, or one given to a base kernel that takes none."""
    key = jax.random.key(0)
    bm = _ferromagnet(6, 0.3)
    algo = pt.as_top_level_api(bm, pt.ladder(4, 0.2))
    for position, message in [(jnp.zeros(5), r"has shape \(5,\); expected \(6,\) .* or \(4, 6\)"),
                              (jnp.zeros((3, 6)), r"has shape \(3, 6\)"),
                              (0.5 * jnp.ones(6), "must be binary"),
                              (jnp.full(6, jnp.nan), "contains 6 NaN")]:
        with pytest.raises(ValueError, match="parallel_tempering.init: position " + message):
            algo.init(position, key)
    assert algo.init(jnp.zeros((4, 6)), key).replicas.position.shape == (4, 6)  # one row per rung
    spin = ep.potential(lambda x: -0.3 * jnp.sum(x), event_shape=(3,), support="spin")
    with pytest.raises(ValueError, match="parallel_tempering.init: position must be spins"):
        pt.as_top_level_api(spin, pt.ladder(4, 0.2)).init(jnp.zeros(3), key)
    g = ep.Gaussian.standard(2)
    ladder = pt.ladder(4, 0.2, reference=False)
    for step_size in (-1.0, 0.0, float("nan"), [0.1, 0.1], [0.1, -0.1, 0.1, 0.1]):
        with pytest.raises(ValueError, match="parallel_tempering: step_size must be"):
            pt.as_top_level_api(g, ladder, step_size=step_size)
    pt.as_top_level_api(g, ladder, step_size=[0.1, 0.2, 0.3, 0.4])  # one per rung
    with pytest.raises(ValueError, match="parallel_tempering: step_size must be"):
        pt.as_top_level_api(spin, pt.ladder(4, 0.2), base_kernel="discrete_langevin", step_size=-1.0)
    with pytest.raises(ValueError, match="base_kernel 'site_gibbs' takes no step_size"):
        pt.as_top_level_api(bm, pt.ladder(4, 0.2), step_size=0.5)
    # a traced position (inside jit) is checked for shape only, and runs
    positions = jax.jit(lambda x: algo.init(x, key).replicas.position)(jnp.ones(6))
    np.testing.assert_array_equal(positions, np.ones((4, 6)))


@pytest.mark.parametrize("base_kernel", [None, "site_gibbs"])
def test_sample_refuses_a_step_size_its_gibbs_base_kernel_ignores(base_kernel):
    """docs/sampling.md: an option a kernel does not take raises a ValueError; parallel tempering's
    step_size over a Gibbs base kernel was silently ignored (the draws were bit-identical)."""
    options = {} if base_kernel is None else {"base_kernel": base_kernel}
    with pytest.raises(ValueError, match=r"sample: parallel_tempering: base_kernel '(block|site)_gibbs' takes no "
                                         "step_size"):
        ep.sample(jax.random.key(0), _ferromagnet(4) if base_kernel else _rbm(), "parallel_tempering",
                  step_size=1e6, num_samples=2, num_warmup=0, **options)
