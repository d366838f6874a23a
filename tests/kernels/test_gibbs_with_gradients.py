"""Gibbs with gradients: the exact one-step transition matrix on tiny models, invariance and
convergence against exact enumeration on 10-unit models, a broken variant failing the same tests,
and the API (options, jit, vmap, keys)."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from blackjax import GenerateSamplingAPI
from scipy import stats

import ebm_ppl as ep
from ebm_ppl.kernels.gibbs_with_gradients import as_top_level_api as gibbs_with_gradients
from ebm_ppl.kernels.gibbs_with_gradients import build_kernel, init, proposal_log_probs

from discrete_exact import (tiny_models, strong_boltzmann, rbm_10x4, all_states, state_index, exact_probs,
                            chi_square_pvalue, binary_exact, exact_draws, bits, codes, run)

NUM_CHAINS = 20_000


# ------------------------------------------------------------------------------------------------
# models


# ------------------------------------------------------------------------------------------------
# exact answers by enumeration


def _moves(model, num_keys=4000):
    """Every single-site move of a tiny model, with what one step of the kernel does with it.

    The proposal probabilities come from :func:`proposal_log_probs` and the acceptance
    probability of each move is read from the kernel's own step (``info.acceptance_rate`` of
    ``num_keys`` steps from every state, grouped by ``info.proposal``; every move of the tiny
    models has probability > 2e-3, so each is seen). Returns the states and one record per move:
    ``(s, t, log q(t | s), kernel's acceptance, E_s, E_t, log q(s | t), times proposed)``."""
    values = model.support.values
    states = all_states(values, 3)
    algo = gibbs_with_gradients(model)
    inits = jax.vmap(algo.init)(jnp.asarray(states))
    keys = jax.random.split(jax.random.key(0), (len(states), num_keys))  # independent draws for every start
    _, info = jax.jit(jax.vmap(jax.vmap(algo.step, (0, None))))(keys, inits)
    proposed = state_index(np.asarray(info.proposal.position).reshape(-1, 3), values).reshape(len(states), -1)
    rates = np.asarray(info.acceptance_rate)
    log_q = np.asarray(jax.vmap(proposal_log_probs, (0, None))(inits, jnp.asarray(values)))
    assert np.exp(log_q[np.isfinite(log_q)]).min() > 2e-3
    energies = np.asarray(inits.energy)
    moves = []
    for s in range(len(states)):
        for i, v in zip(*np.nonzero(np.isfinite(log_q[s]))):
            x = states[s].copy()
            x[i] = values[v]
            t = int(state_index(x[None], values)[0])
            seen = proposed[s] == t
            assert seen.any(), f"move ({i}, {v}) from state {s} never proposed (q = {np.exp(log_q[s, i, v]):.2g})"
            assert np.ptp(rates[s][seen]) < 1e-12  # the acceptance is a function of (x, x')
            log_q_rev = log_q[t, i, list(values).index(states[s][i])]
            moves.append((s, t, log_q[s, i, v], rates[s][seen][0], energies[s], energies[t], log_q_rev,
                          int(seen.sum())))
    return states, moves


def _matrix(num_states, moves, acceptance=None):
    """The one-step transition matrix: P(s, t) = q(t | s) a(s, t) for t != s, the rest on the
    diagonal; ``acceptance(E_s, E_t, log q(t | s), log q(s | t))`` replaces the kernel's."""
    P = np.zeros((num_states, num_states))
    for s, t, log_fwd, a, e_s, e_t, log_rev, _ in moves:
        P[s, t] = np.exp(log_fwd) * (a if acceptance is None else acceptance(e_s, e_t, log_fwd, log_rev))
    P[np.diag_indices(num_states)] = 1.0 - P.sum(1)
    return P


def _accept_always(algo):
    """The broken variant: the kernel's proposal, always accepted (no Metropolis correction)."""

    def step(key, state):
        info = algo.step(key, state)[1]
        return info.proposal, info

    return step


# ------------------------------------------------------------------------------------------------
# the exact transition matrix


@pytest.mark.parametrize("name", ["boltzmann", "rbm", pytest.param("spin", marks=pytest.mark.slow),
                                  pytest.param("potts", marks=pytest.mark.slow)])
def test_one_step_transition_matrix_is_reversible_for_the_exact_law(name):
    """P from enumeration (proposal probabilities x the kernel's acceptance): rows sum to 1,
    pi P = pi and detailed balance pi_x P(x, x') = pi_x' P(x', x) hold to 1e-6 (float64 gives
    ~1e-17); the kernel's proposals follow the stated q (Pearson's chi-square over every move,
    p > 1e-3); and the same check rejects an acceptance without the proposal ratio and the
    acceptance 1 (both off by > 1e-3)."""
    with jax.enable_x64(True):
        model = tiny_models()[name]
        states, moves = _moves(model, num_keys=4000)
        pi = exact_probs(model, states)
    P = _matrix(len(states), moves)
    assert np.all(P >= -1e-12) and np.allclose(P.sum(1), 1.0, atol=1e-12)
    assert np.max(np.abs(pi @ P - pi)) < 1e-6
    flow = pi[:, None] * P
    assert np.max(np.abs(flow - flow.T)) < 1e-6
    # the kernel proposes with the stated probabilities: Pearson's statistic over every move,
    # cells = moves, one constraint (the count) per start state
    observed = np.array([m[7] for m in moves])
    expected = np.array([np.exp(m[2]) for m in moves]) * 4000
    df = len(moves) - len(states)
    assert stats.chi2.sf(np.sum((observed - expected) ** 2 / expected), df) > 1e-3
    # the check has power: without the proposal ratio, or accepting always, pi is not stationary
    P_bad = _matrix(len(states), moves, lambda e_s, e_t, fwd, rev: min(1.0, np.exp(e_s - e_t)))
    P_one = _matrix(len(states), moves, lambda *a: 1.0)
    assert np.max(np.abs(pi @ P_bad - pi)) > 1e-3
    assert np.max(np.abs(pi @ P_one - pi)) > 1e-3


# ------------------------------------------------------------------------------------------------
# invariance and convergence on 10-unit models


@pytest.mark.parametrize("make", [strong_boltzmann, rbm_10x4], ids=["boltzmann10", "rbm10x4"])
def test_exact_samples_stay_exact_and_accepting_always_does_not(make):
    """20,000 chains started from exact samples, 5 steps: the state histogram passes Pearson's
    chi-square test against the enumerated probabilities (p > 1e-3; small cells pooled); the same
    kernel without its Metropolis correction fails it (p < 1e-6)."""
    model = make()
    exact = binary_exact(model)
    algo = gibbs_with_gradients(model)
    start = jax.vmap(algo.init)(bits(exact_draws(exact, NUM_CHAINS, seed=11), 10))
    moved, broken = run((algo.step, _accept_always(algo)), start, 5, seed=12)
    assert float(jnp.mean(jnp.any(moved.position != start.position, axis=1))) > 0.3  # it moves
    assert chi_square_pvalue(codes(moved.position), exact) > 1e-3
    assert chi_square_pvalue(codes(broken.position), exact) < 1e-6


@pytest.mark.slow
def test_converges_from_all_zeros_to_the_exact_distribution():
    """10,000 independent chains from x = 0 after 100 steps (the total variation is the same
    after 200): the total variation to the exact law is below twice its expectation for 10,000
    exact draws, 2 * 1/2 sum_s sqrt(p_s (1 - p_s) / N) (since E|p_hat_s - p_s| <= sqrt(p_s (1 -
    p_s) / N)); the kernel without its Metropolis correction fails the same bound."""
    num = 10_000
    model = strong_boltzmann()
    exact = binary_exact(model)
    bound = 2 * 0.5 * np.sum(np.sqrt(exact * (1 - exact) / num))
    algo = gibbs_with_gradients(model)
    start = jax.vmap(algo.init)(jnp.zeros((num, 10)))

    def tv(states):
        empirical = np.bincount(codes(states.position), minlength=exact.size) / num
        return 0.5 * np.abs(empirical - exact).sum()

    moved, broken = run((algo.step, _accept_always(algo)), start, 100, seed=21)
    assert tv(moved) < bound
    assert tv(broken) > bound


@pytest.mark.slow
def test_spin_ising_on_a_3x3_lattice_stays_exact():
    """An event of shape (3, 3) on spins (the bonus supports): 20,000 exact samples, 3 steps of
    2 flips, chi-square over the 512 states (p > 1e-3)."""
    def energy(s):
        return -0.6 * jnp.sum(s * (jnp.roll(s, 1, axis=0) + jnp.roll(s, 1, axis=1))) - 0.2 * jnp.sum(s)

    model = ep.potential(energy, event_shape=(3, 3), support="spin")
    states = all_states((-1.0, 1.0), 9)
    p = exact_probs(model, states.reshape(-1, 3, 3).astype(np.float32))
    algo = gibbs_with_gradients(model, num_flips=2)
    draws = states[exact_draws(p, NUM_CHAINS, seed=31)].reshape(-1, 3, 3)
    start = jax.vmap(algo.init)(jnp.asarray(draws, jnp.float32))
    (moved,) = run((algo.step,), start, 3, seed=32)
    assert chi_square_pvalue(state_index(moved.position, (-1.0, 1.0)), p) > 1e-3


# ------------------------------------------------------------------------------------------------
# the API


def test_state_info_jit_vmap_and_keys():
    model = strong_boltzmann()
    algo = GenerateSamplingAPI(gibbs_with_gradients, init, build_kernel)(model, num_flips=3)
    state = algo.init(jnp.zeros(10, jnp.int32))  # integers become floats (the gradient needs them)
    assert state.position.dtype == jnp.result_type(float)
    starts = jax.vmap(algo.init)(jax.random.bernoulli(jax.random.key(2), 0.5, (5, 10)).astype(jnp.float32))
    keys = jax.random.split(jax.random.key(3), 5)
    step = jax.jit(jax.vmap(algo.step))
    a, info = step(keys, starts)
    b, _ = step(keys, starts)
    np.testing.assert_array_equal(a.position, b.position)  # same key, same result
    assert a.position.shape == (5, 10) and info.acceptance_rate.shape == (5,) and info.proposal.position.shape == (5, 10)
    assert info.is_accepted.dtype == jnp.bool_ and bool(jnp.all((info.acceptance_rate >= 0) & (info.acceptance_rate <= 1)))
    assert bool(jnp.all(jnp.sum(a.position != starts.position, axis=1) <= 3))  # at most num_flips changes
    c, _ = step(jax.random.split(jax.random.key(4), 5), a)
    assert bool(jnp.any(c.position != a.position))
    # one chain, jitted, and the raw kernel, give the vmapped chain's result
    first = jax.tree.map(lambda x: x[0], starts)
    one, info_one = jax.jit(algo.step)(keys[0], first)
    np.testing.assert_array_equal(one.position, a.position[0])
    np.testing.assert_allclose(info_one.acceptance_rate, info.acceptance_rate[0], rtol=1e-5)
    raw, _ = jax.jit(lambda k, s: build_kernel()(k, s, model, 3))(keys[0], first)
    np.testing.assert_array_equal(raw.position, one.position)
    # the cached energy and gradient are those of the position
    np.testing.assert_allclose(a.energy, model.energy(a.position), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.energy_grad, jax.vmap(jax.grad(model.unbatched_energy))(a.position), rtol=1e-5,
                               atol=1e-5)


def test_nan_energies_are_rejections():
    """States whose energy is NaN (here x_0 = x_1 = 1) are proposed and never entered."""
    bm = strong_boltzmann()
    model = ep.potential(lambda x: bm.unbatched_energy(x) + jnp.where(x[0] * x[1] > 0.5, jnp.nan, 0.0),
                         event_shape=(10,), support="binary")
    algo = gibbs_with_gradients(model)
    start = jax.vmap(algo.init)(jnp.zeros((200, 10)))
    (end,) = run((algo.step,), start, 200, seed=5)
    assert not bool(jnp.any((end.position[:, 0] == 1) & (end.position[:, 1] == 1)))
    assert bool(jnp.all(jnp.isfinite(end.energy))) and float(jnp.mean(end.position)) > 0.05


@pytest.mark.parametrize("num_flips, message", [(0, "integer >= 1"), (1.5, "integer >= 1"), (True, "integer >= 1"),
                                                ("2", "integer >= 1"), (np.array([1, 2]), "shape")])
def test_bad_num_flips_is_refused(num_flips, message):
    with pytest.raises(ValueError, match=f"gibbs_with_gradients: num_flips.*{message}"):
        gibbs_with_gradients(strong_boltzmann(), num_flips=num_flips)


def test_unsuitable_potentials_are_refused():
    with pytest.raises(ValueError, match="discrete potentials.*Gaussian has support real.*'mala'"):
        gibbs_with_gradients(ep.Gaussian.standard(2))

    def opaque(x):  # an energy JAX cannot differentiate (a host callback without a JVP rule)
        shape = jax.ShapeDtypeStruct((), x.dtype)
        return jax.pure_callback(lambda v: np.sum(v**2).astype(v.dtype), shape, x)

    model = ep.potential(opaque, event_shape=(4,), support="binary")
    with pytest.raises(ValueError, match="gradient of .*unbatched_energy.*jax.grad fails.*'site_gibbs'"):
        gibbs_with_gradients(model)
