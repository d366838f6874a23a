"""ep.testing.check_invariance: every kernel of the library (and BlackJAX's MALA, HMC, NUTS) leaves
small targets invariant, and kernels that change the distribution are caught.

Each check starts 10,000 chains (fewer where stated) from exact samples, runs 10 kernel steps and
tests the final states: chi-square against the enumerated probabilities of the 512 to 1024 states
of the discrete models, two-sample Kolmogorov-Smirnov (each coordinate and the energy, Bonferroni)
against a fresh exact draw for the continuous ones. Under a correct kernel the chi-square p-value
is uniform and the Bonferroni one conservative, so a correct kernel fails at alpha = 1e-3 with
probability at most about 1e-3; the seeds are fixed, so each outcome is deterministic. The broken kernels are asserted to fail with p < 1e-6, a margin of three orders
of magnitude below alpha (their observed p-values are far smaller, 1e-14 and below, stated next to
each case), so that the expectations do not hang on one seed.
"""

from __future__ import annotations

import blackjax
import jax
import jax.numpy as jnp
import pytest

import ebm_ppl as ep
from ebm_ppl.testing import InvarianceResult, assert_invariant, check_invariance

ALPHA = 1e-3
BROKEN = 1e-6  # the p-value below which a broken kernel must land (see the module docstring)


# -- targets ----------------------------------------------------------------------------------------

def _boltzmann():
    """10 units, couplings N(0, 1) (strong: the law piles up on few of the 1024 states), small biases."""
    bm = ep.BoltzmannMachine.init(jax.random.key(3), 10, scale=1.0)
    return ep.BoltzmannMachine(bm.W, 0.2 * jax.random.normal(jax.random.key(4), (10,)))


def _rbm(n_visible=10, n_hidden=4):
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    return ep.BernoulliRBM(jax.random.normal(k1, (n_visible, n_hidden)), 0.3 * jax.random.normal(k2, (n_visible,)),
                           0.3 * jax.random.normal(k3, (n_hidden,)))


def _gaussian():
    """N(mu, Sigma) in 2-D with correlation 0.8 (exact samples of its own)."""
    return ep.Gaussian(jnp.array([1.0, -1.0]), jnp.array([[1.0, 0.8], [0.8, 1.0]]))


MIXTURE_MEANS = jnp.array([[-3.0, 0.0], [3.0, 0.0]])
MIXTURE_WEIGHTS = jnp.array([0.3, 0.7])


@ep.potential(event_shape=(2,), support="real")
def mixture(x):
    """0.3 N((-3, 0), I) + 0.7 N((3, 0), I): six standard deviations apart, so no gradient kernel
    crosses between the modes in 10 steps; it passes all the same (it starts from the mixture)."""
    log_components = -0.5 * jnp.sum((x - MIXTURE_MEANS) ** 2, axis=-1) + jnp.log(MIXTURE_WEIGHTS)
    return -jax.nn.logsumexp(log_components)


def _mixture_draws(key, num):
    """Exact draws: a component by its weight, then a standard normal around its mean."""
    key_component, key_noise = jax.random.split(key)
    component = jax.random.categorical(key_component, jnp.log(MIXTURE_WEIGHTS), shape=(num,))
    return MIXTURE_MEANS[component] + jax.random.normal(key_noise, (num, 2))


def _spin_ising():
    """A 3x3 periodic Ising model on spins (event shape (3, 3), 512 states)."""
    def energy(s):
        return -0.35 * jnp.sum(s * (jnp.roll(s, 1, axis=0) + jnp.roll(s, 1, axis=1))) - 0.15 * jnp.sum(s)

    return ep.potential(energy, event_shape=(3, 3), support="spin")


def _potts_chain():
    """Six sites with three states each (729 states); neighbours that agree lower the energy."""
    def energy(x):
        return -0.7 * jnp.sum(x[1:] == x[:-1]) - 0.4 * jnp.sum(x == 2)

    return ep.potential(energy, event_shape=(6,), support=ep.categorical(3))


# -- kernels written here, as plain step(key, x) -> x functions ---------------------------------------

