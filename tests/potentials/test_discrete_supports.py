"""Spin and categorical potentials written as plain functions get what binary ones get: exact
log Z and exact samples by enumeration, forward and reverse AIS from a factorized base, site
Gibbs, the NumPyro bridge; each checked against brute-force enumeration."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from scipy import stats

import ebm_ppl as ep
from ebm_ppl.numpyro import EnergyDistribution, EnergyKernel
from ebm_ppl.potentials import Factorized

NUM_DRAWS = 20_000


def _spin_ising(J=0.35, h=0.15):
    """A 3x3 periodic Ising model on spins {-1, +1} with a field."""
    def energy(params, s):
        bonds = s * (jnp.roll(s, 1, axis=0) + jnp.roll(s, 1, axis=1))
        return -params["J"] * jnp.sum(bonds) - params["h"] * jnp.sum(s)

    return ep.potential(energy, event_shape=(3, 3), support="spin", params={"J": J, "h": h})


def _potts_chain(coupling=0.7, field=0.4):
    """Six sites with three states each: neighbours that agree lower the energy, state 2 is favoured."""
    def energy(x):
        return -coupling * jnp.sum(x[1:] == x[:-1]) - field * jnp.sum(x == 2)

    return ep.potential(energy, event_shape=(6,), support=ep.categorical(3))


CASES = {
    "spin": (_spin_ising, (-1.0, 1.0), (3, 3)),
    "categorical": (_potts_chain, (0.0, 1.0, 2.0), (6,)),
}


def _brute_force(model, values, shape):
    """Every state (C order, first coordinate most significant), log Z and the probabilities."""
    states = np.array(list(itertools.product(values, repeat=int(np.prod(shape)))), np.float32).reshape(-1, *shape)
    log_w = -np.asarray(model.energy(states), np.float64)
    log_z = float(np.logaddexp.reduce(log_w))
    return states, log_z, np.exp(log_w - log_z)


def _state_index(draws, values):
    """The row of each draw in :func:`_brute_force`'s list of states."""
    digits = np.searchsorted(np.asarray(values), np.asarray(draws).reshape(len(draws), -1))
    q, size = len(values), digits.shape[1]
    return digits @ (q ** np.arange(size)[::-1])


def _chi_square_pvalue(index, p):
    counts = np.bincount(index, minlength=len(p))
    big = p * len(index) >= 5  # states expected at least 5 times; the rest pooled
    observed = np.append(counts[big], counts[~big].sum())
    expected = np.append(p[big], p[~big].sum()) * len(index)
    return stats.chisquare(observed, expected).pvalue


@pytest.mark.parametrize("kind", CASES)
def test_exact_log_z_and_exact_samples_by_enumeration(kind):
    """Exact log Z equals brute force to 1e-5; exact samples pass a chi-square test (p > 0.001)."""
    make, values, shape = CASES[kind]
    model = make()
    _, log_z, p = _brute_force(model, values, shape)
    assert abs(float(ep.log_partition(model)) - log_z) < 1e-5 * max(1.0, abs(log_z))
    draws = ep.partition.exact_samples(jax.random.key(0), model, NUM_DRAWS)
    assert draws.shape == (NUM_DRAWS, *shape) and set(np.unique(np.asarray(draws))) <= set(values)
    assert _chi_square_pvalue(_state_index(draws, values), p) > 1e-3


@pytest.mark.parametrize("kind", CASES)
def test_one_site_gibbs_sweep_leaves_the_exact_distribution_invariant(kind):
    """From exact samples, one sweep of site Gibbs gives exact samples again (chi-square over
    the states, p > 0.001): the kernel is stationary for the target, not only convergent."""
    make, values, shape = CASES[kind]
    model = make()
    _, _, p = _brute_force(model, values, shape)
    start = ep.partition.exact_samples(jax.random.key(1), model, NUM_DRAWS)
    algorithm = ep.kernels.site_gibbs(model)
    keys = jax.random.split(jax.random.key(2), NUM_DRAWS)
    moved, info = jax.vmap(lambda k, x: algorithm.step(k, algorithm.init(x)))(keys, start)
    assert 0.05 < float(jnp.mean(info.flip_rate)) < 0.95  # it does move
    assert _chi_square_pvalue(_state_index(moved.position, values), p) > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("kind", CASES)
