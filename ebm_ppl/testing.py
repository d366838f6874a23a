"""A stationarity test any kernel author can run: does the kernel leave the target invariant?

:func:`check_invariance` draws exact samples from a potential, moves each with ``num_steps``
steps of the kernel (independently: one chain per sample, ``vmap`` over the chains, ``lax.scan``
over the steps, explicit keys) and tests that the final states still follow the exact
distribution. A kernel whose stationary law is the target passes however slowly it mixes, since
its chains start there; a kernel that changes the distribution (a sampler with a bug, a missing
Metropolis correction, the conditionals of another model, unadjusted Langevin at a large step)
fails once ``num_samples`` is large enough to see the change. This is Geweke's (2004) idea of
testing a sampler from the distribution it should preserve, in its simplest form.

Two tests, chosen by the potential:

* **chi-square** (discrete supports whose ``q^D`` states number at most
  :data:`MAX_CHI_SQUARE_STATES`): the final states' counts against the exact probabilities
  ``exp(-E(x)) / Z`` from enumerating every state (:mod:`ebm_ppl.potentials.enumeration`),
  Pearson's statistic with ``cells - 1`` degrees of freedom. States expected fewer than
  :data:`MIN_EXPECTED` times are pooled into one cell (and that cell, if itself expected fewer
  than :data:`MIN_EXPECTED` times, into the smallest other cell), so that every cell's expected
  count is at least 5 and the chi-square approximation holds (Cochran's rule).
* **two-sample Kolmogorov-Smirnov** (continuous supports, and discrete ones too large to
  enumerate): the final states against a second, independent exact draw of the same size, one
  KS test per coordinate of the event and one on the energies ``E(x)`` (which sees changes of
  the joint law that every marginal misses, such as a wrong correlation), combined by Bonferroni's
  correction: ``p = min(1, m * min_j p_j)`` over the ``m = D + 1`` tests, a valid p-value
  whatever their dependence. The p-values are the asymptotic ones of the two-sample KS statistic
  (accurate for the thousands of samples the check uses). On discrete coordinates, whose ties make
  KS conservative, the test stays valid and loses some power.

A final state off the support (a value a binary potential does not take, a value outside a box,
NaN, an infinite energy, a state of probability 0) fails the check outright with ``p = 0``.

    >>> rbm = ep.BernoulliRBM.init(jax.random.key(0), 8, 3, scale=1.0)
    >>> ep.testing.assert_invariant(jax.random.key(1), ep.kernels.block_gibbs(rbm), rbm)
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.compiler import filter_jit
from ebm_ppl.partition import exact_samples
from ebm_ppl.potentials import enumeration
from ebm_ppl.potentials.base import Potential, check_potential, validate_input
from ebm_ppl.potentials.capabilities import has_exact_samples

__all__ = ["InvarianceResult", "check_invariance", "assert_invariant", "MAX_CHI_SQUARE_STATES", "MIN_EXPECTED"]

#: Largest discrete state space tested by chi-square against enumerated probabilities (2^22, the
#: limit of exact samples by enumeration); larger ones get the two-sample test.
MAX_CHI_SQUARE_STATES = enumeration.MAX_EXACT_STATES
#: The smallest expected count of a chi-square cell; states expected fewer times are pooled.
MIN_EXPECTED = 5.0
#: The number of chains when neither ``num_samples`` nor ``samples`` says otherwise.
DEFAULT_NUM_SAMPLES = 10_000

CHI_SQUARE = "chi-square"
TWO_SAMPLE_KS = "two-sample KS"


class InvarianceResult(NamedTuple):
    """The outcome of :func:`check_invariance`.

    Attributes:
        test: ``"chi-square"`` or ``"two-sample KS"`` (the module docstring describes both).
        statistic: Pearson's chi-square statistic, or the KS distance of the test with the smallest p-value.
        p_value: the p-value of "the kernel leaves the target invariant" (Bonferroni-corrected for KS).
        alpha: the significance level; the check passes when ``p_value >= alpha``.
        num_samples: the number of chains (exact samples moved by the kernel).
        num_steps: the kernel steps applied to each.
        detail: one line on how the statistic came about (cells, pooled states, the worst test).
    """

    test: str
    statistic: float
    p_value: float
    alpha: float
    num_samples: int
    num_steps: int
    detail: str

    @property
    def passed(self) -> bool:
        """Whether ``p_value >= alpha``: no evidence that the kernel changes the target."""
        return self.p_value >= self.alpha

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        relation = ">=" if self.passed else "<"
        text = (f"invariance check {verdict}: {self.test} p = {self.p_value:.3g} {relation} alpha = {self.alpha:g} "
                f"(statistic {self.statistic:.4g}; {self.num_samples} exact samples, {self.num_steps} kernel "
                f"step(s) each; {self.detail})")
        if not self.passed:
            text += (". The kernel changed the distribution of exact samples, so the target is not its stationary "
                     "law: a bug, conditionals of another model, or a biased kernel (unadjusted Langevin, a "
                     "missing Metropolis-Hastings correction). Slow mixing alone does not fail this check.")
        return text


def check_invariance(
    key: PRNGKeyArray,
    algorithm: Any,
    potential: Potential,
    *,
    num_samples: int | None = None,
    num_steps: int = 10,
    alpha: float = 1e-3,
    samples: ArrayLike | None = None,
) -> InvarianceResult:
    """Test that ``num_steps`` steps of ``algorithm`` leave ``potential``'s distribution invariant.

    The chains are run under ``jax.jit`` (``vmap`` over chains, ``lax.scan`` over steps); the
    test statistic is computed on the host. The same key gives the same result.

    Args:
        key: the PRNG key; the exact draws, the chains' keys and the reference draw are split from it.
        algorithm: the kernel, built for ``potential`` and working on its positions ``x``
            (``event_shape``): a BlackJAX-style ``SamplingAlgorithm`` with ``init(position[,
            rng_key])`` and ``step(rng_key, state) -> (state, info)`` whose states carry
            ``.position`` (``ep.kernels.block_gibbs(rbm)``, ``blackjax.mala(logdensity_fn,
            0.1)``), or a plain function ``step(rng_key, x) -> x`` on one position.
        potential: the target; it needs exact samples (``exact_samples(key, num)``, or a
            discrete support small enough to enumerate) unless ``samples`` is given.
        num_samples: the number of chains, each started from one exact sample; default 10,000,
            or, with ``samples``, as many as they provide.
        num_steps: kernel steps per chain, >= 1.
        alpha: the significance level, in (0, 1); the default 1e-3 keeps false alarms rare in a
            suite that runs many checks.
        samples: independent exact draws ``(M, *event_shape)`` to use instead of the potential's
            own (a mixture you can draw from directly, say). The chi-square test starts the chains
            from the first ``num_samples``; the two-sample test from the first ``num_samples`` and
            compares with the next ``num_samples`` (so it needs ``M >= 2 num_samples``; by default
            ``num_samples = M // 2``).

    Returns:
        An :class:`InvarianceResult`; ``result.passed`` says whether ``p_value >= alpha``.

    Raises:
        ValueError: for a non-positive ``num_samples`` or ``num_steps``, ``alpha`` outside (0, 1),
            an ``algorithm`` that is neither a built ``SamplingAlgorithm`` nor a step function or
            whose states do not hold positions of the event's shape, a potential without exact
            samples and no ``samples``, ``samples`` of the wrong shape or too few of them, or too
            few samples for a chi-square test with two cells.
        TypeError: when ``potential`` is not an :class:`~ebm_ppl.Potential`.
    """
    potential = check_potential(potential, "check_invariance")
    num_steps = checks.positive_int(num_steps, "check_invariance: num_steps")
    alpha = checks.probability(alpha, "check_invariance: alpha")
    if num_samples is not None:
        num_samples = checks.positive_int(num_samples, "check_invariance: num_samples")
    kernel = _as_kernel(algorithm)
    test = _choose_test(potential)
    if samples is None:
        _check_exact_samples(potential, test)
        num_samples = DEFAULT_NUM_SAMPLES if num_samples is None else num_samples
    else:
        samples, num_samples = _check_samples(samples, potential, test, num_samples)
    if test == CHI_SQUARE:  # before any sampling: too few samples for two cells is refused first
        probs = _state_probabilities(potential)
        cells, expected = _pooled_cells(probs, num_samples)
    key_start, key_reference, key_chains = jax.random.split(key, 3)
    starts, reference = _exact_draws(key_start, key_reference, potential, test, num_samples, samples)
    _check_kernel(kernel, starts[0])
    final = _final_positions(kernel, num_steps, key_chains, starts)
    if test == CHI_SQUARE:
        return _chi_square(final, potential, probs, cells, expected, alpha, num_steps)
    return _two_sample_ks(final, reference, potential, alpha, num_steps)


def assert_invariant(key: PRNGKeyArray, algorithm: Any, potential: Potential, **options: Any) -> InvarianceResult:
    """:func:`check_invariance`, raising an AssertionError with the result's text when it fails
    (the line to put in a kernel's test suite); returns the result when it passes.

    Args:
        key: the PRNG key.
        algorithm: the kernel (as for :func:`check_invariance`).
        potential: the target.
        **options: ``num_samples``, ``num_steps``, ``alpha``, ``samples``.
    """
    result = check_invariance(key, algorithm, potential, **options)
    if not result.passed:
        raise AssertionError(str(result))
    return result


# -- the boundary -----------------------------------------------------------------------------------


def _num_states(potential: Potential) -> int:
    return len(potential.support.values) ** math.prod(potential.event_shape)


def _choose_test(potential: Potential) -> str:
    if not potential.support.continuous and _num_states(potential) <= MAX_CHI_SQUARE_STATES:
        return CHI_SQUARE
    return TWO_SAMPLE_KS


def _check_exact_samples(potential: Potential, test: str) -> None:
    if not (has_exact_samples(potential) or test == CHI_SQUARE):
        raise ValueError(
            f"check_invariance: {type(potential).__name__} (support {potential.support}, event shape "
            f"{potential.event_shape}) has no exact samples (no exact_samples(key, num) method, and it is not a "
            "discrete potential small enough to enumerate); pass exact draws yourself as samples=")


def _check_samples(samples: ArrayLike, potential: Potential, test: str, num_samples: int | None) -> tuple[Array, int]:
    """The caller's exact draws as an array ``(M, *event)`` and the number of chains they start."""
    samples = validate_input(samples, potential.event_shape, potential.support, name="samples",
                             owner="check_invariance")
    if samples.ndim != len(potential.event_shape) + 1:
        raise ValueError(f"check_invariance: samples must have shape (M, {', '.join(map(str, potential.event_shape))}),"
                         f" one row per exact draw; got {tuple(samples.shape)}")
    per_chain = 1 if test == CHI_SQUARE else 2
    num = samples.shape[0] // per_chain if num_samples is None else num_samples
    if num < 1 or samples.shape[0] < per_chain * num:
        need = "2 x num_samples (starts, then an independent reference)" if per_chain == 2 else "num_samples"
        raise ValueError(f"check_invariance: the {test} test needs {need} exact draws; samples holds "
                         f"{samples.shape[0]}" + ("" if num_samples is None else f" for num_samples={num_samples}"))
    return samples, num


def _exact_draws(key_start, key_reference, potential: Potential, test: str, num: int,
                 samples: Array | None) -> tuple[Array, Array | None]:
    """The chains' starts ``(num, *event)`` and, for the two-sample test, the reference
    ``(num, *event)``: the caller's ``samples`` in that order, or the potential's exact draws."""
    if samples is not None:
        return samples[:num], (samples[num:2 * num] if test == TWO_SAMPLE_KS else None)
    starts = _exact_samples(key_start, potential, num)
    reference = _exact_samples(key_reference, potential, num) if test == TWO_SAMPLE_KS else None
    return starts, reference


_NOT_TRACEABLE = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                  jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError)


def _exact_samples(key: PRNGKeyArray, potential: Potential, num: int) -> Array:
    """:func:`ebm_ppl.partition.exact_samples`, compiled once per potential structure and ``num``
    (so checks of one model share the program), or as it is where the potential's own
    ``exact_samples`` cannot be traced."""
    try:
        return _jitted_exact_samples(key, potential, num)
    except _NOT_TRACEABLE:
        return exact_samples(key, potential, num)


@filter_jit
def _jitted_exact_samples(key: PRNGKeyArray, potential: Potential, num: int) -> Array:
    return exact_samples(key, potential, num)


def _takes_key(init: Callable) -> bool:
    """Whether ``init`` accepts a second positional argument (BlackJAX's ``rng_key``)."""
    try:
        parameters = inspect.signature(init).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


class _Kernel(NamedTuple):
    """Either kind of algorithm behind one interface; hashable when its functions are, so that the
    chains of an algorithm checked again reuse their compiled program."""

    init: Callable | None  # None: a plain step function, whose state is the position
    step: Callable
    init_takes_key: bool

    def start(self, x: Array, key: PRNGKeyArray) -> Any:
        if self.init is None:
            return x
        return self.init(x, key) if self.init_takes_key else self.init(x)

    def advance(self, key: PRNGKeyArray, state: Any) -> Any:
        return self.step(key, state) if self.init is None else self.step(key, state)[0]


def _as_kernel(algorithm: Any) -> _Kernel:
    if callable(getattr(algorithm, "init", None)) and callable(getattr(algorithm, "step", None)):
        return _Kernel(algorithm.init, algorithm.step, _takes_key(algorithm.init))
    name = getattr(algorithm, "__name__", type(algorithm).__name__)
    if callable(getattr(algorithm, "build_kernel", None)):
        raise ValueError(f"check_invariance: algorithm {name} is an algorithm's constructor, not an algorithm; "
                         "build it for the potential first, e.g. ep.kernels.site_gibbs(potential) or "
                         "blackjax.mala(potential.logdensity_fn(), step_size)")
    if isinstance(algorithm, Potential):
        raise ValueError("check_invariance: algorithm is a Potential; the arguments are (key, algorithm, potential)")
    if callable(algorithm) and not isinstance(algorithm, type):
        return _Kernel(None, algorithm, False)
    raise ValueError(f"check_invariance: algorithm must be a SamplingAlgorithm (init, step) or a function "
                     f"step(rng_key, x) -> x; got {type(algorithm).__name__}")


class _PositionError(TypeError):
    pass


def _position(state: Any) -> Array:
    if isinstance(state, jax.Array):  # a plain step function's state is the position
        return state
    if not hasattr(state, "position"):
        raise _PositionError(f"the algorithm's state {type(state).__name__} has no .position field; BlackJAX-style "
                             "states carry the position they stand at")
    return state.position


def _check_kernel(kernel: _Kernel, example: Array) -> None:
    """Refuse, by abstract evaluation of ``init`` and one ``step`` from ``example``, a kernel whose
    states hold no positions, or positions of another shape or dtype than the event's."""
    def first_step(key, x):
        state = kernel.start(x, key)
        return _position(state), _position(kernel.advance(key, state))

    try:
        positions = jax.eval_shape(first_step, jax.random.key(0), example)
    except _PositionError as exc:
        raise ValueError(f"check_invariance: {exc}") from None
    for what, out in zip(("init", "a step"), positions):
        if out.shape != example.shape or out.dtype != example.dtype:
            raise ValueError(f"check_invariance: {what} of the kernel gives positions of shape {out.shape} and dtype "
                             f"{out.dtype}; the potential's events have shape {example.shape} and dtype "
                             f"{example.dtype}. Build the algorithm for this potential (on x, not a transformed space)")


def _chain(kernel: _Kernel, num_steps: int, key: PRNGKeyArray, x0: Array) -> Array:
    """The position after ``num_steps`` kernel steps from ``x0`` (init, then a ``lax.scan``)."""
    key_init, key_steps = jax.random.split(key)

    def body(state, k):
        return kernel.advance(k, state), None

    state, _ = jax.lax.scan(body, kernel.start(x0, key_init), jax.random.split(key_steps, num_steps))
    return _position(state)


def _chains(kernel: _Kernel, num_steps: int, keys: Array, starts: Array) -> Array:
    return jax.vmap(functools.partial(_chain, kernel, num_steps))(keys, starts)


_cached_chains = filter_jit(_chains)  # the kernel's functions are static: one program per algorithm


def _final_positions(kernel: _Kernel, num_steps: int, key: PRNGKeyArray, starts: Array) -> np.ndarray:
    """Every chain's final position ``(N, *event)``: one chain per start, vmapped, jitted."""
    keys = jax.random.split(key, starts.shape[0])
    try:
        hash(kernel)
    except TypeError:  # functions that cannot be static arguments: compiled for this call only
        return np.asarray(jax.jit(functools.partial(_chains, kernel, num_steps))(keys, starts))
    return np.asarray(_cached_chains(kernel, num_steps, keys, starts))


# -- the tests ----------------------------------------------------------------------------------------

def _state_probabilities(potential: Potential) -> np.ndarray:
    """``p(x)`` of every state numbered as :func:`~ebm_ppl.potentials.enumeration.index_to_states`
    numbers them (C order over the event, first coordinate least significant), in float64."""
    log_w = np.asarray(_state_log_weights(potential), np.float64)
    log_w -= np.logaddexp.reduce(log_w)
    return np.exp(log_w)


@filter_jit
def _state_log_weights(potential: Potential) -> Array:
    """``-E(x)`` of every state, in :func:`_state_probabilities`' numbering."""
    values, size, shape = potential.support.values, math.prod(potential.event_shape), potential.event_shape

    def log_term(index):
        x = enumeration.index_to_states(index, values, size).reshape(-1, *shape)
        return -jax.vmap(potential.unbatched_energy)(x)

    return enumeration.log_weights(log_term, _num_states(potential))


@filter_jit
def _energies(potential: Potential, x: Array) -> Array:
    return jax.vmap(potential.unbatched_energy)(x)


def _pooled_cells(probs: np.ndarray, num: int) -> tuple[np.ndarray, np.ndarray]:
    """The chi-square cell of each state and each cell's expected count (module docstring's rule)."""
    expected = probs * num
    big = expected >= MIN_EXPECTED
    cells = np.where(big, np.cumsum(big) - 1, -1)
    cell_expected = expected[big]
    small = expected[~big].sum()
    if small >= MIN_EXPECTED:
        cells[~big] = len(cell_expected)
        cell_expected = np.append(cell_expected, small)
    elif small > 0 and len(cell_expected) > 0:
        smallest = int(np.argmin(cell_expected))
        cells[~big] = smallest
        cell_expected[smallest] += small
    if len(cell_expected) < 2:
        raise ValueError(f"check_invariance: {num} samples are too few for a chi-square test over "
                         f"{len(probs)} states: fewer than 2 cells are expected {MIN_EXPECTED:g} or more times; "
                         "raise num_samples")
    return cells, cell_expected


def _state_indices(x: np.ndarray, values: tuple[float, ...]) -> np.ndarray | None:
    """The number of each state ``(N, *event)`` (:func:`_state_probabilities`' numbering), or
    None when a coordinate holds a value off the support."""
    flat = x.reshape(x.shape[0], -1)
    digits = np.searchsorted(np.asarray(values), flat).clip(0, len(values) - 1)
    if not np.array_equal(np.asarray(values)[digits], flat):
        return None
    return digits.astype(np.int64) @ (len(values) ** np.arange(flat.shape[1], dtype=np.int64))


def _chi_square(final: np.ndarray, potential: Potential, probs: np.ndarray, cells: np.ndarray,
                expected: np.ndarray, alpha: float, num_steps: int) -> InvarianceResult:
    num = final.shape[0]
    index = _state_indices(final, potential.support.values)
    if index is None:
        bad = int(np.sum(~np.isin(final, potential.support.values)))
        return InvarianceResult(CHI_SQUARE, math.inf, 0.0, alpha, num, num_steps,
                                f"{bad} final coordinate(s) off the {potential.support} support")
    impossible = int(np.sum(probs[index] == 0))
    if impossible:
        return InvarianceResult(CHI_SQUARE, math.inf, 0.0, alpha, num, num_steps,
                                f"{impossible} final state(s) of probability 0")
    observed = np.bincount(cells[index], minlength=len(expected))
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    df = len(expected) - 1
    pooled = int(np.sum(probs * num < MIN_EXPECTED))
    detail = (f"{len(expected)} cells, df = {df}, over {len(probs)} states of which {pooled} expected fewer than "
              f"{MIN_EXPECTED:g} times were pooled")
    from scipy import stats  # on first use (scipy.stats is a tenth of a second at import)

    return InvarianceResult(CHI_SQUARE, statistic, float(stats.chi2.sf(statistic, df)), alpha, num, num_steps, detail)


def _two_sample_ks(final: np.ndarray, reference: Array, potential: Potential, alpha: float,
                   num_steps: int) -> InvarianceResult:
    num = final.shape[0]
    flat = final.reshape(num, -1)
    # off the support: outside a box, or a value a discrete support does not take (an energy may
    # well be finite there, so the energies cannot tell)
    inside = np.all(np.asarray(potential.support.constraint()(jnp.asarray(flat))), axis=1) & np.all(np.isfinite(flat), axis=1)
    if not np.all(inside):
        return InvarianceResult(TWO_SAMPLE_KS, math.inf, 0.0, alpha, num, num_steps,
                                f"{int(np.sum(~inside))} final state(s) off the {potential.support} support or not finite")
    final_energy = np.asarray(_energies(potential, jnp.asarray(final)), np.float64)
    if not np.all(np.isfinite(final_energy)):
        return InvarianceResult(TWO_SAMPLE_KS, math.inf, 0.0, alpha, num, num_steps,
                                f"{int(np.sum(~np.isfinite(final_energy)))} final state(s) with a non-finite energy")
    reference = np.asarray(reference)
    columns = [(_coordinate_name(j, potential.event_shape), final.reshape(num, -1)[:, j], reference.reshape(num, -1)[:, j])
               for j in range(math.prod(potential.event_shape))]
    columns.append(("the energy", final_energy, np.asarray(_energies(potential, jnp.asarray(reference)), np.float64)))
    from scipy import stats

    results = [(name, stats.ks_2samp(a, b, method="asymp")) for name, a, b in columns]
    name, worst = min(results, key=lambda r: r[1].pvalue)
    p_value = min(1.0, len(results) * float(worst.pvalue))
    detail = (f"{len(results)} KS tests (each coordinate and the energy) against {num} independent exact draws, "
              f"Bonferroni; smallest p = {worst.pvalue:.3g} on {name}")
    return InvarianceResult(TWO_SAMPLE_KS, float(worst.statistic), p_value, alpha, num, num_steps, detail)


def _coordinate_name(flat_index: int, shape: tuple[int, ...]) -> str:
    index = tuple(int(i) for i in np.unravel_index(flat_index, shape))
    return f"coordinate {index[0] if len(index) == 1 else index}"
