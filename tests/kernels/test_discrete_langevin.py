"""Discrete Langevin with a Metropolis correction (DMALA): the exact one-step transition matrix on
tiny models, invariance and convergence against exact enumeration on 10-unit models, the
unadjusted proposal failing the same tests, and the API (options, jit, vmap, keys)."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from blackjax import GenerateSamplingAPI
from scipy import stats

import ebm_ppl as ep
from ebm_ppl.kernels.discrete_langevin import as_top_level_api as discrete_langevin
from ebm_ppl.kernels.discrete_langevin import build_kernel, init, proposal_log_probs

from discrete_exact import (tiny_models, strong_boltzmann, rbm_10x4, all_states, state_index, exact_probs,
                            chi_square_pvalue, binary_exact, exact_draws, bits, codes, run)

NUM_CHAINS = 20_000
#: The step size of the 10-unit tests. On both models one step from exact samples then accepts
#: 69% (Boltzmann machine) and 78% (RBM) of proposals that change 16-17% of the coordinates: the
#: Metropolis correction matters (the unadjusted proposal is off by p = 0 in the chi-square test),
#: where alpha = 0.1 changes 0.4% of the coordinates and accepts 99.9%, and the unadjusted
#: proposal would pass as well (p = 0.5), so that the test would have no power.
STEP_SIZE = 0.5


# ------------------------------------------------------------------------------------------------
# models


# ------------------------------------------------------------------------------------------------
# exact answers by enumeration


def _transitions(model, step_size, num_keys):
    """What one step does on a tiny model: the states, the exact proposal probabilities
    ``Q[s, t] = prod_i q_i(t_i | s)`` from :func:`proposal_log_probs`, the acceptance
    probability ``A[s, t]`` of each proposal read from the kernel's own step
    (``info.acceptance_rate`` of ``num_keys`` steps from every state, grouped by
    ``info.proposal``; the models and step size make every proposal likelier than 1e-3, so each
    is seen about 10 times or more in 10,000 steps), how often each was proposed, and the energies."""
    values = model.support.values
    states = all_states(values, 3)
    n = len(states)
    algo = discrete_langevin(model, step_size)
    inits = jax.vmap(algo.init)(jnp.asarray(states))
    keys = jax.random.split(jax.random.key(0), (n, num_keys))  # independent draws for every start
    _, info = jax.jit(jax.vmap(jax.vmap(algo.step, (0, None))))(keys, inits)
    proposed = state_index(np.asarray(info.proposal.position).reshape(-1, 3), values).reshape(n, -1)
    rates = np.asarray(info.acceptance_rate)
    log_q = np.asarray(jax.vmap(proposal_log_probs, (0, None, None))(inits, step_size, jnp.asarray(values)))
    digits = np.searchsorted(np.asarray(values), states).astype(int)  # (t, i): the value index of t_i
    Q = np.exp(np.stack([log_q[s][np.arange(3), digits].sum(axis=1) for s in range(n)]))
    assert Q.min() > 1e-3 and np.allclose(Q.sum(1), 1.0, atol=1e-12)
    A = np.zeros((n, n))
    counts = np.zeros((n, n))
    for s in range(n):
        for t in range(n):
            seen = proposed[s] == t
            assert seen.any(), f"proposal {t} from state {s} never made (q = {Q[s, t]:.2g})"
            assert np.ptp(rates[s][seen]) < 1e-12  # the acceptance is a function of (x, x')
            A[s, t], counts[s, t] = rates[s][seen][0], seen.sum()
    return states, Q, A, counts, np.asarray(inits.energy)


def _matrix(Q, A):
    """P(s, t) = Q(s, t) A(s, t) for t != s, the rest on the diagonal."""
    P = Q * A
    np.fill_diagonal(P, 0.0)
    np.fill_diagonal(P, 1.0 - P.sum(1))
    return P


def _unadjusted(algo):
    """The broken variant: the kernel's proposal, always accepted (the discrete Langevin
    proposal without its Metropolis correction, Zhang et al.'s DULA)."""

    def step(key, state):
        info = algo.step(key, state)[1]
        return info.proposal, info

    return step


