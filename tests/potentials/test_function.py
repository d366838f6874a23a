"""Potentials from plain functions (ep.potential): exact log Z, AIS, sampling and saving against
exact answers by enumeration and quadrature, and the errors a user meets first."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import textwrap

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep

SCALE = 0.5  # double well E(x) = sum_i (x_i^2 - 1)^2 / SCALE: modes at +-1, barrier height 2


def _double_well(x):
    return jnp.sum((x**2 - 1.0) ** 2) / SCALE


def _well_quadrature():
    """Per coordinate: log of the integral of exp(-(t^2 - 1)^2 / SCALE) and its moments, by the
    trapezoid rule on [-4, 4] (the integrand is below 1e-60 outside), error far below 1e-8."""
    t = np.linspace(-4.0, 4.0, 400_001)
    w = np.exp(-((t**2 - 1.0) ** 2) / SCALE)
    z = np.trapezoid(w, t)
    return math.log(z), np.trapezoid(w * t**2, t) / z


def _ising(J=0.3, h=0.0):
    def energy(params, s):
        spins = 2.0 * s - 1.0
        bonds = spins * (jnp.roll(spins, 1, axis=0) + jnp.roll(spins, 1, axis=1))
        return -params["J"] * jnp.sum(bonds) - params["h"] * jnp.sum(spins)

    return ep.potential(energy, event_shape=(4, 4), support="binary", params={"J": J, "h": h})


def _ising_brute_force(model):
    """All 2^16 states: log Z and each state's probability (numpy float64)."""
    states = np.array(list(itertools.product([0.0, 1.0], repeat=16)), np.float32).reshape(-1, 4, 4)
    log_w = -np.asarray(model.energy(states), np.float64)
    log_z = float(np.logaddexp.reduce(log_w))
    return states, log_z, np.exp(log_w - log_z)


def test_a_plain_function_is_a_potential_batched_like_every_family():
    well = ep.potential(_double_well, event_shape=(2,))
    assert isinstance(well, ep.Potential) and well.support == ep.Support.REAL and well.event_shape == (2,)
    x = jnp.array([[0.0, 1.0], [2.0, -1.0], [1.0, 1.0]])
    np.testing.assert_allclose(well.energy(x), [2.0, 18.0, 0.0])
    assert well.energy(jnp.zeros((5, 3, 2))).shape == (5, 3)
    np.testing.assert_allclose(well.logdensity_fn()(x[1]), -18.0)


def test_the_decorator_form_and_params():
    @ep.potential(event_shape=(3,), support="binary", params={"b": jnp.array([0.5, -1.0, 2.0])})
    def field(params, x):
        return -jnp.sum(params["b"] * x)

    np.testing.assert_allclose(field.energy(jnp.ones(3)), -1.5)
    exact = float(jnp.sum(jnp.logaddexp(0.0, jnp.array([0.5, -1.0, 2.0]))))
    np.testing.assert_allclose(float(ep.log_partition(field)), exact, rtol=1e-6)


@pytest.mark.slow
def test_double_well_ais_and_nuts_against_quadrature():
    """AIS log Z within 0.05 nats and 3 standard errors of quadrature; NUTS's E[x^2] within 4
    Monte Carlo standard errors (ArviZ's mcse)."""
    well = ep.potential(_double_well, event_shape=(2,))
    log_z1, second_moment = _well_quadrature()
    est = ep.ais(jax.random.key(0), well, num_chains=400, num_temperatures=1000)
    assert abs(est.log_z - 2 * log_z1) < max(0.05, 3 * est.stderr) and abs(est.log_z - 2 * log_z1) < 0.05
    idata = ep.sample(jax.random.key(1), well, "nuts", num_chains=4, num_samples=1500)
    x2 = idata.posterior["x"].values ** 2
    mcse = az.mcse(az.from_dict({"posterior": {"x2": x2}}))["x2"].values
    np.testing.assert_array_less(np.abs(x2.mean((0, 1)) - second_moment), 4 * mcse)


