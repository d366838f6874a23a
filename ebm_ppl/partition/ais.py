"""Annealed importance sampling (Neal 2001) forward and in reverse, for any registered potential.

Forward AIS draws x_0 from the base p_0 exactly and, for k = 1..K, adds
``log f_k(x) - log f_{k-1}(x)`` to the chain's log-weight before moving x with a transition that
leaves p_k invariant. ``E[w] = Z_K / Z_0``, so ``log Z_0 + log mean(w)`` estimates log Z and, by
Jensen, underestimates it in expectation: a stochastic lower bound.

Reverse AIS runs the same path backwards from samples of the target: for k = K..1 it adds
``log f_{k-1}(x) - log f_k(x)`` and then moves x with the transition at beta_{k-1}. Started from
exact target samples, ``E[w] = Z_0 / Z_K``, so ``log Z_0 - log mean(w)`` overestimates log Z in
expectation: the other side of the sandwich (the reverse-annealing bound of Burda et al. 2015).
Started from data or long-chain samples that bound is only approximate; the estimate says which.

The reverse recursion is the one of Burda, Grosse & Salakhutdinov (2015), as corrected by Upadhya
& Sastry (2015, eq. 10), and the one RBMsAnnealedImportanceSampling.jl and the BDMC reference code
implement from exact target samples: the schedule reversed, weights ``sum_k [log f_{k-1}(x_k) -
log f_k(x_k)]``, each increment taken before the move at the same temperature, and
``log Z = log Z_0 - logmeanexp(log w)``.

Started from any points x_i, each chain's weight also gives RAISE's per-example estimate (Burda,
Grosse & Salakhutdinov 2015): the transitions are reversible (the x-marginal of a two-block Gibbs
sweep is), so ``log f_K(x_i) - log Z_0 + log w_i`` estimates, unbiasedly in Z-space, the
likelihood of x_i under the annealed model (the law of the forward chain's end point), and its
mean over held-out data is a conservative estimate of their mean log-likelihood
(``AISEstimate.start_log_likelihood``); the hidden units are summed out of every f_k.
"""

from __future__ import annotations

import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.compiler import filter_jit, sized_by
from ebm_ppl.progress import progress_fori_loop
from ebm_ppl.partition.estimate import AISEstimate, summarize_log_weights, warn_if_degenerate
from ebm_ppl.partition.choice import make_path
from ebm_ppl.partition.schedule import (ADAPTIVE, MIN_BUCKET, MIN_TEMPERATURES, PILOT_CHAINS, PILOT_TEMPERATURES,
                                       default_schedule, equal_variance_schedule, linear_schedule, padded_schedule,
                                       validate_schedule)
from ebm_ppl.potentials.base import Potential, check_potential, validate_input
from ebm_ppl.random import DEFAULT_IMPL, rekey
from ebm_ppl.sharding import axis_sharding, constrain, onto_mesh, sharded_key, to_host

__all__ = ["ais", "reverse_ais"]

MIN_CHAINS = 2
CHUNK = 16  # temperatures per block of random numbers; divides every bucket


