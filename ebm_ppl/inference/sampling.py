"""``ebm_ppl.sample``: many chains of any kernel on any potential, returned as ArviZ data.

Chains are ``vmap``-ed, steps run in ``lax.scan`` (one compiled program for the whole run), and
with several devices the chain axis is sharded over them. The kernels, their options and their
statistics come from the kernel table (:mod:`ebm_ppl.kernels.registry`); what each runs per chain
(warm-up, step, statistics) from :mod:`ebm_ppl.inference.plans`.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.compiler import filter_jit, size_bucket, sized_by
from ebm_ppl.inference.plans import build_plan, check_options
from ebm_ppl.inference.to_arviz import draws_to_datatree
from ebm_ppl.kernels.registry import (KERNELS, STAT_DIMS, check_kernel, check_kernel_options, default_kernel,
                                      get_kernel, uses_gradients)
from ebm_ppl.potentials.base import Potential, check_potential, validate_input
from ebm_ppl.potentials.unconstrained import Unconstrained, unconstrained
from ebm_ppl.progress import progress_fori_loop
from ebm_ppl.random import DEFAULT_IMPL, for_sharding, is_shardable, prefix_stable, rekey
from ebm_ppl.sharding import axis_sharding, onto_mesh, place, sharded_key, to_host

__all__ = ["sample", "draw", "KERNELS", "default_kernel", "draw_bucket", "warmup_bucket", "thin_bucket", "STATIC_THIN"]

_ENERGY_BATCH_ELEMENTS = 2**20  # draw elements (all chains) per batch when energies are computed after the run


@sized_by("potential")
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
    prng_impl: str | None = DEFAULT_IMPL,
    max_memory: int | None = None,
    **kernel_options: Any,
):
    """Draw ``num_samples`` per chain from ``p(x) = exp(-E(x)) / Z``.

    Args:
        key: PRNG key; the same key gives the same draws, on one device or sharded over several.
        potential: any :class:`ebm_ppl.Potential`.
        kernel: a name of the kernel table ``ep.kernels.KERNELS``; None picks
            :func:`~ebm_ppl.kernels.default_kernel`.
        num_chains: independent chains (vmapped; sharded over devices when they divide it).
        num_warmup: tuning / burn-in steps per chain, discarded.
        num_samples: kept draws per chain.
        thin: steps between kept draws.
        init: starting points ``(num_chains, *event_shape)`` or one ``event_shape`` point for all;
            default: the potential's ``initial_positions`` (fair coin flips for binary support,
            N(0, I) draws for real support, uniform draws in a box). On a bounded support
            (``ep.box``) the gradient kernels run on R^D through the support's bijection, the
            log-Jacobian included (:mod:`ebm_ppl.potentials.unconstrained`), and the draws
            come back on the support.
        progress: show a progress bar over the sampling steps.
        prng_impl: the PRNG implementation the run draws from, seeded one-to-one by ``key``
            (:func:`ebm_ppl.random.rekey`): ebm_ppl's Philox-2x32 by default (the fastest here;
            sharded chains draw the same numbers from it as on one device, :mod:`ebm_ppl.random`),
            a JAX name such as ``"threefry2x32"``, or None to keep ``key``'s own.
        max_memory: the most bytes the draws and statistics may take (None:
            :data:`ebm_ppl.checks.MEMORY_LIMIT`, 16 GiB); a larger request is refused before any work.
        **kernel_options: ``step_size`` (langevin, mala, hmc; the initial value for tuning),
            ``noise_scale`` (langevin), ``num_integration_steps`` (hmc), ``target_acceptance_rate``
            (hmc, nuts; default 0.8), ``adapt`` (mala/hmc/nuts, default True).

    Returns:
        An ``xarray.DataTree`` with group ``posterior`` holding ``x`` of shape
        ``(chain, draw, *event_shape)`` and ``sample_stats`` under ArviZ's names: ``lp`` (log
        density -E(x) of each draw), for HMC/NUTS ``energy`` (the Hamiltonian), and the kernel's
        statistics (``acceptance_rate``, ``diverging``, ``step_size``, ``n_steps``,
        ``tree_depth``, ... where they apply; :data:`ebm_ppl.kernels.STAT_MEANINGS`).
    """
    potential = check_potential(potential, "sample")
    spec = check_kernel(kernel, potential, kernel_options)
    kernel = spec.name
    num_chains, num_samples, num_warmup, thin = (
        checks.int_at_least(value, name, low) for name, value, low in (
            ("num_chains", num_chains, 1), ("num_samples", num_samples, 1), ("num_warmup", num_warmup, 0),
            ("thin", thin, 1)))
    progress = checks.flag(progress, "progress")
    options = check_options(spec, kernel_options)
    check_kernel_options(spec, potential, options)
    gradient = uses_gradients(spec, potential, options)
    key = rekey(key, prng_impl)
    bucket = draw_bucket(num_samples)  # the compiled run holds this many draws; a call with another
    # num_samples of the same bucket reuses it. Warm-up and thin split keys for their buckets: only
    # where splits are prefix-stable do the steps' keys not depend on the bucket
    warmup_keys_count, thin_keys = ((warmup_bucket(spec.name, num_warmup), thin_bucket(thin)) if prefix_stable(key)
                                    else (num_warmup, thin))
    _check_memory(potential, spec, num_chains, num_samples, max_memory, bucket=bucket,
                  num_keys=warmup_keys_count + thin_keys, num_replicas=_num_replicas(options))
    options = tuple(sorted(options.items()))  # Python values: static under jit
    sharding = axis_sharding(num_chains)
    if sharding is not None and not is_shardable(for_sharding(key)):
        raise ValueError(
            f"sample: the chains would be sharded over {jax.device_count()} devices, but the key is "
            f"{jax.random.key_impl(key)}, which JAX cannot compile in a sharded program; pass "
            "prng_impl='philox2x32_64' or 'threefry2x32', or a num_chains not divisible by the device count")
    potential = onto_mesh(potential, sharding)  # a model committed to one device joins the mesh
    target = unconstrained(potential) if gradient else potential  # the sampled density's space
    positions = _initial_positions(key, potential, init, num_chains)
    if target is not potential:
        positions = target.unconstrain(positions)
    key_warmup, key_sample = jax.random.split(jax.random.fold_in(key, 1))
    warmup_keys = jax.random.split(key_warmup, num_chains)
    sample_keys = jax.random.split(key_sample, num_chains)
    warmup_keys, sample_keys = (sharded_key(k, sharding) for k in (warmup_keys, sample_keys))
    warmup_keys, sample_keys, positions = place((warmup_keys, sample_keys, positions), sharding)

    states, params = _warmup(target, kernel, warmup_keys_count, options, warmup_keys, positions,
                             jnp.asarray(num_warmup, jnp.int32))
    draws, stats = _run(target, kernel, options, states, params, sample_keys,
                        jnp.asarray(num_samples, jnp.int32), bucket, jnp.asarray(thin, jnp.int32), thin_keys,
                        progress)
    if target is not potential:
        draws, stats = _on_support(target, draws, stats)
    # (draw, chain, ...) -> (chain, draw, ...), ArviZ's layout, as numpy views on the host: a
    # transposed copy on the device would cost about as much as the energies of all draws
    draws, stats = jax.tree.map(lambda a: np.swapaxes(to_host(a)[:num_samples], 0, 1), (draws, stats))
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
    potential = check_potential(potential, "draw")
    spec = check_kernel(kernel, potential, kernel_options, owner="draw")
    num, num_steps = checks.int_at_least(num, "draw: num", 1), checks.int_at_least(num_steps, "draw: num_steps", 0)
    options = check_options(spec, kernel_options)
    check_kernel_options(spec, potential, options, owner="draw")
    _check_memory(potential, spec, num, 1, None, owner="draw", num_keys=num_steps, num_replicas=_num_replicas(options))
    target = unconstrained(potential) if uses_gradients(spec, potential, options) else potential
    plan = build_plan(spec, target, num_steps, options)
    positions = _initial_positions(key, potential, init, num)
    if target is not potential:
        positions = target.unconstrain(positions)
    keys = jax.random.split(jax.random.fold_in(key, 1), num)
    states, _ = jax.vmap(plan.warmup, in_axes=(0, 0, None))(keys, positions, jnp.asarray(num_steps, jnp.int32))
    positions = states.position if target is potential else target.constrain(states.position)
    return positions.reshape(num, *potential.event_shape)


def _num_replicas(options: dict[str, Any]) -> int:
    """The replicas per chain of parallel tempering's ``options`` (1 for other kernels)."""
    if options.get("betas") is not None:
        return len(options["betas"])
    return options.get("num_replicas") or 1