def _random_walk_metropolis(potential, scale):
    """Symmetric Gaussian proposal, Metropolis acceptance: correct."""
    logdensity = potential.logdensity_fn()

    def step(key, x):
        key_move, key_accept = jax.random.split(key)
        proposal = x + scale * jax.random.normal(key_move, x.shape)
        accept = jnp.log(jax.random.uniform(key_accept)) < logdensity(proposal) - logdensity(x)
        return jnp.where(accept, proposal, x)

    return step


def _mala_without_hastings(potential, step_size):
    """MALA's proposal accepted with the density ratio alone (the proposal's asymmetry forgotten):
    the classic bug, biased at any step size."""
    logdensity = potential.logdensity_fn()

    def step(key, x):
        key_move, key_accept = jax.random.split(key)
        proposal = x + step_size * jax.grad(logdensity)(x) + jnp.sqrt(2 * step_size) * jax.random.normal(key_move, x.shape)
        accept = jnp.log(jax.random.uniform(key_accept)) < logdensity(proposal) - logdensity(x)
        return jnp.where(accept, proposal, x)

    return step


def _synchronous_gibbs(bm):
    """Every unit drawn at once from its conditional given the *old* state: not invariant for
    coupled units (a common bug when vectorizing a Gibbs sweep)."""
    def step(key, x):
        return jax.random.bernoulli(key, jax.nn.sigmoid(bm.site_logits(x))).astype(x.dtype)

    return step


def _site_gibbs_skipping_the_last_site(bm):
    """A systematic scan over sites 0 .. D-2 only: each visit keeps p invariant, so the sweep
    does too (it is not ergodic, which this check does not test)."""
    def step(key, x):
        def visit(x, i):
            u = jax.random.uniform(jax.random.fold_in(key, i))
            return x.at[i].set((u < jax.nn.sigmoid(bm.site_logit(x, i))).astype(x.dtype)), None

        return jax.lax.scan(visit, x, jnp.arange(x.shape[0] - 1))[0]

    return step


# -- correct kernels pass --------------------------------------------------------------------------------

def _gradient_kernels():
    inverse_mass = jnp.ones(2)
    return {
        "mala": lambda ld: blackjax.mala(ld, 0.3),
        "hmc": lambda ld: blackjax.hmc(ld, 0.2, inverse_mass, 10),
        "nuts": lambda ld: blackjax.nuts(ld, 0.3, inverse_mass),
    }


def _parallel_tempering(potential):
    """Parallel tempering on 4 rungs whose lower replicas start at exact draws of their own rungs:
    the chain of the whole ladder is invariant for the product of the rungs' laws, so the beta = 1
    replica started from the target stays exact (from any other start of the lower rungs it need
    not, for a while: swaps bring their states up)."""
    algorithm = ep.kernels.parallel_tempering(potential, ep.kernels.parallel_tempering.ladder(4))
    family = ep.kernels.parallel_tempering.tempering(potential)
    betas = ep.kernels.parallel_tempering.ladder(4)

    def init(x, key):
        lower = [ep.partition.exact_samples(jax.random.fold_in(key, r), family.at(b), 1)[0] for r, b in
                 enumerate(betas[:-1])]
        return algorithm.init(jnp.stack([*lower, x]), key)

    return algorithm._replace(init=init)


DISCRETE_CASES = {
    "block_gibbs-rbm": (_rbm, ep.kernels.block_gibbs),
    "gibbs_with_gradients-boltzmann": (_boltzmann, ep.kernels.gibbs_with_gradients),
    "gibbs_with_gradients-rbm": (_rbm, ep.kernels.gibbs_with_gradients),
    "discrete_langevin-boltzmann": (_boltzmann, lambda p: ep.kernels.discrete_langevin(p, 0.3)),
    "discrete_langevin-rbm": (_rbm, lambda p: ep.kernels.discrete_langevin(p, 0.3)),
    "parallel_tempering-boltzmann": (_boltzmann, _parallel_tempering),
    "parallel_tempering-rbm": (_rbm, _parallel_tempering),
    "site_gibbs-rbm": (_rbm, ep.kernels.site_gibbs),  # binary support: site Gibbs on the free energy
    "site_gibbs-boltzmann": (_boltzmann, ep.kernels.site_gibbs),
    "site_gibbs-spin_ising": (_spin_ising, ep.kernels.site_gibbs),
    "site_gibbs-potts": (_potts_chain, ep.kernels.site_gibbs),
    # EXPECTED TO PASS although the sweep never moves the last unit: invariant, not ergodic
    "skip_last_site-boltzmann": (_boltzmann, _site_gibbs_skipping_the_last_site),
}