def test_forward_and_reverse_ais_sandwich_the_exact_log_z(kind):
    """Forward AIS (uniform base) and reverse AIS (from exact samples) within 0.05 nats of the
    enumerated log Z; with a base fitted to data as well."""
    make, values, shape = CASES[kind]
    model = make()
    _, log_z, _ = _brute_force(model, values, shape)
    forward = ep.ais(jax.random.key(0), model, num_chains=200, num_temperatures=500)
    start = ep.partition.exact_samples(jax.random.key(1), model, 200)
    reverse = ep.reverse_ais(jax.random.key(2), model, start, exact=True, num_temperatures=500)
    fitted = ep.ais(jax.random.key(3), model, num_chains=200, num_temperatures=200, data=start)
    assert forward.bound == "lower" and reverse.bound == "upper"
    for est in (forward, reverse, fitted):
        assert abs(est.log_z - log_z) < 0.05, (est, log_z)


@pytest.mark.filterwarnings("ignore:Found chain dimension")  # 400 chains of 5 draws, on purpose
def test_sample_defaults_to_site_gibbs_and_matches_the_exact_marginals():
    """ep.sample picks site Gibbs for a categorical potential; the last draws of 400 chains
    (independent) match the exact per-site marginals within 4.5 binomial standard errors."""
    model = _potts_chain()
    states, _, p = _brute_force(model, (0.0, 1.0, 2.0), (6,))
    idata = ep.sample(jax.random.key(4), model, num_chains=400, num_samples=5, num_warmup=50)
    assert idata.posterior.attrs["kernel"] == "site_gibbs"
    last = idata.posterior["x"].values[:, -1]
    for c in range(3):
        exact = (states == c).astype(np.float64).T @ p
        se = np.sqrt(exact * (1 - exact) / len(last))
        np.testing.assert_array_less(np.abs((last == c).mean(0) - exact), 4.5 * se + 1e-9)


def test_factorized_base_is_exact_and_round_trips(tmp_path):
    """Factorized: closed-form log Z equal to enumeration, fitted to data's frequencies, saved
    and loaded; bad logits and a continuous support are refused."""
    support = ep.categorical(3)
    logits = jax.random.normal(jax.random.key(0), (4, 3))
    base = Factorized(logits, support)
    _, log_z, _ = _brute_force(base, (0.0, 1.0, 2.0), (4,))
    assert abs(float(base.log_partition()) - log_z) < 1e-5
    data = jnp.array([[0, 1, 2, 2], [0, 2, 2, 1]], jnp.float32)
    fitted = Factorized.fit(data, support)  # one pseudo count of each value
    np.testing.assert_allclose(np.exp(fitted.logits[0]), [3 / 5, 1 / 5, 1 / 5], rtol=1e-6)
    np.testing.assert_allclose(np.exp(fitted.logits[2]), [1 / 5, 1 / 5, 3 / 5], rtol=1e-6)
    ep.save(tmp_path / "base.npz", base)
    again = ep.load(tmp_path / "base.npz")
    assert again.support == support and np.array_equal(np.asarray(again.logits), np.asarray(logits))
    with pytest.raises(ValueError, match=r"logits must have shape \(\*event_shape, 3\)"):
        Factorized(jnp.zeros((4, 2)), support)
    with pytest.raises(ValueError, match="must be discrete"):
        Factorized(jnp.zeros((4, 3)), "real")
    spins = Factorized.uniform((2,), "spin")
    assert float(spins.log_partition()) == pytest.approx(2 * np.log(2.0))


def test_numpyro_bridge_for_spin_and_categorical():
    """EnergyDistribution declares the per-coordinate values of categorical support (its indices)
    and for spins refuses to (NumPyro's discrete kernels would propose 0 and 1), with a constraint
    that accepts exactly the support; EnergyKernel under numpyro.infer.MCMC runs site Gibbs with
    draws on the support."""
    spin, potts = _spin_ising(), _potts_chain()
    d = EnergyDistribution(spin)
    assert d.has_enumerate_support
    with pytest.raises(NotImplementedError, match=r"propose the indices 0 \.\. 1 .*EnergyKernel"):
        d.enumerate_support(expand=False)  # NumPyro's discrete kernels would sample spins as 0/1

    def model():
        numpyro.sample("x", d)
        numpyro.sample("z", numpyro.distributions.Normal())

    with pytest.raises(NotImplementedError, match="would sample this spin potential wrongly"):
        numpyro.infer.MCMC(numpyro.infer.DiscreteHMCGibbs(numpyro.infer.NUTS(model)), num_warmup=2, num_samples=2,
                           progress_bar=False).run(jax.random.key(0))
    assert bool(jnp.all(d.support(jnp.ones((3, 3))))) and not bool(jnp.all(d.support(jnp.zeros((3, 3)))))
    assert EnergyDistribution(potts).enumerate_support().shape == (3, 6)
    mcmc = numpyro.infer.MCMC(EnergyKernel(potts), num_warmup=20, num_samples=50, progress_bar=False)
    mcmc.run(jax.random.key(5))
    draws = np.asarray(mcmc.get_samples()["x"])
    assert draws.shape == (50, 6) and set(np.unique(draws)) <= {0.0, 1.0, 2.0}