def _check_memory(potential: Potential, spec, num_chains: int, num_samples: int, max_memory, owner="sample",
                  num_keys: int = 0, num_replicas: int = 1, bucket: int | None = None) -> None:
    """Refuse a run whose stored draws and statistics (on the device, then on the host) would not
    fit: ``num_samples x num_chains x (event size + statistics)`` values (a statistic per rung or
    pair of parallel tempering's ladder counts ``num_replicas`` values), the chains' replicas, and
    the ``num_keys`` PRNG keys per chain that warm-up and one draw's ``thin`` steps split at once
    (8 bytes each). The device holds ``bucket`` draws (:func:`draw_bucket`; default ``num_samples``)."""
    size = math.prod(potential.event_shape)
    itemsize = np.dtype(jnp.result_type(float)).itemsize
    stats = sum(num_replicas if name in STAT_DIMS else 1 for name in spec.stats)
    bucket = num_samples if bucket is None else bucket
    values = (bucket + num_samples) * num_chains * (size + stats) // 2 + 2 * num_chains * num_replicas * size
    held = "" if bucket == num_samples else f" (a buffer of {bucket} on the device)"
    what = (f"{num_samples} draws{held} x {num_chains} chains x ({size} values + {stats} statistics) "
            f"x {itemsize} bytes, on the device and on the host")
    if num_replicas > 1:
        what += f"; {num_chains} chains x {num_replicas} replicas"
    if num_keys:
        what += f"; {num_chains} chains x {num_keys} keys for warm-up and thinning"
    checks.check_memory(2 * values * itemsize + 8 * num_chains * num_keys, what, max_memory, owner=owner,
                        option=checks.MAX_MEMORY_OPTION if owner == "sample" else None)