def test_ising_exact_log_z_and_exact_samples_by_enumeration():
    """Exact log Z equals brute force to 1e-5 (with and without a field); exact samples' state
    frequencies pass a chi-square test against the exact probabilities (p > 0.001)."""
    from scipy import stats

    for h in (0.0, 0.2):
        model = _ising(h=h)
        _, log_z, p = _ising_brute_force(model)
        assert abs(float(ep.log_partition(model)) - log_z) < 1e-5 * abs(log_z)
    draws = np.asarray(ep.partition.exact_samples(jax.random.key(0), model, 20_000))
    index = draws.reshape(-1, 16).astype(np.int64) @ (1 << np.arange(16)[::-1])
    counts = np.bincount(index, minlength=2**16)
    big = p * 20_000 >= 5  # chi-square over the states expected at least 5 times, the rest pooled
    observed = np.append(counts[big], counts[~big].sum())
    expected = np.append(p[big], p[~big].sum()) * 20_000
    assert stats.chisquare(observed, expected).pvalue > 1e-3


@pytest.mark.slow
def test_ising_forward_and_reverse_ais_sandwich_the_exact_log_z():
    model = _ising(J=0.3, h=0.2)
    _, log_z, _ = _ising_brute_force(model)
    forward = ep.ais(jax.random.key(0), model, num_chains=200, num_temperatures=500)
    start = ep.partition.exact_samples(jax.random.key(1), model, 200)
    reverse = ep.reverse_ais(jax.random.key(2), model, start, exact=True, num_temperatures=500)
    assert forward.bound == "lower" and reverse.bound == "upper"
    for est in (forward, reverse):
        assert abs(est.log_z - log_z) < 0.05, (est, log_z)


@pytest.mark.slow
def test_box_supported_energy_has_the_analytic_log_z_and_moments():
    """A Beta(2, 3)-shaped energy on box(0, 1)^2: Z = B(2, 3)^2 = 1/144, so the log-Jacobian of
    the bijection must be counted exactly once; NUTS draws stay in the box with the Beta's mean
    and variance (0.4 and 0.04) within 4 Monte Carlo standard errors."""
    beta = ep.potential(lambda x: -jnp.sum(jnp.log(x) + 2.0 * jnp.log1p(-x)), event_shape=(2,),
                        support=ep.box(0.0, 1.0))
    est = ep.ais(jax.random.key(0), beta, num_chains=300, num_temperatures=1000)
    assert abs(est.log_z - 2 * math.log(1 / 12)) < max(0.05, 3 * est.stderr)
    idata = ep.sample(jax.random.key(1), beta, "nuts", num_chains=4, num_samples=1000)
    x = idata.posterior["x"].values
    assert x.min() > 0.0 and x.max() < 1.0
    mcse = az.mcse(idata)["x"].values
    np.testing.assert_array_less(np.abs(x.mean((0, 1)) - 0.4), 4 * mcse)
    np.testing.assert_allclose(x.reshape(-1, 2).var(0), 0.04, rtol=0.15)