@pytest.mark.parametrize("case", DISCRETE_CASES)
def test_discrete_kernels_pass_the_chi_square_test(case):
    make, kernel = DISCRETE_CASES[case]
    target = make()
    result = check_invariance(jax.random.key(0), kernel(target), target, alpha=ALPHA)
    assert result.test == "chi-square" and result.num_samples == 10_000 and result.num_steps == 10
    assert result.passed, result


@pytest.mark.parametrize("target, kernel", [
    ("gaussian", "mala"), ("gaussian", "hmc"), ("gaussian", "nuts"), ("mixture", "mala"),
    pytest.param("mixture", "hmc", marks=pytest.mark.slow), pytest.param("mixture", "nuts", marks=pytest.mark.slow),
])
def test_gradient_kernels_pass_the_two_sample_test(target, kernel):
    """BlackJAX's kernels with fixed step sizes; the mixture's exact draws are passed as samples=
    (20,000: 10,000 starts and 10,000 for the reference)."""
    if target == "gaussian":
        potential, options = _gaussian(), {}
    else:
        potential, options = mixture, {"samples": _mixture_draws(jax.random.key(7), 20_000)}
    algorithm = _gradient_kernels()[kernel](potential.logdensity_fn())
    result = check_invariance(jax.random.key(1), algorithm, potential, alpha=ALPHA, **options)
    assert result.test == "two-sample KS" and result.num_samples == 10_000
    assert result.passed, result


@pytest.mark.slow
def test_a_discrete_model_too_large_to_enumerate_gets_the_two_sample_test():
    """30 visible units (2^30 states): no chi-square, but exact samples through the 2^3 hidden
    states, so block Gibbs is compared with a second exact draw; a 10% larger W is caught."""
    rbm = _rbm(30, 3)
    result = check_invariance(jax.random.key(3), ep.kernels.block_gibbs(rbm), rbm, num_samples=5_000)
    assert result.test == "two-sample KS" and result.passed, result
    wrong = ep.BernoulliRBM(1.1 * rbm.W, rbm.b, rbm.c)
    broken = check_invariance(jax.random.key(3), ep.kernels.block_gibbs(wrong), rbm, num_samples=5_000)
    assert broken.p_value < BROKEN, broken


# -- broken kernels fail -------------------------------------------------------------------------------------

def _broken_cases():
    bm, rbm, gaussian = _boltzmann(), _rbm(), _gaussian()
    return {
        # the conditionals of an RBM whose weights are 15% larger (observed p ~ 2e-36; with 10% larger
        # weights p ~ 1e-7 to 1e-12 by seed, too close to the margin)
        "block_gibbs-of-rbm-with-1.15W": (rbm, ep.kernels.block_gibbs(ep.BernoulliRBM(1.15 * rbm.W, rbm.b, rbm.c)), {}),
        # site Gibbs of a Boltzmann machine whose biases are 0.2 larger (observed p ~ 1e-47)
        "site_gibbs-of-bm-with-b+0.2": (bm, ep.kernels.site_gibbs(ep.BoltzmannMachine(bm.W, bm.b + 0.2)), {}),
        "synchronous_gibbs": (bm, _synchronous_gibbs(bm), {"num_steps": 1}),  # one step is enough: p = 0
        # EXPECTED TO FAIL: ebm_ppl's Langevin is unadjusted, and its O(step) bias is plain at step 0.3
        # (p = 0 on the Gaussian, ~1e-14 on the mixture)
        "langevin-0.3-gaussian": (gaussian, ep.kernels.langevin(gaussian.logdensity_fn(), 0.3), {}),
        "langevin-0.3-mixture": (mixture, ep.kernels.langevin(mixture.logdensity_fn(), 0.3),
                                 {"samples": _mixture_draws(jax.random.key(9), 20_000)}),
        "mala_without_hastings": (gaussian, _mala_without_hastings(gaussian, 0.3), {}),  # p ~ 1e-76
    }