@sized_by("potential")
def ais(
    key: PRNGKeyArray,
    potential: Potential,
    *,
    num_chains: int = 100,
    num_temperatures: int = 1000,
    schedule: ArrayLike | None = None,
    base: Potential | None = None,
    data: ArrayLike | None = None,
    kernel: str | None = None,
    num_integration_steps: int = 5,
    progress: bool = False,
    prng_impl: str | None = DEFAULT_IMPL,
    max_memory: int | None = None,
) -> AISEstimate:
    """Forward AIS estimate of log Z (a stochastic lower bound).

    Args:
        key: PRNG key.
        potential: the target; Boltzmann-family models anneal their parameters from a
            zero-coupling base with exact Gibbs moves, real potentials anneal geometrically from a
            Gaussian with BlackJAX MALA (or HMC) moves.
        num_chains: independent annealing runs (>= 2; 100 or more for a usable error bar).
        num_temperatures: K; ignored when ``schedule`` is given.
        schedule: inverse temperatures ``(K + 1,)`` from 0 to 1, strictly increasing; or
            ``"adaptive"``: K + 1 temperatures placed from a pilot run (linear, up to 128
            temperatures and 64 chains, its cost included in ``wall_time``) so that every step
            adds the same log-weight variance
            (:func:`~ebm_ppl.partition.schedule.equal_variance_schedule`); default
            :func:`~ebm_ppl.partition.schedule.default_schedule` (denser near 1).
        base: the beta = 0 model: a zero-coupling model of the target's family, or an
            ``ep.Gaussian`` for real potentials. Default: ``target.base_model(data)``, the
            family with its couplings (and hidden biases) set to zero and its visible fields
            fitted to ``data`` when given (the base-rate model), else kept as the target's own;
            N(0, I) (or a Gaussian fitted to ``data``) for real x. For the uniform base of other
            libraries, pass the model of the target's shapes with every parameter zero (e.g.
            ``ep.BernoulliRBM(0 * rbm.W, 0 * rbm.b, 0 * rbm.c)``).
        data: ``(N, *event_shape)`` samples used to fit the base.
        kernel: ``"mala"`` (default) or ``"hmc"`` for real potentials; Gibbs for the rest.
        num_integration_steps: leapfrog steps per HMC move.
        progress: show a progress bar over temperatures.
        prng_impl: PRNG implementation the run draws from, seeded one-to-one by ``key``
            (:mod:`ebm_ppl.random`; ebm_ppl's Philox-2x32 by default); None keeps ``key``'s own.
            With several devices (of every process, under ``jax.distributed``) dividing
            ``num_chains``, the chains are sharded over them and draw the one-device run's random
            numbers (ebm_ppl's Philox and threefry keys shard, JAX's Philox keys keep the run on
            one device). The weights then equal the one-device run's up to the rounding of XLA's
            matrix products, which depends on the rows each device holds: identical in the
            tests' small models; at 784 x 500 a few 1e-3 nats apart on most chains after 1000
            temperatures (a Gibbs draw whose probability sits on a rounding boundary can flip).
        max_memory: the most bytes the run's arrays may take (None:
            :data:`ebm_ppl.checks.MEMORY_LIMIT`); a larger request is refused before any work.

    Returns:
        :class:`AISEstimate` with ``bound == "lower"``.

    One compiled program (base draws and the whole annealing loop) serves every schedule length
    up to the next power of two, so a new ``num_temperatures`` rarely compiles again.
    """
    betas, path, num_chains, progress = _setup("ais", potential, num_chains, num_temperatures, schedule, base,
                                               data, kernel, num_integration_steps, progress, max_memory)
    start = time.perf_counter()
    key = rekey(key, prng_impl)
    dtype = _dtype(potential)
    if betas is None:
        betas = _adaptive_schedule(path, jax.random.fold_in(key, 1), num_chains, num_temperatures, dtype)
    padded, num_steps = padded_schedule(betas)
    sharding = axis_sharding(num_chains, key)
    path = onto_mesh(path, sharding)  # a model committed to one device joins the mesh
    log_w, log_w_var, _ = _forward(path, sharded_key(key, sharding), num_chains, dtype, jnp.asarray(padded, dtype),
                                   jnp.asarray(num_steps, jnp.int32), progress, sharding)
    log_w, log_w_var = to_host(log_w), to_host(log_w_var)[: len(betas) - 1]
    log_mean, stderr, ess = summarize_log_weights(log_w)
    warn_if_degenerate(ess, num_chains, "ais", log_w)
    return AISEstimate(
        log_z=float(path.base_log_z) + log_mean,
        stderr=stderr,
        log_weights=log_w,
        ess=ess,
        log_weight_var=log_w_var,
        bound="lower",
        schedule=betas,
        base_log_z=float(path.base_log_z),
        wall_time=time.perf_counter() - start,
    )