# ------------------------------------------------------------------------------------------------
# the exact transition matrix


@pytest.mark.parametrize("name", ["boltzmann", "rbm", pytest.param("spin", marks=pytest.mark.slow),
                                  pytest.param("potts", marks=pytest.mark.slow)])
def test_one_step_transition_matrix_is_reversible_for_the_exact_law(name):
    """P from enumeration (proposal probabilities x the kernel's acceptance, alpha = 2 so that
    every one of the q^3 proposals is likely enough to be seen): rows sum to 1, pi P = pi and
    detailed balance pi_x P(x, x') = pi_x' P(x', x) hold to 1e-6 (float64 gives ~1e-17); the
    kernel's proposals follow the stated q (Pearson's chi-square over every (start, proposal)
    pair, p > 1e-3); the same check rejects an acceptance without the proposal ratio and the
    acceptance 1 (both off by > 1e-3)."""
    num_keys = 10_000
    with jax.enable_x64(True):
        model = tiny_models()[name]
        states, Q, A, counts, energy = _transitions(model, 2.0, num_keys)
        pi = exact_probs(model, states)
    P = _matrix(Q, A)
    assert np.all(P >= -1e-12) and np.allclose(P.sum(1), 1.0, atol=1e-12)
    assert np.max(np.abs(pi @ P - pi)) < 1e-6
    flow = pi[:, None] * P
    assert np.max(np.abs(flow - flow.T)) < 1e-6
    expected = Q * num_keys
    df = Q.size - len(states)  # one constraint (the count) per start state
    assert stats.chi2.sf(np.sum((counts - expected) ** 2 / expected), df) > 1e-3
    # the check has power: without the proposal ratio, or accepting always, pi is not stationary
    P_bad = _matrix(Q, np.minimum(1.0, np.exp(energy[:, None] - energy[None, :])))
    assert np.max(np.abs(pi @ P_bad - pi)) > 1e-3
    assert np.max(np.abs(pi @ _matrix(Q, np.ones_like(Q)) - pi)) > 1e-3


# ------------------------------------------------------------------------------------------------
# invariance and convergence on 10-unit models


@pytest.mark.parametrize("make", [strong_boltzmann, rbm_10x4], ids=["boltzmann10", "rbm10x4"])
def test_exact_samples_stay_exact_and_the_unadjusted_proposal_does_not(make):
    """20,000 chains started from exact samples, 3 steps at alpha = STEP_SIZE: the state
    histogram passes Pearson's chi-square test against the enumerated probabilities (p > 1e-3;
    small cells pooled); the proposal without its Metropolis correction fails it (p < 1e-6)."""
    model = make()
    exact = binary_exact(model)
    algo = discrete_langevin(model, STEP_SIZE)
    start = jax.vmap(algo.init)(bits(exact_draws(exact, NUM_CHAINS, seed=11), 10))
    moved, broken = run((algo.step, _unadjusted(algo)), start, 3, seed=12)
    assert float(jnp.mean(moved.position != start.position)) > 0.1  # it moves
    assert chi_square_pvalue(codes(moved.position), exact) > 1e-3
    assert chi_square_pvalue(codes(broken.position), exact) < 1e-6


@pytest.mark.slow
def test_converges_from_all_zeros_to_the_exact_distribution():
    """10,000 independent chains from x = 0 after 50 steps at alpha = STEP_SIZE (the total
    variation is the same after 200): the total variation to the exact law is below twice its
    expectation for 10,000 exact draws, 2 * 1/2 sum_s sqrt(p_s (1 - p_s) / N) (since
    E|p_hat_s - p_s| <= sqrt(p_s (1 - p_s) / N)); the unadjusted proposal fails the same bound."""
    num = 10_000
    model = strong_boltzmann()
    exact = binary_exact(model)
    bound = 2 * 0.5 * np.sum(np.sqrt(exact * (1 - exact) / num))
    algo = discrete_langevin(model, STEP_SIZE)
    start = jax.vmap(algo.init)(jnp.zeros((num, 10)))

    def tv(states):
        empirical = np.bincount(codes(states.position), minlength=exact.size) / num
        return 0.5 * np.abs(empirical - exact).sum()

    moved, broken = run((algo.step, _unadjusted(algo)), start, 50, seed=21)
    assert tv(moved) < bound
    assert tv(broken) > bound