BROKEN_CASES = ["block_gibbs-of-rbm-with-1.15W", "site_gibbs-of-bm-with-b+0.2", "synchronous_gibbs",
                "langevin-0.3-gaussian", "langevin-0.3-mixture", "mala_without_hastings"]


@pytest.mark.parametrize("case", BROKEN_CASES)
def test_broken_kernels_fail(case):
    potential, algorithm, options = _broken_cases()[case]
    result = check_invariance(jax.random.key(4), algorithm, potential, alpha=ALPHA, **options)
    assert not result.passed and result.p_value < BROKEN, result
    assert "FAILED" in str(result) and "not its stationary law" in str(result)


def test_states_off_the_support_fail_outright():
    bm, gaussian = _boltzmann(), _gaussian()
    halves = check_invariance(jax.random.key(5), lambda key, x: 0.5 * x, bm)
    assert halves.p_value == 0.0 and "off the binary support" in halves.detail
    nans = check_invariance(jax.random.key(5), lambda key, x: x * jnp.nan, gaussian)
    assert nans.p_value == 0.0 and "not finite" in nans.detail


def test_a_rare_escape_from_a_box_fails_outright_where_the_energy_stays_finite():
    """E(x) = 2 x is finite everywhere, so only the support tells that x = 5 is impossible; the
    KS test alone would not notice ~10 of 10,000 chains leaving."""
    slope = ep.potential(lambda x: 2.0 * jnp.sum(x), event_shape=(1,), support=ep.box(0.0, 1.0))
    u = jax.random.uniform(jax.random.key(6), (20000, 1))
    draws = -0.5 * jnp.log1p(u * jnp.expm1(-2.0))  # exact: the inverse CDF of p(x) ∝ exp(-2 x) on [0, 1]
    escape = lambda key, x: jnp.where(jax.random.uniform(key) < 1e-3, x + 5.0, x)  # noqa: E731
    result = check_invariance(jax.random.key(7), escape, slope, samples=draws)
    assert result.p_value == 0.0 and "off the box(0, 1) support" in result.detail, result
    stay = check_invariance(jax.random.key(7), lambda key, x: x, slope, samples=draws)
    assert stay.passed, stay


# -- the result, the assertion, determinism ------------------------------------------------------------------------

def test_assert_invariant_returns_or_raises_with_the_message():
    gaussian = _gaussian()
    passed = assert_invariant(jax.random.key(6), blackjax.mala(gaussian.logdensity_fn(), 0.3), gaussian)
    assert isinstance(passed, InvarianceResult) and passed.passed and passed.alpha == ALPHA
    assert str(passed).startswith("invariance check passed: two-sample KS p = ")
    with pytest.raises(AssertionError, match=r"invariance check FAILED: two-sample KS p = .* < alpha = 0.001"):
        assert_invariant(jax.random.key(6), ep.kernels.langevin(gaussian.logdensity_fn(), 0.5), gaussian)


def test_the_same_key_gives_the_same_result():
    bm = _boltzmann()
    algorithm = ep.kernels.site_gibbs(bm)
    first, again = (check_invariance(jax.random.key(7), algorithm, bm, num_steps=2) for _ in range(2))
    other = check_invariance(jax.random.key(8), algorithm, bm, num_steps=2)
    assert first == again and first.statistic != other.statistic
    assert first.num_samples == 10_000 and first.num_steps == 2 and "cells" in first.detail