@sized_by("potential")
def reverse_ais(
    key: PRNGKeyArray,
    potential: Potential,
    start: ArrayLike,
    *,
    exact: bool = False,
    num_temperatures: int = 1000,
    schedule: ArrayLike | None = None,
    base: Potential | None = None,
    data: ArrayLike | None = None,
    kernel: str | None = None,
    num_integration_steps: int = 5,
    progress: bool = False,
    prng_impl: str | None = DEFAULT_IMPL,
    max_memory: int | None = None,
) -> AISEstimate:
    """Reverse AIS estimate of log Z, annealing from target samples back to the base.

    Args:
        start: ``(num_chains, *event_shape)`` starting points: exact samples of the target
            (see :func:`ebm_ppl.partition.exact_samples`), or data / long-chain samples.
        exact: whether ``start`` holds exact target samples; only then is the estimate an
            upper bound in expectation (``bound == "upper"``), else ``"approximate upper"``.
            Started from held-out data, read ``start_log_likelihood`` (RAISE) instead.
        num_temperatures: K, as in :func:`ais`; ignored when ``schedule`` is given.
        schedule: the inverse temperatures, as in :func:`ais` (run from 1 back to 0), or
            ``"adaptive"`` (placed by a forward pilot run, as in :func:`ais`).
        base: the beta = 0 model, as in :func:`ais`.
        data: samples used to fit the base, as in :func:`ais`.
        kernel: the transition kernel, as in :func:`ais`.
        num_integration_steps: leapfrog steps per HMC move.
        progress: show a progress bar over temperatures.
        prng_impl: PRNG implementation, as in :func:`ais`.
        max_memory: as in :func:`ais`.
    """
    check_potential(potential, "reverse_ais")
    start_x = validate_input(start, potential.event_shape, potential.support, name="start", owner="reverse_ais")
    if start_x.ndim != len(potential.event_shape) + 1:
        raise ValueError(f"reverse_ais: start must have shape (num_chains, *event_shape), got {start_x.shape}")
    num_chains = start_x.shape[0]
    exact = checks.flag(exact, "exact")
    betas, path, num_chains, progress = _setup("reverse_ais", potential, num_chains, num_temperatures, schedule,
                                               base, data, kernel, num_integration_steps, progress, max_memory)
    t0 = time.perf_counter()
    key = rekey(key, prng_impl)
    x0 = start_x.astype(_dtype(potential))
    if betas is None:
        betas = _adaptive_schedule(path, jax.random.fold_in(key, 1), num_chains, num_temperatures, x0.dtype)
    padded, num_steps = padded_schedule(betas[::-1])
    sharding = axis_sharding(num_chains, key)
    path, x0 = onto_mesh((path, x0), sharding)  # arrays committed to one device join the mesh
    log_w, log_w_var, _ = _anneal(path, sharded_key(key, sharding), path.encode(x0), jnp.asarray(padded, x0.dtype),
                                  jnp.asarray(num_steps, jnp.int32), progress, "reverse AIS", sharding)
    log_w, log_w_var = to_host(log_w), to_host(log_w_var)[: len(betas) - 1]
    log_mean, stderr, ess = summarize_log_weights(log_w)
    warn_if_degenerate(ess, num_chains, "reverse_ais", log_w)
    start_ll = -np.asarray(potential.energy(x0), np.float64) - float(path.base_log_z) + log_w
    return AISEstimate(
        log_z=float(path.base_log_z) - log_mean,
        stderr=stderr,
        log_weights=log_w,
        ess=ess,
        log_weight_var=log_w_var,
        bound="upper" if exact else "approximate upper",
        schedule=betas,
        base_log_z=float(path.base_log_z),
        wall_time=time.perf_counter() - t0,
        start_log_likelihood=start_ll,
    )