@pytest.mark.parametrize("call, message", [
    (lambda: _spin_ising().energy(jnp.zeros((3, 3))), r"must be spins \(-1/\+1\)"),
    (lambda: _potts_chain().energy(jnp.full(6, 3.0)), r"must be states 0 \.\. 2"),
    (lambda: ep.log_partition(ep.potential(lambda x: jnp.sum(x), event_shape=(20,), support=ep.categorical(4))),
     r"exact log Z needs .* terms"),
    (lambda: ep.partition.exact_samples(jax.random.key(0), ep.potential(
        lambda x: jnp.sum(x), event_shape=(12,), support=ep.categorical(5)), 3), r"exact samples of .*categorical\(5\) units need enumerating .* states; the limit is 2\^22\. Draw approximate"),
    (lambda: ep.ais(jax.random.key(0), _potts_chain(), base=Factorized.uniform((6,), "spin")),
     r"base of .* must be a categorical\(3\) potential"),
])
def test_bad_input_is_refused_at_the_boundary(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _mle_coupling(states: np.ndarray, statistic, data: np.ndarray) -> float:
    """The J maximizing the likelihood of ``data`` under p(x) ∝ exp(J t(x)): where the model's
    mean of t equals the data's (by bisection over the enumerated states)."""
    t_states, target = statistic(states), float(np.mean(statistic(data)))
    lo, hi = -5.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        w = np.exp(mid * t_states - np.max(mid * t_states))
        lo, hi = (mid, hi) if w @ t_states / w.sum() < target else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["spin", "categorical"])
def test_pcd_and_pt_pcd_train_spin_and_categorical_functions_to_the_exact_mle(kind):
    """Both refused these supports ('need Gibbs moves ... binary support') although site Gibbs
    samples them. One coupling J of a 6-site chain, 2000 exact draws at J = 0.4: 30 epochs of
    PCD-5 (200 chains) and PT-PCD-2 (4 rungs x 100) land within 0.03 of the exact maximum-
    likelihood J (over 4 seeds each: sd 0.005-0.007, Intel Xeon; 0.03 is over 4 sd)."""
    import optax

    values = (-1.0, 1.0) if kind == "spin" else (0.0, 1.0, 2.0)
    if kind == "spin":
        statistic = lambda x: np.sum(x[:, 1:] * x[:, :-1], axis=1)  # noqa: E731
        energy = lambda params, x: -params["J"] * jnp.sum(x[1:] * x[:-1])  # noqa: E731
    else:
        statistic = lambda x: np.sum(x[:, 1:] == x[:, :-1], axis=1).astype(np.float64)  # noqa: E731
        energy = lambda params, x: -params["J"] * jnp.sum(x[1:] == x[:-1])  # noqa: E731
    support = "spin" if kind == "spin" else ep.categorical(3)
    model = ep.potential(energy, event_shape=(6,), support=support, params={"J": 0.0})
    states = np.array(list(itertools.product(values, repeat=6)))
    t = statistic(states)
    p = np.exp(0.4 * t - np.max(0.4 * t))
    data = states[np.random.default_rng(0).choice(len(states), 2000, p=p / p.sum())].astype(np.float32)
    mle = _mle_coupling(states, statistic, data)
    for estimator in (ep.training.pcd(k=5, num_chains=200), ep.training.pt_pcd(k=2, num_chains=100, num_replicas=4)):
        trained, _ = ep.fit(model, data, estimator, key=jax.random.key(1), optimizer=optax.sgd(0.02), epochs=30,
                            batch_size=200, metrics=False)
        assert abs(float(trained.params["J"]) - mle) < 0.03, (type(estimator).__name__, trained.params, mle)
