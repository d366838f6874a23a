"""PT-PCD: its gradient against the exact gradient (enumeration), its live log Z against the
exact one during training, Bennett's acceptance ratio against analytic log ratios, bad input."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

import ebm_ppl as ep
from ebm_ppl.moves.tempering import tempering
from ebm_ppl.partition.bar import bar_log_ratio, ladder_log_partition

NUM_CHAINS = 10_000


def _rbm(scale=1.5, seed=0, shape=(8, 4)):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return ep.BernoulliRBM(scale * jax.random.normal(k1, shape), 0.3 * jax.random.normal(k2, shape[:1]),
                           0.3 * jax.random.normal(k3, shape[1:]))


def test_pt_pcd_gradient_equals_the_exact_gradient_within_monte_carlo_error():
    """Every rung's chains start at exact samples of that rung's (tempered) RBM; after one PT-PCD
    update the beta = 1 chains are exact samples again, so the gradient equals the exact gradient
    of the mean NLL within 5 Monte Carlo standard errors in every parameter."""
    rbm = _rbm()
    data = ep.partition.exact_samples(jax.random.key(1), rbm, 50)
    estimator = ep.training.pt_pcd(k=1, num_chains=NUM_CHAINS, num_replicas=4)
    family = tempering(rbm)
    betas = estimator.ladder(family)
    chains = jnp.stack([ep.partition.exact_samples(jax.random.key(10 + r), family.at(jnp.asarray(b)), NUM_CHAINS)
                        for r, b in enumerate(betas)])
    state = estimator.init(jax.random.key(3), rbm, data)._replace(chains=chains)
    grads, state, metrics = estimator.update(rbm, (data,), state)

    def nll(model):
        return jnp.mean(jax.vmap(model.unbatched_energy)(data)) + ep.log_partition(model)

    exact = eqx.filter_grad(nll)(rbm)
    per_chain = eqx.filter_vmap(eqx.filter_grad(lambda m, x: m.unbatched_energy(x)), in_axes=(None, 0))(rbm, chains[-1])
    flat = lambda tree: np.concatenate([np.ravel(a) for a in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))])  # noqa: E731
    se = flat(jax.tree.map(lambda g: jnp.std(g, axis=0) / np.sqrt(NUM_CHAINS), per_chain))
    difference = np.abs(flat(grads) - flat(exact))
    assert np.all(difference <= 5 * se + 1e-5), (difference / (se + 1e-12)).max()
    # the live log Z from 10,000 exact draws per rung: BAR's error is a few hundredths of a nat
    assert abs(float(metrics["pt_log_partition"]) - float(rbm.log_partition())) < 0.05
    assert 0 < float(metrics["pt_min_swap_acceptance"]) <= float(metrics["pt_swap_acceptance"]) <= 1


@pytest.mark.slow
def test_live_log_likelihood_tracks_the_exact_one_during_training():
    """64x16 RBM on the binarized digits, 40 epochs of PT-PCD (10 rungs x 300 chains): the
    epoch means of pt_log_likelihood stay within 0.1 nats of the exact log-likelihood (log Z by
    enumeration of 2^16 hidden states) on average over every 5 consecutive epochs; per epoch the
    spread measured here is about 0.05 nats, from BAR on 300 draws per rung and from the model's
    change within an epoch (the exact figure is of the model at the epoch's end)."""
    x = (load_digits().data[:1000] >= 8).astype(np.float32)
    model = ep.BernoulliRBM.init(jax.random.key(0), 64, 16, data=x)
    _, history = ep.fit(model, x, ep.training.pt_pcd(1, 300, 10), optimizer=optax.sgd(0.05), epochs=40,
                        batch_size=100, key=jax.random.key(1))
    gap = np.array([r["train_pt_log_likelihood"] - r["train_log_likelihood"] for r in history.records])
    windows = np.convolve(gap, np.ones(5) / 5, mode="valid")
    assert np.all(np.abs(windows) < 0.1), windows
    assert np.abs(gap).max() < 0.3, gap


def test_bar_recovers_analytic_log_ratios():
    """N(0, 1) against N(0, s^2) as unnormalized exp(-x^2 / 2 s^2): log Z_1 - log Z_0 = log s.
    With 4000 draws per side the BAR error is about 0.01-0.02 nats (its asymptotic variance
    for these overlaps); 0.06 is three of it at the widest ratio. Unequal sample sizes agree too."""
    k0, k1 = jax.random.split(jax.random.key(0))
    for s in (1.0, 1.5, 2.5):
        x0, x1 = jax.random.normal(k0, (4000,)), s * jax.random.normal(k1, (4000,))
        e0, e1 = (lambda x: x**2 / 2), (lambda x, s=s: x**2 / (2 * s * s))
        ratio = bar_log_ratio(e1(x0) - e0(x0), e0(x1) - e1(x1))
        assert abs(float(ratio) - np.log(s)) < 0.06, (s, float(ratio))
        unequal = bar_log_ratio(e1(x0) - e0(x0), e0(x1[:1000]) - e1(x1[:1000]))
        assert abs(float(unequal) - np.log(s)) < 0.1


def test_bar_root_matches_a_float64_root_finder():
    """The root of Bennett's equation equals scipy's brentq on the float64 equation (to float32
    precision) for overlapping works of many scales and sample sizes, within 8 Newton steps (a
    bisection of the initial bracket would need ~25), and an infinite work is ignored by the
    bracket, as an energy of +inf at a neighbour's draw gives."""
    from scipy.optimize import brentq
    from scipy.special import log_expit, logsumexp

    rng = np.random.default_rng(0)
    for _ in range(40):
        n, m = rng.integers(5, 300, 2)
        scale, offset = 10 ** rng.uniform(-2, 2), rng.normal()
        forward = (scale * (rng.normal(size=n) + offset)).astype(np.float32)
        reverse = (scale * (rng.normal(size=m) - offset)).astype(np.float32)
        shift = np.log(n / m)

        def excess(df, f=forward.astype(np.float64), r=reverse.astype(np.float64), shift=shift):
            return logsumexp(log_expit(-(f - df + shift))) - logsumexp(log_expit(-(r + df - shift)))

        span = np.abs(np.concatenate([forward, reverse])).max() + 50.0
        root = brentq(excess, -span + shift, span + shift, xtol=1e-12)
        got = float(bar_log_ratio(jnp.asarray(forward), jnp.asarray(reverse), max_iterations=8))
        assert abs(got + root) <= 2e-5 * (1 + abs(root)), (scale, offset, n, m, got, -root)
    forward = np.array([np.inf, 0.5, 1.0, 0.2], np.float32)
    reverse = np.array([-0.4, -0.9, 0.1], np.float32)
    assert np.isfinite(float(bar_log_ratio(jnp.asarray(forward), jnp.asarray(reverse))))


def test_ladder_log_partition_sums_the_pairs():
    """Energies (N, R, 3) of exact draws of three Gaussian rungs with known log Z: the ladder's
    log Z is the reference's plus the BAR ratios, within Monte Carlo error."""
    scales = jnp.array([1.0, 2.0, 3.0])
    draws = scales * jax.random.normal(jax.random.key(2), (4000, 3))
    around = jnp.stack([scales[jnp.array([0, 0, 1])], scales, scales[jnp.array([1, 2, 2])]], axis=1)  # (R, 3)
    energies = draws[:, :, None] ** 2 / (2 * around[None] ** 2)
    log_z, ratios = ladder_log_partition(energies, jnp.asarray(0.5 * np.log(2 * np.pi)))
    assert ratios.shape == (2,)
    assert abs(float(log_z) - (0.5 * np.log(2 * np.pi) + np.log(3.0))) < 0.06


def test_pt_pcd_on_a_gaussian_bernoulli_rbm_uses_the_base_path():
    """A family without a tempered form anneals from its AIS base; one update runs and reports a
    finite log Z (the base's closed form plus the ladder)."""
    gb = ep.GaussianBernoulliRBM.init(jax.random.key(0), 4, 3)
    x = jax.random.normal(jax.random.key(1), (20, 4))
    estimator = ep.training.pt_pcd(1, 50, 4)
    state = estimator.init(jax.random.key(2), gb, x)
    _, _, metrics = estimator.update(gb, (x,), state)
    assert np.isfinite(float(metrics["pt_log_partition"]))


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "k"), ({"num_replicas": 1}, "num_replicas"), ({"min_beta": 2.0}, "min_beta must be below 1"),
    ({"reference": "cold"}, "reference must be one of"), ({"betas": [[0.0, 1.0]]}, "1-d sequence"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ep.training.pt_pcd(**kwargs)


def test_bad_ladder_and_models_without_gibbs_moves_are_refused_at_init():
    rbm = _rbm()
    with pytest.raises(ValueError, match="strictly ascending"):
        ep.training.pt_pcd(betas=(0.0, 0.8, 0.5, 1.0)).init(jax.random.key(0), rbm)
    with pytest.raises(ValueError, match="PT-PCD need Gibbs moves"):
        ep.training.pt_pcd().init(jax.random.key(0), ep.Gaussian.standard(2))


def test_exchange_equals_indexing_by_the_swap_sources():
    """``exchange`` (selects) gives every leaf indexed by ``swap_sources``' sources, per chain."""
    from ebm_ppl.moves.ladders import exchange, swap_sources

    num_rungs, num_chains = 6, 50
    log_a = jax.random.normal(jax.random.key(0), (num_chains, num_rungs - 1))
    chains = jax.random.normal(jax.random.key(1), (num_rungs, num_chains, 3))
    labels = jnp.broadcast_to(jnp.arange(num_rungs)[:, None], (num_rungs, num_chains))
    for step in (0, 1):
        sources, swapped = jax.vmap(swap_sources, in_axes=(0, 0, None))(
            jax.random.split(jax.random.key(2 + step), num_chains), log_a, step)
        assert bool(jnp.any(swapped))
        got = exchange({"x": chains, "label": labels}, swapped.T)
        np.testing.assert_array_equal(got["x"], jax.vmap(lambda c, s: c[s], in_axes=(1, 0), out_axes=1)(chains, sources))
        np.testing.assert_array_equal(got["label"], sources.T)