def _setup(owner, potential, num_chains, num_temperatures, schedule, base, data, kernel, num_integration_steps,
           progress, max_memory):
    """The checked arguments: the schedule, the path, the number of chains and the progress flag.
    Every argument is checked here, and the memory of what the run stores estimated, before
    anything is compiled or allocated."""
    check_potential(potential, owner)
    num_chains = checks.int_at_least(num_chains, "num_chains", MIN_CHAINS)  # an error bar needs several chains
    if kernel is not None and not isinstance(kernel, str):
        raise ValueError(f"{owner}: kernel must be a name ('gibbs', 'mala' or 'hmc') or None, got {kernel!r}")
    num_integration_steps = checks.int_at_least(num_integration_steps, "num_integration_steps", 1)
    checks.flag(progress, "progress")
    if schedule is None or (isinstance(schedule, str) and schedule == ADAPTIVE):
        num_temperatures = checks.int_at_least(num_temperatures, "num_temperatures", MIN_TEMPERATURES)
        _check_memory(owner, potential, num_chains, num_temperatures, max_memory)
        betas = default_schedule(num_temperatures) if schedule is None else None  # None: placed by a pilot
    elif isinstance(schedule, str):
        raise ValueError(f"{owner}: schedule must be a 1-d array of real numbers (inverse temperatures) or {ADAPTIVE!r}, "
                         f"got {schedule!r}")
    else:
        betas = validate_schedule(schedule)
        _check_memory(owner, potential, num_chains, len(betas) - 1, max_memory)
    path = make_path(potential, base=base, data=data, kernel=kernel, num_integration_steps=num_integration_steps)
    return betas, path, num_chains, bool(progress)


def _adaptive_schedule(path, key: PRNGKeyArray, num_chains: int, num_temperatures: int, dtype) -> np.ndarray:
    """``num_temperatures + 1`` temperatures of equal log-weight variance per step, from a forward
    pilot run on a linear schedule (:data:`PILOT_TEMPERATURES` temperatures, :data:`PILOT_CHAINS`
    chains at most)."""
    pilot = linear_schedule(min(PILOT_TEMPERATURES, num_temperatures))
    padded, num_steps = padded_schedule(pilot)
    _, _, increment_var = _forward(path, key, min(PILOT_CHAINS, num_chains), dtype, jnp.asarray(padded, dtype),
                                   jnp.asarray(num_steps, jnp.int32), False)
    return equal_variance_schedule(pilot, np.asarray(increment_var)[:num_steps], num_temperatures)


def _check_memory(owner: str, potential: Potential, num_chains: int, num_temperatures: int, max_memory) -> None:
    """Refuse a run whose arrays would not fit: per temperature the schedule (float64 on the host,
    padded on the device) and the log-weight variances; per chain the random numbers of a block of
    ``CHUNK`` temperatures (one per visible and hidden unit each), the states, one step's working
    arrays and the weights. At 784 x 500 and 196 x 100 this is the compiled program's own
    ``memory_analysis()`` to the byte (benchmarks/scaling.py); elsewhere within ~2 KB per chain."""
    bucket = max(MIN_BUCKET, 1 << (num_temperatures - 1).bit_length())
    itemsize = jnp.dtype(_dtype(potential)).itemsize
    size = math.prod(potential.event_shape)
    hidden = int(getattr(potential, "n_hidden", 0) or 0)  # the RBM family's latent units
    per_temperature = (num_temperatures + 1) * 8 + (2 * bucket + 1) * itemsize
    per_chain = num_chains * (CHUNK * (size + hidden) + 2 * size + 3 * hidden + CHUNK + 2) * itemsize
    checks.check_memory(per_temperature + per_chain,
                        f"{num_temperatures} temperatures, {num_chains} chains x {size + hidden} units x {CHUNK + 2}",
                        max_memory, owner=owner, option=checks.MAX_MEMORY_OPTION)


def _dtype(potential: Potential):
    leaves = jax.tree.leaves(eqx.filter(potential, eqx.is_inexact_array))
    return leaves[0].dtype if leaves else jnp.result_type(float)


# The compiled programs are module-level and take the path as an argument (its arrays traced, its
# settings static), so repeated runs with the same shapes and settings reuse them.

@filter_jit
def _forward(path, key: PRNGKeyArray, num_chains: int, dtype, betas: Array, num_steps, progress: bool,
             sharding: NamedSharding | None = None):
    key_base, key_run = jax.random.split(key)
    x0 = constrain(path.sample_base(key_base, num_chains, dtype), sharding)
    return _anneal_loop(path, key_run, x0, betas, num_steps, progress, "AIS", sharding)