@pytest.mark.slow
def test_potts_chain_with_a_flat_energy_stays_exact():
    """Categorical states (the bonus supports) and an energy built from comparisons, whose
    gradient is zero (the proposal is then an independent one centred on x): six 3-state sites,
    20,000 exact samples, 3 steps, chi-square over the 729 states (p > 1e-3)."""
    def energy(x):
        return -0.7 * jnp.sum(x[1:] == x[:-1]) - 0.4 * jnp.sum(x == 2)

    model = ep.potential(energy, event_shape=(6,), support=ep.categorical(3))
    values = (0.0, 1.0, 2.0)
    states = all_states(values, 6)
    p = exact_probs(model, states.astype(np.float32))
    algo = discrete_langevin(model, 1.0)
    start = jax.vmap(algo.init)(jnp.asarray(states[exact_draws(p, NUM_CHAINS, seed=31)], jnp.float32))
    (moved,) = run((algo.step,), start, 3, seed=32)
    assert float(jnp.mean(moved.position != start.position)) > 0.1
    assert chi_square_pvalue(state_index(moved.position, values), p) > 1e-3


# ------------------------------------------------------------------------------------------------
# the API


def test_state_info_jit_vmap_and_keys():
    model = strong_boltzmann()
    algo = GenerateSamplingAPI(discrete_langevin, init, build_kernel)(model, step_size=STEP_SIZE)
    state = algo.init(jnp.zeros(10, jnp.int32))  # integers become floats (the gradient needs them)
    assert state.position.dtype == jnp.result_type(float)
    starts = jax.vmap(algo.init)(jax.random.bernoulli(jax.random.key(2), 0.5, (64, 10)).astype(jnp.float32))
    keys = jax.random.split(jax.random.key(3), 64)
    step = jax.jit(jax.vmap(algo.step))
    a, info = step(keys, starts)
    b, _ = step(keys, starts)
    np.testing.assert_array_equal(a.position, b.position)  # same key, same result
    assert a.position.shape == (64, 10) and info.acceptance_rate.shape == (64,)
    first = jax.tree.map(lambda x: x[0], starts)
    one, info_one = jax.jit(algo.step)(keys[0], first)  # one chain
    np.testing.assert_array_equal(one.position, a.position[0])
    np.testing.assert_allclose(info_one.acceptance_rate, info.acceptance_rate[0], rtol=1e-5)
    # flip_rate is the fraction of coordinates changed; rejected steps keep the state
    np.testing.assert_allclose(info.flip_rate, jnp.mean(a.position != starts.position, axis=1))
    assert bool(jnp.all(jnp.where(info.is_accepted, True, jnp.all(a.position == starts.position, axis=1))))
    assert bool(jnp.all((info.acceptance_rate >= 0) & (info.acceptance_rate <= 1)))
    assert 0 < float(jnp.mean(info.is_accepted)) < 1
    # the cached energy and gradient are those of the position
    np.testing.assert_allclose(a.energy, model.energy(a.position), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.energy_grad, jax.vmap(jax.grad(model.unbatched_energy))(a.position), rtol=1e-5,
                               atol=1e-5)
    # the raw kernel is the step; a traced step size works (vmap over step sizes)
    raw, _ = jax.jit(lambda k, s: build_kernel()(k, s, model, STEP_SIZE))(keys[0], first)
    np.testing.assert_array_equal(raw.position, one.position)
    sizes = jnp.array([0.01, 100.0])
    _, by_size = jax.jit(jax.vmap(lambda s: discrete_langevin(model, s).step(keys[0], state)))(sizes)
    assert float(by_size.flip_rate[0]) == 0.0 and float(jnp.mean(by_size.proposal.position[1] != 0)) > 0.2