# The two compiled programs of a run. They are module-level and take the potential as an argument
# (its arrays traced, the kernel settings static), so a second call with the same shapes and
# settings reuses the compiled code instead of tracing and compiling again.

@filter_jit
def _warmup(potential: Potential, kernel: str, bucket: int, options: tuple, keys, positions, num_warmup):
    """Warm-up of ``num_warmup`` (traced) steps of every chain, compiled for up to ``bucket``."""
    plan = build_plan(get_kernel(kernel), potential, bucket, dict(options))
    return jax.vmap(plan.warmup, in_axes=(0, 0, None))(keys, positions, num_warmup)


def warmup_bucket(kernel: str, num_warmup: int) -> int:
    """The warm-up length ``ep.sample`` compiles for: :func:`draw_bucket`'s (at most 25% more,
    the loop runs ``num_warmup`` steps), or exactly ``num_warmup`` for kernels whose warm-up is
    BlackJAX's window adaptation (HMC, NUTS: their windows are scheduled in Python)."""
    return num_warmup if get_kernel(kernel).tuning == "window_adaptation" else draw_bucket(num_warmup)


def draw_bucket(num_samples: int) -> int:
    """The number of draws the compiled run of ``num_samples`` holds (:func:`ebm_ppl.compiler.size_bucket`:
    at most 25% more, at least 8); one compiled program serves every ``num_samples`` of a bucket
    (the loop runs ``num_samples`` steps, the rest of the buffer stays empty)."""
    return size_bucket(num_samples)


#: Up to this ``thin``, a draw's steps are a scan of exactly ``thin`` (one program per value).
STATIC_THIN = 8


def thin_bucket(thin: int) -> int:
    """The number of keys ``ep.sample`` splits for one draw's ``thin`` steps: ``thin`` itself up to
    :data:`STATIC_THIN`, else :func:`draw_bucket`'s (at most 25% more; the loop runs ``thin`` steps,
    and one compiled program serves every ``thin`` of a bucket). Splits of ebm_ppl's Philox and of
    JAX's threefry are prefix-stable, so the steps' keys do not depend on the bucket; for keys
    whose splits are not (:func:`ebm_ppl.random.prefix_stable`: JAX's legacy threefry, ``rbg``)
    ``ep.sample`` compiles for exactly ``thin``, and likewise for ``num_warmup``."""
    return thin if thin <= STATIC_THIN else draw_bucket(thin)