@filter_jit
def _anneal(path, key: PRNGKeyArray, x0: Array, betas: Array, num_steps, progress: bool, desc: str,
            sharding: NamedSharding | None = None):
    return _anneal_loop(path, key, constrain(x0, sharding), betas, num_steps, progress, desc, sharding)


def _finite_var(a: Array) -> Array:
    """The variance over axis 1 (chains) of ``a``'s finite entries: a chain at a state a hard
    constraint forbids has weight 0 (log-weight -inf) and drops out; ``jnp.var``'s values where
    every entry is finite."""
    finite = jnp.isfinite(a)
    count = jnp.maximum(jnp.sum(finite, axis=1), 1).astype(a.dtype)
    mean = jnp.sum(jnp.where(finite, a, 0), axis=1, keepdims=True) / count[:, None]
    masked = jnp.sum(jnp.where(finite, (a - mean) ** 2, 0), axis=1) / count
    return jnp.where(jnp.all(finite, axis=1), jnp.var(a, axis=1), masked)


def _anneal_loop(path, key, x0, betas, num_steps, progress, desc, sharding=None):
    """Run every chain along ``betas[:num_steps + 1]``; return the log-weights ``(N,)``, their
    variance after each temperature and the variance of each temperature's increment (both
    ``betas.shape[0] - 1``, valid up to ``num_steps``).

    Temperatures run in blocks of ``CHUNK``: each block's random numbers are drawn in one call
    (``path.draws`` vmapped over the block), which on CPU generates them about twice as fast as
    many small calls inside the loop. Steps past ``num_steps`` in the last block run on the
    padding (beta_from = beta_to = the schedule's last value): their moves are exact moves at that
    end of the path, and their weight increments are masked to zero. The chains are carried in
    the path's own layout (``path.to_state``), sharded over devices along their chain axis
    (``path.chain_axis``) when ``sharding`` is given; the random numbers follow (the key draws
    the same bits however they are sharded, so the result is the one-device run's)."""
    dim = math.prod(x0.shape[1:])
    path = path.prepare(x0.shape[0])
    state0 = constrain(path.to_state(x0), sharding, path.chain_axis)

    def block(c, carry):
        keys = jax.random.split(jax.random.fold_in(key, c), CHUNK)
        draws = jax.vmap(lambda k: path.draws(k, state0))(keys)

        def step(carry, inputs):
            j, d = inputs
            k = c * CHUNK + j
            x, log_w, aux = carry
            x, aux, delta = path.anneal_step(d, x, betas[k], betas[k + 1], aux)
            log_w = log_w + jnp.where(k < num_steps, delta, 0.0)
            return (x, log_w, aux), log_w

        x, log_w, aux, var, inc_var = carry
        (x, new_log_w, aux), history = jax.lax.scan(step, (x, log_w, aux), (jnp.arange(CHUNK), draws))
        x, new_log_w = constrain(x, sharding, path.chain_axis), constrain(new_log_w, sharding)
        # the block's per-temperature variances in one op (not CHUNK small reductions in the loop)
        var = jax.lax.dynamic_update_slice(var, _finite_var(history), (c * CHUNK,))
        increments = jnp.diff(jnp.concatenate([log_w[None], history]), axis=0)
        inc_var = jax.lax.dynamic_update_slice(inc_var, _finite_var(increments), (c * CHUNK,))
        return x, new_log_w, aux, var, inc_var

    zeros = jnp.zeros(betas.shape[0] - 1, x0.dtype)
    init = (state0, constrain(jnp.zeros(x0.shape[0], x0.dtype), sharding), path.init_aux(dim), zeros, zeros)
    num_blocks = (num_steps + CHUNK - 1) // CHUNK
    _, log_w, _, var, inc_var = progress_fori_loop(num_blocks, block, init, enabled=progress, desc=desc)
    return log_w, var, inc_var