def test_a_spin_potential_moves_as_its_binary_rewriting_at_the_same_step_size():
    """alpha is measured in units of the squared spacing of the values, so with x = 2 b - 1 a spin
    chain proposes exactly what the 0/1 chain proposes, and the default alpha moves spins (it
    flipped about e^-10 of them when a spin's move cost 4 times a bit's)."""
    bm = strong_boltzmann()
    spin = ep.potential(lambda x: bm.unbatched_energy((x + 1.0) / 2.0), event_shape=(10,), support="spin")
    b = jax.random.bernoulli(jax.random.key(4), 0.5, (64, 10)).astype(jnp.float32)
    values = {"binary": jnp.asarray([0.0, 1.0]), "spin": jnp.asarray([-1.0, 1.0])}
    for step_size in (0.2, 2.0):
        on_bits = jax.vmap(proposal_log_probs, (0, None, None))(jax.vmap(init, (0, None))(b, bm), step_size,
                                                                  values["binary"])
        on_spins = jax.vmap(proposal_log_probs, (0, None, None))(jax.vmap(init, (0, None))(2 * b - 1, spin),
                                                                   step_size, values["spin"])
        np.testing.assert_allclose(on_spins, on_bits, atol=1e-5)
    default = ep.kernels.KERNELS["discrete_langevin"].defaults["step_size"]
    algo = discrete_langevin(spin, default)
    start = jax.vmap(algo.init)(2 * b - 1)
    (end,) = run((algo.step,), start, 20, seed=6)
    assert float(jnp.mean(end.position != start.position)) > 0.1


def test_nan_energies_are_rejections():
    """States whose energy is NaN (here x_0 = x_1 = 1) are proposed and never entered."""
    bm = strong_boltzmann()
    model = ep.potential(lambda x: bm.unbatched_energy(x) + jnp.where(x[0] * x[1] > 0.5, jnp.nan, 0.0),
                         event_shape=(10,), support="binary")
    algo = discrete_langevin(model, STEP_SIZE)
    start = jax.vmap(algo.init)(jnp.zeros((200, 10)))
    (end,) = run((algo.step,), start, 100, seed=5)
    assert not bool(jnp.any((end.position[:, 0] == 1) & (end.position[:, 1] == 1)))
    assert bool(jnp.all(jnp.isfinite(end.energy))) and float(jnp.mean(end.position)) > 0.05


@pytest.mark.parametrize("step_size, message", [(0, "positive number"), (-0.1, "positive number"),
                                                (float("nan"), "finite"), (float("inf"), "finite"),
                                                ("0.1", "real number"), (True, "real number"),
                                                (np.array([0.1, 0.2]), "shape")])
def test_bad_step_size_is_refused(step_size, message):
    with pytest.raises(ValueError, match=f"discrete_langevin: step_size.*{message}"):
        discrete_langevin(strong_boltzmann(), step_size)


def test_unsuitable_potentials_are_refused():
    with pytest.raises(ValueError, match="discrete potentials.*Gaussian has support real.*'mala'"):
        discrete_langevin(ep.Gaussian.standard(2), 0.5)

    def opaque(x):  # an energy JAX cannot differentiate (a host callback without a JVP rule)
        shape = jax.ShapeDtypeStruct((), x.dtype)
        return jax.pure_callback(lambda v: np.sum(v**2).astype(v.dtype), shape, x)

    model = ep.potential(opaque, event_shape=(4,), support="binary")
    with pytest.raises(ValueError, match="gradient of .*unbatched_energy.*jax.grad fails.*'site_gibbs'"):
        discrete_langevin(model, 0.5)