def test_samples_are_split_into_starts_and_reference():
    """Two-sample test: the first half of the draws start the chains, the second half is the
    reference (an odd draw left over); here with a plain step function (random-walk Metropolis,
    correct) on the mixture."""
    draws = _mixture_draws(jax.random.key(10), 20_001)
    step = _random_walk_metropolis(mixture, 1.0)
    result = check_invariance(jax.random.key(11), step, mixture, samples=draws)
    assert result.num_samples == 10_000 and result.passed, result
    rbm = _rbm()  # chi-square: the first num_samples draws start the chains
    starts = rbm.exact_samples(jax.random.key(12), 10_000)
    result = check_invariance(jax.random.key(13), ep.kernels.block_gibbs(rbm), rbm, samples=starts, num_samples=8_000)
    assert result.num_samples == 8_000 and result.passed, result


# -- bad input -----------------------------------------------------------------------------------------------------

def _no_position_algorithm():
    """init returns a bare tuple: no .position to read the chain's state from."""
    return blackjax.base.SamplingAlgorithm(lambda x: (x,), lambda key, state: (state, None))


@pytest.mark.parametrize("call, message", [
    (lambda: check_invariance(jax.random.key(0), ep.kernels.site_gibbs(_boltzmann()), _boltzmann(), num_samples=0),
     r"num_samples must be a positive integer"),
    (lambda: check_invariance(jax.random.key(0), ep.kernels.site_gibbs(_boltzmann()), _boltzmann(), num_steps=0),
     r"num_steps must be a positive integer"),
    (lambda: check_invariance(jax.random.key(0), ep.kernels.site_gibbs(_boltzmann()), _boltzmann(), alpha=1.0),
     r"alpha must lie strictly between 0 and 1"),
    (lambda: check_invariance(jax.random.key(0), blackjax.mala(mixture.logdensity_fn(), 0.1), mixture),
     r"has no exact samples .* pass exact draws yourself as samples="),
    (lambda: check_invariance(jax.random.key(0), ep.kernels.site_gibbs, _boltzmann()),
     r"is an algorithm's constructor, not an algorithm; build it"),
    (lambda: check_invariance(jax.random.key(0), blackjax.nuts, _gaussian()), r"constructor, not an algorithm"),
    (lambda: check_invariance(jax.random.key(0), _boltzmann(), _boltzmann()), r"algorithm is a Potential"),
    (lambda: check_invariance(jax.random.key(0), 3, _boltzmann()), r"must be a SamplingAlgorithm .* got int"),
    (lambda: check_invariance(jax.random.key(0), _no_position_algorithm(), _gaussian(), num_samples=10),
     r"has no \.position field"),
    (lambda: check_invariance(jax.random.key(0), lambda key, x: x[:1], _gaussian(), num_samples=10),
     r"a step of the kernel gives positions of shape \(1,\) .* events have shape \(2,\)"),
    (lambda: check_invariance(jax.random.key(0), lambda key, x: x, mixture, samples=jnp.zeros((10, 3))),
     r"samples has shape \(10, 3\)"),
    (lambda: check_invariance(jax.random.key(0), lambda key, x: x, mixture, samples=jnp.zeros(2)),
     r"samples must have shape \(M, 2\)"),
    (lambda: check_invariance(jax.random.key(0), lambda key, x: x, mixture, samples=jnp.zeros((10, 2)),
                              num_samples=6), r"needs 2 x num_samples .* samples holds 10 for num_samples=6"),
    (lambda: check_invariance(jax.random.key(0), lambda key, x: x, _boltzmann(), samples=jnp.full((4, 10), 0.5)),
     r"must be binary"),
    (lambda: check_invariance(jax.random.key(0), ep.kernels.site_gibbs(_boltzmann()), _boltzmann(), num_samples=5),
     r"5 samples are too few for a chi-square test over 1024 states"),
    (lambda: check_invariance(jax.random.key(0), lambda key, x: x, lambda x: x), r"expects an ebm_ppl.Potential"),
])
def test_bad_input_is_refused_at_the_boundary(call, message):
    error = TypeError if "expects an ebm_ppl.Potential" in message else ValueError
    with pytest.raises(error, match=message):
        call()