@filter_jit
def _run(potential: Potential, kernel: str, options: tuple, states, params, chain_keys,
         num_samples, bucket: int, thin, thin_keys: int, progress: bool):
    """Run ``num_samples`` (traced) draws of ``thin`` steps of every chain; keep every ``thin``-th
    state. ``thin`` is traced when ``thin_keys`` (:func:`thin_bucket`) is more than
    :data:`STATIC_THIN`, else equal to it. Returns the draws ``(bucket, chain, ...)`` and the
    per-draw statistics ``(bucket, chain)``, valid in ``[:num_samples]``.

    Every array is an argument, never a closure: under jax.distributed they span processes."""
    plan = build_plan(get_kernel(kernel), potential, 0, dict(options))  # its step and stats: no warm-up
    # a kernel that reports the energy of the state each step starts from (block Gibbs, from the
    # hidden logits it forms anyway) hands a draw's lp = -E over with the next draw's first step
    spec = get_kernel(kernel)

    def one_draw(states, step_index):
        keys = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, step_index), thin_keys))(chain_keys)
        # materialized once: fused into the draws, XLA re-derived every key per random number
        keys = jnp.swapaxes(jax.lax.optimization_barrier(keys), 0, 1)  # (thin_keys, chain, ...)

        def one_step(states, k):
            return jax.vmap(plan.step)(k, states, params)

        if thin_keys <= STATIC_THIN:  # thin == thin_keys: a scan of exactly that many steps
            states, infos = jax.lax.scan(one_step, states, keys)
            last_info = jax.tree.map(lambda a: a[-1], infos)
            first_energy = infos.energy[0] if spec.start_energy and infos.energy is not None else None
        else:  # the first step, then thin - 1 more (traced) with the bucket's leading keys
            states, first = one_step(states, keys[0])
            states, last_info = jax.lax.fori_loop(1, thin, lambda j, c: one_step(c[0], keys[j]), (states, first))
            first_energy = first.energy if spec.start_energy else None
        stats = jax.vmap(plan.stats)(states, last_info, params)
        if first_energy is not None:
            stats["previous_energy"] = first_energy  # of the state this draw started from
        return states, (states.position, stats)

    shapes = jax.eval_shape(lambda s: one_draw(s, jnp.zeros((), jnp.int32))[1], states)
    buffers = jax.tree.map(lambda a: jnp.zeros((bucket, *a.shape), a.dtype), shapes)

    def body(i, carry):
        states, buffers = carry
        states, out = one_draw(states, i)
        return states, jax.tree.map(lambda b, o: jax.lax.dynamic_update_index_in_dim(b, o, i, 0), buffers, out)

    final, (draws, stats) = progress_fori_loop(num_samples, body, (states, buffers), enabled=progress,
                                               desc="sampling")
    if "previous_energy" in stats:  # [E(start), E(draw 0), ..., E(draw n-2)], then the last draw's own
        previous = stats.pop("previous_energy")
        shifted = jnp.concatenate([previous[1:], previous[-1:]])
        last = (jnp.arange(bucket) == num_samples - 1)[:, None]
        stats["lp"] = -jnp.where(last, jax.vmap(potential.unbatched_energy)(final.position)[None], shifted)
    elif "lp" not in stats:  # other Gibbs kernels report none: batched passes over the stored draws
        stats["lp"] = -_energies(potential, draws)
    return draws, stats  # (bucket, chain, ...); sample() hands ArviZ (chain, draw, ...) views of [:num_samples]


def _energies(potential: Potential, draws: Array) -> Array:
    """E(x) of draws ``(draw, chain, *event)`` in batches of about :data:`_ENERGY_BATCH_ELEMENTS`
    elements; ``-> (draw, chain)``. Traced."""
    per_draw = math.prod(draws.shape[1:])  # chains x event size
    batch = max(1, min(draws.shape[0], _ENERGY_BATCH_ELEMENTS // per_draw))
    return jax.lax.map(jax.vmap(potential.unbatched_energy), draws, batch_size=batch)


@filter_jit
def _on_support(target: Unconstrained, draws: Array, stats: dict[str, Array]):
    """Draws ``(draw, chain, ...)`` of the unconstrained view mapped onto the support, with their
    log densities -E(x) replacing the view's (which hold the log-Jacobian); an HMC/NUTS ``energy``
    (the Hamiltonian of the run on R^D) is kept as it is."""
    x = target.constrain(draws).reshape(*draws.shape[:2], *target.event_shape)
    return x, {**stats, "lp": -_energies(target.potential, x)}


# -- initial points and sharding -------------------------------------------------------------------

def _initial_positions(key, potential: Potential, init, num_chains: int) -> Array:
    shape = (num_chains, *potential.event_shape)
    dtype = jnp.result_type(float)
    if init is None:
        return potential.initial_positions(jax.random.fold_in(key, 0), num_chains)
    x = validate_input(init, potential.event_shape, potential.support, name="init", owner="sample")
    if x.ndim == len(potential.event_shape):
        x = jnp.broadcast_to(x, shape)
    if x.shape != shape:
        raise ValueError(f"sample: init has shape {x.shape}; expected {shape} (num_chains, *event_shape) "
                         f"or {potential.event_shape}")
    return x.astype(dtype)