def test_a_function_potential_trains_saves_and_loads(tmp_path):
    """PCD trains a function's params (autodiff of the free-energy gap); ep.save stores them;
    ep.load rebuilds the potential through the registry (name=) or with like=."""
    data = (np.random.default_rng(0).random((200, 6)) < np.linspace(0.1, 0.9, 6)).astype(np.float32)
    model = ep.potential(lambda p, x: -jnp.sum(p["b"] * x), event_shape=(6,), support="binary",
                         params={"b": np.zeros(6, np.float32)}, name="test_function_fields")
    trained, _ = ep.fit(model, data, ep.training.pcd(k=1, num_chains=50), key=jax.random.key(0), epochs=30,
                        batch_size=50, metrics=False, optimizer=__import__("optax").sgd(0.2))
    marginal = jax.nn.sigmoid(trained.params["b"])
    np.testing.assert_allclose(marginal, data.mean(0), atol=0.12)
    ep.save(tmp_path / "f.ebm", trained)
    loaded = ep.load(tmp_path / "f.ebm")
    np.testing.assert_array_equal(loaded.params["b"], trained.params["b"])
    np.testing.assert_array_equal(ep.load(tmp_path / "f.ebm", like=model).params["b"], trained.params["b"])
    script = textwrap.dedent(f"""
        import ebm_ppl as ep
        try:
            ep.load({str(tmp_path / 'f.ebm')!r})
        except ValueError as err:
            print(err)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "a potential made from the function" in out.stdout and "name='test_function_fields'" in out.stdout


def test_bad_functions_and_bare_functions_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="must return a real scalar for one example of shape \\(2,\\), got shape \\(2,\\)"):
        ep.potential(lambda x: x**2, event_shape=(2,))
    with pytest.raises(ValueError, match="fails on one example of shape \\(3,\\)"):
        ep.potential(lambda x: x @ jnp.ones(4), event_shape=(3,))
    with pytest.raises(ValueError, match="unknown support"):
        ep.potential(_double_well, event_shape=(2,), support="positive")
    with pytest.raises(TypeError, match=r"got the function _double_well; wrap it as ep.potential\(_double_well"):
        ep.sample(jax.random.key(0), _double_well)
    with pytest.raises(TypeError, match="ep.potential"):
        ep.ais(jax.random.key(0), _double_well)
    well = ep.potential(_double_well, event_shape=(2,), support=ep.box(-1, 1))
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        well.energy(jnp.array([0.5, 2.0]))
    with pytest.raises(ValueError, match="2\\^40 terms"):
        ep.log_partition(ep.potential(lambda x: jnp.sum(x), event_shape=(40,), support="binary"))


def test_a_file_of_another_function_under_the_same_name_is_refused(tmp_path):
    """Two energies registered under one name: the second replaces the first (with a warning),
    and a file saved from the first is refused instead of loading with the second's energy."""
    def square(p, x):
        return p["s"] * jnp.sum(x**2)

    def absolute(p, x):
        return p["s"] * jnp.sum(jnp.abs(x))

    first = ep.potential(square, event_shape=(2,), params={"s": 1.0}, name="test_function_same_name")
    ep.save(tmp_path / "first.ebm", first)
    with pytest.warns(UserWarning, match="files saved from the first will not load"):
        ep.potential(absolute, event_shape=(2,), params={"s": 1.0}, name="test_function_same_name")
    with pytest.raises(ValueError, match=r"made from the function .*square; the registered .* is .*absolute"):
        ep.load(tmp_path / "first.ebm")
    np.testing.assert_allclose(ep.load(tmp_path / "first.ebm", like=first).energy(jnp.array([2.0, 0.0])), 4.0)
    with pytest.warns(UserWarning, match="made from the function .*absolute and is now made from .*square"):
        again = ep.potential(square, event_shape=(2,), params={"s": 1.0}, name="test_function_same_name")
    assert float(ep.load(tmp_path / "first.ebm").energy(jnp.array([2.0, 0.0]))) == 4.0 == float(again.energy(
        jnp.array([2.0, 0.0])))


def test_a_file_saved_by_a_script_loads_where_the_script_is_imported(tmp_path):
    """Saved from ``python train_mod.py`` (the function is ``__main__.chain``) and loaded where
    ``train_mod`` is imported (``train_mod.chain``): the same function, so it loads; like= names
    the code to use whatever the file calls it."""
    (tmp_path / "train_mod.py").write_text(textwrap.dedent("""
        import jax.numpy as jnp
        import ebm_ppl as ep

        @ep.potential(event_shape=(3,), support="binary", params={"J": 0.5}, name="test_function_mychain")
        def chain(p, x):
            return -p["J"] * jnp.sum(x[1:] * x[:-1])

        if __name__ == "__main__":
            ep.save("m.ebm", chain)
    """))
    load = ("import jax.numpy as jnp, ebm_ppl as ep, train_mod\n"
            "x = jnp.array([1.0, 1.0, 0.0])\n"
            "assert float(ep.load('m.ebm').energy(x)) == float(train_mod.chain.energy(x)) == -0.5\n"
            "other = ep.potential(lambda p, x: jnp.sum(x), event_shape=(3,), support='binary', params={'J': 0.0},\n"
            "                     name='test_function_mychain')\n"
            "assert float(ep.load('m.ebm', like=other).params['J']) == 0.5\n"
            "print('ok')\n")
    for args in (["train_mod.py"], ["-c", load]):
        out = subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


@pytest.mark.parametrize("event_shape", [(2.5,), (True,), (2.0,), (0,), ("3",)])
def test_an_event_shape_of_other_than_positive_integers_is_refused(event_shape):
    """Before, (2.5,) became (2,) and (True,) became (1,) silently."""
    with pytest.raises(ValueError, match="event_shape must hold positive integers"):
        ep.potential(lambda x: jnp.sum(x), event_shape=event_shape)


def test_integer_params_are_kept_and_fit_says_they_are_not_trained_and_non_finite_ones_are_refused():
    """{'J': 1} is an int32 leaf (it may be an index the energy needs): ep.fit trains floating-point
    leaves only, and now says so instead of leaving it silently; NaN params were accepted."""
    model = ep.potential(lambda p, x: -p["J"] * jnp.sum(x), event_shape=(3,), support="binary", params={"J": 1})
    assert jnp.issubdtype(model.params["J"].dtype, jnp.integer)
    data = np.ones((40, 3), np.float32)
    with pytest.warns(UserWarning, match=r"the parameters \['J'\] are integers .* not trained") as caught:
        trained, _ = ep.fit(model, data, ep.training.pcd(num_chains=10), key=jax.random.key(0), epochs=2,
                            batch_size=20, metrics=False)
    assert {w.filename for w in caught} == {__file__} and int(trained.params["J"]) == 1
    indexed = ep.potential(lambda p, x: -x[p["i"]] * p["J"], event_shape=(3,), params={"i": 1, "J": 0.5})
    assert float(indexed.energy(jnp.array([0.0, 2.0, 0.0]))) == -1.0
    for bad in (jnp.nan, {"J": np.inf}):
        with pytest.raises(ValueError, match="params must be finite"):
            ep.potential(lambda p, x: jnp.sum(x), event_shape=(3,), params=bad)
    with pytest.raises(ValueError, match="params must be a pytree of numbers, found 'x'"):
        ep.potential(lambda p, x: jnp.sum(x), event_shape=(3,), params={"a": "x"})


def test_a_subclass_without_a_name_fails_at_class_creation():
    with pytest.raises(TypeError, match="needs a name"):

        class Nameless(ep.Potential):
            support = ep.Support.REAL

            @property
            def event_shape(self):
                return (1,)

            def unbatched_energy(self, x):
                return jnp.sum(x**2)


@pytest.mark.slow
def test_a_function_potentials_parameters_are_inferred_in_numpyro_with_its_exact_log_z():
    """A 3x3 Ising coupling J inferred by NUTS from 300 exact samples (true J = 0.4), with the
    exact, differentiable log Z(J) by enumeration in the likelihood (no doubly-intractable
    shortcut): the posterior mean lies within 4 posterior standard deviations of 0.4."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    def energy(params, s):
        spins = 2.0 * s - 1.0
        return -params["J"] * jnp.sum(spins * (jnp.roll(spins, 1, 0) + jnp.roll(spins, 1, 1)))

    ising = ep.potential(energy, event_shape=(3, 3), support="binary", params={"J": 0.4})
    x = ep.partition.exact_samples(jax.random.key(0), ising, 300)

    def model(x):
        J = numpyro.sample("J", dist.Normal(0.0, 1.0))
        p = ising.with_params({"J": J})
        numpyro.factor("likelihood", jnp.sum(-p.energy(x)) - x.shape[0] * ep.log_partition(p))

    mcmc = MCMC(NUTS(model), num_warmup=300, num_samples=300, progress_bar=False)
    mcmc.run(jax.random.key(1), x)
    J = np.asarray(mcmc.get_samples()["J"])
    assert abs(J.mean() - 0.4) < 4 * J.std(), (J.mean(), J.std())
