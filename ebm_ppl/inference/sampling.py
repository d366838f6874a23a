"""``ebm_ppl.sample``: many chains of any kernel on any potential, returned as ArviZ data.

Chains are ``vmap``-ed, steps run in ``lax.scan`` (one compiled program for the whole run), and
with several devices the chain axis is sharded over them. Warm-up tunes what can be tuned:
BlackJAX window adaptation (step size and diagonal mass matrix) for HMC and NUTS, dual averaging
of the step size towards 0.574 acceptance for MALA; for Gibbs and unadjusted Langevin it is
plain burn-in.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.step_size import dual_averaging_adaptation
from jax.sharding import AxisType, NamedSharding, PartitionSpec
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.compiler import filter_jit
from ebm_ppl.inference._progress import progress_scan
from ebm_ppl.inference.to_arviz import draws_to_datatree, to_host
from ebm_ppl.kernels.block_gibbs import as_top_level_api as block_gibbs_api
from ebm_ppl.kernels.block_gibbs import has_conditionals, has_logit_energy
from ebm_ppl.kernels.langevin import as_top_level_api as langevin_api
from ebm_ppl.kernels.site_gibbs import as_top_level_api as site_gibbs_api
from ebm_ppl.potentials.base import Potential, Support, validate_input
from ebm_ppl.random import is_shardable, rekey

__all__ = ["sample", "draw", "KERNELS", "default_kernel"]

KERNELS = ("block_gibbs", "site_gibbs", "langevin", "mala", "hmc", "nuts")
_GRADIENT_KERNELS = ("langevin", "mala", "hmc", "nuts")
MALA_TARGET_ACCEPTANCE = 0.574
_ENERGY_BATCH_ELEMENTS = 2**20  # draw elements (all chains) per batch when energies are computed after the run


def default_kernel(potential: Potential) -> str:
    """Block Gibbs where there are conditionals, site Gibbs for other binary potentials, else NUTS."""
    if has_conditionals(potential):
        return "block_gibbs"
    return "site_gibbs" if potential.support == Support.BINARY else "nuts"


class _Plan(NamedTuple):
    """What one chain runs: ``warmup(key, x0) -> (state, params)``, ``step(key, state, params)``,
    and ``stats(state, info, params) -> dict`` of per-draw statistics."""

    warmup: Callable
    step: Callable
    stats: Callable


def sample(
    key: PRNGKeyArray,
    potential: Potential,
    kernel: str | None = None,
    *,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 1000,
    thin: int = 1,
    init: ArrayLike | None = None,
    progress: bool = False,
    prng_impl: str | None = None,
    **kernel_options: Any,
):
    """Draw ``num_samples`` per chain from ``p(x) = exp(-E(x)) / Z``.

    Args:
        key: PRNG key; the same key gives the same draws, on one device or sharded over several.
        potential: any :class:`ebm_ppl.Potential`.
        kernel: one of ``KERNELS``; None picks :func:`default_kernel`.
        num_chains: independent chains (vmapped; sharded over devices when they divide it).
        num_warmup: tuning / burn-in steps per chain, discarded.
        num_samples: kept draws per chain.
        thin: steps between kept draws.
        init: starting points ``(num_chains, *event_shape)`` or one ``event_shape`` point for all;
            default: fair coin flips for binary support, N(0, I) draws for real support.
        progress: show a progress bar over the sampling steps.
        prng_impl: re-key ``key`` into this PRNG implementation first (one-to-one,
            :func:`ebm_ppl.random.rekey`); None keeps ``key``'s own. ``"philox2x32_64"``
            (ebm_ppl's Philox) is faster on one device but cannot be sharded (see
            :mod:`ebm_ppl.random`).
        **kernel_options: ``step_size`` (langevin, mala, hmc; the initial value for tuning),
            ``noise_scale`` (langevin), ``num_integration_steps`` (hmc), ``target_acceptance_rate``
            (hmc, nuts; default 0.8), ``adapt`` (mala/hmc/nuts, default True).

    Returns:
        An ``xarray.DataTree`` with group ``posterior`` holding ``x`` of shape
        ``(chain, draw, *event_shape)`` and ``sample_stats`` holding ``energy`` and the kernel's
        statistics (acceptance rate, divergences, step size, tree depth, ... where they apply).
    """
    if not isinstance(potential, Potential):
        raise TypeError(f"sample expects an ebm_ppl.Potential, got {type(potential).__name__}")
    kernel = default_kernel(potential) if kernel is None else kernel
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    for name, value, low in (("num_chains", num_chains, 1), ("num_samples", num_samples, 1),
                             ("num_warmup", num_warmup, 0), ("thin", thin, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if kernel in _GRADIENT_KERNELS and potential.support != Support.REAL:
        raise ValueError(
            f"kernel {kernel!r} needs gradients, so real support; {type(potential).__name__} is "
            f"{potential.support.value}. Use kernel='block_gibbs' or 'site_gibbs'."
        )
    options = tuple(sorted(kernel_options.items()))
    _plan(kernel, potential, num_warmup, dict(options))  # validate the options here, not inside jit
    key = rekey(key, prng_impl)
    ndev = jax.device_count()
    if ndev > 1 and num_chains % ndev == 0 and not is_shardable(key):
        raise ValueError(
            f"sample: the chains would be sharded over {ndev} devices, but the key is "
            f"{jax.random.key_impl(key)}, which JAX cannot compile in a sharded program; pass "
            "prng_impl='threefry2x32' (or a threefry key), or a num_chains not divisible by the device count")
    positions = _initial_positions(key, potential, init, num_chains)
    key_warmup, key_sample = jax.random.split(jax.random.fold_in(key, 1))
    warmup_keys = jax.random.split(key_warmup, num_chains)
    sample_keys = jax.random.split(key_sample, num_chains)
    warmup_keys, sample_keys, positions = _shard_chains((warmup_keys, sample_keys, positions), num_chains)

    states, params = _warmup(potential, kernel, num_warmup, options, warmup_keys, positions)
    draws, stats = _run(potential, kernel, num_warmup, options, states, params, sample_keys, num_samples, thin,
                        progress)
    # (draw, chain, ...) -> (chain, draw, ...), ArviZ's layout, as numpy views on the host: a
    # transposed copy on the device would cost about as much as the energies of all draws
    draws, stats = jax.tree.map(lambda a: np.swapaxes(to_host(a), 0, 1) if a.ndim >= 2 else to_host(a),
                                (draws, stats))
    draws = draws.reshape(num_chains, num_samples, *potential.event_shape)  # HMC/NUTS run flattened
    return draws_to_datatree(draws, stats, kernel=kernel, potential=potential)


def draw(
    key: PRNGKeyArray,
    potential: Potential,
    num: int,
    *,
    kernel: str | None = None,
    num_steps: int = 1000,
    init: ArrayLike | None = None,
    **kernel_options: Any,
) -> Array:
    """``num`` approximate draws: the final states of ``num`` independent chains of ``num_steps``
    steps each (warm-up included), shape ``(num, *event_shape)``.

    Unlike :func:`sample` this is a pure function of ``key`` (no ArviZ, no host transfer), so it
    traces under ``jit``/``vmap``: it is what NumPyro's ``Predictive`` calls through
    :class:`ebm_ppl.numpyro.EnergyDistribution`. It costs ``num * num_steps`` kernel steps.
    """
    kernel = default_kernel(potential) if kernel is None else kernel
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    plan = _plan(kernel, potential, int(num_steps), dict(kernel_options))
    positions = _initial_positions(key, potential, init, int(num))
    keys = jax.random.split(jax.random.fold_in(key, 1), int(num))
    states, _ = jax.vmap(plan.warmup)(keys, positions)
    return states.position.reshape(int(num), *potential.event_shape)


# The two compiled programs of a run. They are module-level and take the potential as an argument
# (its arrays traced, the kernel settings static), so a second call with the same shapes and
# settings reuses the compiled code instead of tracing and compiling again.

@filter_jit
def _warmup(potential: Potential, kernel: str, num_warmup: int, options: tuple, keys, positions):
    plan = _plan(kernel, potential, num_warmup, dict(options))
    return jax.vmap(plan.warmup)(keys, positions)


@filter_jit
def _run(potential: Potential, kernel: str, num_warmup: int, options: tuple, states, params, chain_keys,
         num_samples: int, thin: int, progress: bool):
    """Scan ``num_samples * thin`` steps of every chain; keep every ``thin``-th state. Returns the
    draws ``(draw, chain, ...)`` and the per-draw statistics ``(draw, chain)``.

    Every array is an argument, never a closure: under jax.distributed they span processes."""
    plan = _plan(kernel, potential, num_warmup, dict(options))
    # block Gibbs on an RBM reports the energy of the state each step starts from (from the hidden
    # logits it forms anyway): a draw's energy arrives with the next draw's first step
    energy_from_next = kernel == "block_gibbs" and has_logit_energy(potential)

    def one_draw(states, step_index):
        keys = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, step_index), thin))(chain_keys)
        # materialized once: fused into the draws, XLA re-derived every key per random number
        keys = jax.lax.optimization_barrier(keys)

        def one_step(states, k):
            return jax.vmap(plan.step)(k, states, params)

        states, infos = jax.lax.scan(one_step, states, jnp.swapaxes(keys, 0, 1))
        last_info = jax.tree.map(lambda a: a[-1], infos)
        stats = jax.vmap(plan.stats)(states, last_info, params)
        if energy_from_next:
            stats["previous_energy"] = infos.energy[0]  # of the state this draw started from
        return states, (states.position, stats)

    final, (draws, stats) = progress_scan(one_draw, states, jnp.arange(num_samples), enabled=progress,
                                          desc="sampling")
    if energy_from_next:  # [E(start), E(draw 0), ..., E(draw n-2)], then the last draw's own
        previous = stats.pop("previous_energy")
        stats["energy"] = jnp.concatenate([previous[1:], jax.vmap(potential._energy)(final.position)[None]])
    elif "energy" not in stats:  # other Gibbs kernels: batched passes over the stored draws (see _plan)
        per_draw = math.prod(draws.shape[1:])  # chains x event size
        batch = max(1, min(num_samples, _ENERGY_BATCH_ELEMENTS // per_draw))
        stats["energy"] = jax.lax.map(jax.vmap(potential._energy), draws, batch_size=batch)
    return draws, stats  # (draw, chain, ...); sample() hands ArviZ (chain, draw, ...) views


# -- kernels -------------------------------------------------------------------------------------

def _plan(kernel: str, potential: Potential, num_warmup: int, options: dict[str, Any]) -> _Plan:
    def logdensity_fn(x):
        return -potential._energy(x)

    def pop(name, default):
        return options.pop(name, default)

    # Gibbs states carry no energy. Block Gibbs on the RBMs reports the energy of each step's
    # starting point, computed from the hidden logits the sweep forms anyway, and _run takes a
    # draw's energy from the next draw's first step; an extra matmul per draw afterwards made a whole
    # call 1.3-1.4x slower at 784 x 500 and 1.1-1.2x at 64 x 20. For other Gibbs kernels _run
    # computes the energies of all stored draws afterwards, batched.
    if kernel == "block_gibbs":
        algo = block_gibbs_api(potential)
        plan = _burn_in_plan(algo, num_warmup, lambda s, i, p: {"hidden_mean": i.hidden_mean})
    elif kernel == "site_gibbs":
        algo = site_gibbs_api(potential)
        plan = _burn_in_plan(algo, num_warmup, lambda s, i, p: {"flip_rate": i.flip_rate})
    elif kernel == "langevin":
        step_size = _positive(pop("step_size", 1e-2), "step_size")
        noise_scale = pop("noise_scale", None)
        algo = langevin_api(logdensity_fn, step_size, noise_scale)
        plan = _burn_in_plan(algo, num_warmup, lambda s, i, p: {
            "energy": -s.logdensity, "grad_norm": i.grad_norm, "step_size": jnp.asarray(step_size)})
    elif kernel == "mala":
        plan = _mala_plan(logdensity_fn, num_warmup, _positive(pop("step_size", 1e-2), "step_size"),
                          pop("adapt", True))
    else:
        plan = _hmc_plan(kernel, logdensity_fn, potential, num_warmup, options.pop("step_size", None),
                         pop("num_integration_steps", 16), pop("target_acceptance_rate", 0.8), pop("adapt", True))
    if options:
        raise ValueError(f"kernel {kernel!r} does not take option(s): {', '.join(sorted(options))}")
    return plan


def _positive(value, name):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _burn_in_plan(algo, num_warmup: int, stats) -> _Plan:
    def warmup(key, x0):
        key_init, key_run = jax.random.split(key)
        state = algo.init(x0, key_init)
        state, _ = jax.lax.scan(lambda s, k: algo.step(k, s), state, jax.random.split(key_run, num_warmup))
        return state, ()

    return _Plan(warmup, lambda key, state, params: algo.step(key, state), stats)


def _mala_plan(logdensity_fn, num_warmup: int, step_size: float, adapt: bool) -> _Plan:
    mala_kernel = blackjax.mala.build_kernel()
    da_init, da_update, da_final = dual_averaging_adaptation(MALA_TARGET_ACCEPTANCE)

    def warmup(key, x0):
        state = blackjax.mala.init(x0, logdensity_fn)

        def body(carry, k):
            state, da = carry
            eps = jnp.exp(da.log_step_size) if adapt else step_size
            state, info = mala_kernel(k, state, logdensity_fn, eps)
            da = da_update(da, info.acceptance_rate) if adapt else da
            return (state, da), None

        (state, da), _ = jax.lax.scan(body, (state, da_init(step_size)), jax.random.split(key, num_warmup))
        tuned = da_final(da) if (adapt and num_warmup > 0) else jnp.asarray(step_size)
        return state, tuned

    def step(key, state, eps):
        return mala_kernel(key, state, logdensity_fn, eps)

    def stats(state, info, eps):
        return {"energy": -state.logdensity, "acceptance_rate": info.acceptance_rate, "step_size": eps}

    return _Plan(warmup, step, stats)


def _hmc_plan(kernel, logdensity_fn, potential, num_warmup, step_size, num_steps, target, adapt) -> _Plan:
    algorithm = blackjax.nuts if kernel == "nuts" else blackjax.hmc
    dim = math.prod(potential.event_shape)
    extra = {} if kernel == "nuts" else {"num_integration_steps": int(num_steps)}
    initial_step = 1.0 if step_size is None else _positive(step_size, "step_size")
    if len(potential.event_shape) != 1:
        flat = logdensity_fn
        logdensity_fn = lambda z: flat(z.reshape(potential.event_shape))  # noqa: E731

    def warmup(key, x0):
        z0 = x0.reshape(-1)
        if adapt and num_warmup > 0:
            adaptation = blackjax.window_adaptation(algorithm, logdensity_fn, initial_step_size=initial_step,
                                                    target_acceptance_rate=target, **extra)
            (state, params), _ = adaptation.run(key, z0, num_warmup)
            return state, params
        params = {"step_size": jnp.asarray(initial_step), "inverse_mass_matrix": jnp.ones(dim, z0.dtype)}
        state = algorithm.init(z0, logdensity_fn)
        algo = algorithm(logdensity_fn, **params, **extra)
        state, _ = jax.lax.scan(lambda s, k: algo.step(k, s), state, jax.random.split(key, num_warmup))
        return state, params

    def step(key, state, params):
        return algorithm(logdensity_fn, **{**extra, **params}).step(key, state)

    def stats(state, info, params):
        out = {
            "energy": -state.logdensity,
            "acceptance_rate": info.acceptance_rate,
            "diverging": info.is_divergent,
            "n_steps": info.num_integration_steps,
            "step_size": params["step_size"],
        }
        if kernel == "nuts":
            out["tree_depth"] = info.num_trajectory_expansions
        return out

    return _Plan(warmup, step, stats)


# -- initial points and sharding -------------------------------------------------------------------

def _initial_positions(key, potential: Potential, init, num_chains: int) -> Array:
    shape = (num_chains, *potential.event_shape)
    dtype = jnp.result_type(float)
    if init is None:
        k = jax.random.fold_in(key, 0)
        if potential.support == Support.BINARY:
            return jax.random.bernoulli(k, 0.5, shape).astype(dtype)
        return jax.random.normal(k, shape, dtype)
    x = validate_input(init, potential.event_shape, potential.support, name="init", owner="sample")
    if x.ndim == len(potential.event_shape):
        x = jnp.broadcast_to(x, shape)
    if x.shape != shape:
        raise ValueError(f"sample: init has shape {x.shape}; expected {shape} (num_chains, *event_shape) "
                         f"or {potential.event_shape}")
    return x.astype(dtype)


def _shard_chains(arrays, num_chains: int):
    """Lay the chain axis of each array across all devices (of every process, under
    ``jax.distributed``) when they divide ``num_chains``; every process holds the same full arrays
    (they derive from the same key), so each fills its own devices' shards from them."""
    devices = jax.devices()
    if len(devices) == 1 or num_chains % len(devices):
        return arrays
    mesh = jax.make_mesh((len(devices),), ("chains",), devices=devices, axis_types=(AxisType.Auto,))
    sharding = NamedSharding(mesh, PartitionSpec("chains"))
    return tuple(jax.make_array_from_callback(a.shape, sharding, lambda index, a=a: a[index]) for a in arrays)
