"""What one chain of each kernel runs: warm-up (tuning or burn-in), a step, and its statistics.

A :class:`Plan` is built from the kernel table's entry (:mod:`ebm_ppl.kernels.registry`) and the
kernel options. Warm-up tunes what can be tuned: BlackJAX window adaptation (step size and
diagonal mass matrix) for HMC and NUTS, dual averaging of the step size towards 0.574 acceptance
for MALA; for Gibbs and unadjusted Langevin it is plain burn-in.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import blackjax
import jax.numpy as jnp
from blackjax.adaptation.step_size import dual_averaging_adaptation
from jaxtyping import Array

from ebm_ppl import checks
from ebm_ppl.kernels import replica_exchange as pt
from ebm_ppl.kernels.registry import KernelSpec, fixed_algorithm
from ebm_ppl.potentials.base import Potential

__all__ = ["Plan", "build_plan", "check_options", "adaptation_round_ends", "MALA_TARGET_ACCEPTANCE"]

MALA_TARGET_ACCEPTANCE = 0.574


class Plan(NamedTuple):
    """What one chain runs: ``warmup(key, x0, num_warmup) -> (state, params)``, ``step(key,
    state, params)``, and ``stats(state, info, params) -> dict`` of per-draw statistics (named as
    the kernel table's ``stats``; the Gibbs kernels' ``lp`` is computed by the runner).

    ``warmup``'s ``num_warmup`` (an int32 scalar, traced) is the number of steps it runs, at most
    the ``num_warmup`` the plan was built for (:func:`build_plan`), so one compiled warm-up serves
    every length up to it; step ``i`` uses the ``i``-th of ``split(key, built length)``, the same
    keys whatever the built length (JAX's splits are prefix-stable). BlackJAX's window adaptation
    (HMC, NUTS) schedules its windows in Python: its plan runs exactly the built length."""

    warmup: Callable
    step: Callable
    stats: Callable


def check_options(spec: KernelSpec, options: dict[str, Any], owner: str | None = None) -> dict[str, Any]:
    """Every option of kernel ``spec``: the given ones checked (names against the table, by
    :func:`ebm_ppl.kernels.check_kernel`; values here) and normalized to Python numbers, the
    others at their defaults. ValueError naming a bad value (after ``owner:`` when given)."""
    options = {**{name: spec.defaults.get(name) for name in spec.options}, **options}
    prefix = "" if owner is None else f"{owner}: "
    return {name: value if value is None else _CHECKS[name](value, prefix + name) for name, value in options.items()}


def build_plan(spec: KernelSpec, potential: Potential, num_warmup: int, options: dict[str, Any]) -> Plan:
    """The plan of kernel ``spec`` on ``potential``, by its ``tuning``, whose warm-up runs up to
    ``num_warmup`` steps (exactly that many for window adaptation); ``options`` as
    :func:`check_options` returns them."""
    if spec.tuning == "burn_in":
        algo = fixed_algorithm(spec, potential, **options)
        step_size = options.get("step_size")

        def stats(state, info, params):
            out = spec.info_stats(state, info, params)
            return out if step_size is None else {**out, "step_size": jnp.asarray(step_size)}

        return _burn_in_plan(algo, num_warmup, stats)
    if spec.tuning == "ladder":
        return _ladder_plan(spec, potential, num_warmup, options)
    if spec.tuning == "dual_averaging":
        return _dual_averaging_plan(spec, potential.logdensity_fn(), num_warmup, options["step_size"],
                                    options["adapt"])
    return _window_plan(spec, potential, num_warmup, options)


#: How each kernel option's value is checked (and normalized to a Python value).
_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "step_size": checks.positive_float, "noise_scale": checks.non_negative_float,
    "num_integration_steps": lambda value, name: checks.int_at_least(value, name, 1),
    "target_acceptance_rate": checks.probability, "adapt": checks.flag,
    "num_flips": lambda value, name: checks.int_at_least(value, name, 1),
    "base_kernel": lambda value, name: _name(value, name, tuple(pt.BASE_KERNELS)),
    "num_replicas": lambda value, name: checks.int_at_least(value, name, 2),
    "betas": pt.ladder_tuple,
    "min_beta": checks.positive_float,
    "reference": lambda value, name: _name(value, name, pt.REFERENCES),
}


def _name(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value



def _ladder_plan(spec: KernelSpec, potential: Potential, num_warmup: int, options: dict[str, Any]) -> Plan:
    """Parallel tempering. Warm-up, when ``adapt``: the first half in rounds of doubling length,
    each followed by :func:`~ebm_ppl.moves.ladders.adapt_ladder` on the round's mean
    swap acceptance (Syed et al. 2022; not when ``betas`` were given: that ladder is kept), then
    burn-in on the final ladder; a MALA base kernel's step
    size is tuned per rung by dual averaging, restarted at every round. The whole warm-up is one
    ``lax.scan`` (the round ends are data, so their lengths do not each compile a loop). The
    params are the step sizes ``(R,)``."""
    family = pt.tempering(potential, options["reference"])
    base_kernel = pt.resolve_base_kernel(options["base_kernel"], family)
    betas = options["betas"]
    fixed_ladder = betas is not None  # a ladder given is used as given; warm-up still tunes step sizes
    if betas is None:
        betas = pt.ladder(options["num_replicas"], options["min_beta"], reference=family.has_reference)
    betas = jnp.asarray(betas, jnp.result_type(float))
    num = betas.shape[0]
    kernel = pt.build_kernel(base_kernel)
    tune_steps = options["adapt"] and pt.BASE_KERNELS[base_kernel].gradient
    da_init, da_update, da_final = dual_averaging_adaptation(MALA_TARGET_ACCEPTANCE)
    def warmup(key, x0, n):
        ends = adaptation_round_ends(n) if options["adapt"] else jnp.full((1,), -1, jnp.int32)
        key_init, key = jax.random.split(key)
        state = pt.init(x0, family, betas, base_kernel, key_init)
        initial = pt.BASE_KERNELS[base_kernel].step_size if options["step_size"] is None else options["step_size"]
        eps = jnp.full((num,), initial, betas.dtype)

        keys = jax.random.split(key, max(num_warmup, 1))

        def body(i, carry):
            state, eps, da, total, count = carry
            k = keys[i]
            step = jnp.exp(da.log_step_size) if tune_steps else eps
            state, info = kernel(k, state, family, step)
            if tune_steps:
                da = jax.vmap(da_update)(da, info.base_info.acceptance_rate)
            total, count = total + info.swap_acceptance, count + 1
            end = jnp.any(i == ends)  # a round ends: move the rungs (unless given), restart the averages
            if not fixed_ladder:
                ladder = pt.adapt_ladder(state.betas, total / jnp.maximum(count, 1))
                state = state._replace(betas=jnp.where(end, ladder, state.betas))
            if tune_steps:
                eps = jnp.where(end, jax.vmap(da_final)(da), eps)
                da = jax.tree.map(lambda new, old: jnp.where(end, new, old), jax.vmap(da_init)(eps), da)
            return state, eps, da, jnp.where(end, 0.0, total), jnp.where(end, 0, count)

        carry = (state, eps, jax.vmap(da_init)(eps), jnp.zeros(num - 1, eps.dtype), jnp.zeros((), jnp.int32))
        state, eps, da, _, count = jax.lax.fori_loop(0, n, body, carry)
        if tune_steps:
            eps = jnp.where(count > 0, jax.vmap(da_final)(da), eps)
        return state, eps

    def step(key, state, eps):
        return kernel(key, state, family, eps)

    def stats(state, info, eps):
        out = spec.info_stats(state, info, eps)
        return {**out, "step_size": eps[-1]} if pt.BASE_KERNELS[base_kernel].gradient else out

    return Plan(warmup, step, stats)


def adaptation_round_ends(num_warmup: Array, max_rounds: int = 6) -> Array:
    """The last step of each ladder-adaptation round ``(max_rounds,)``, -1 past the last round:
    rounds of doubling length, together about half of ``num_warmup`` (traced), the shortest at
    least 10 steps, as many as that allows up to ``max_rounds`` (none when warm-up is shorter
    than 20)."""
    half = num_warmup // 2
    k = jnp.arange(max_rounds, dtype=jnp.int32)
    count = jnp.sum(half // (2 ** (k + 1) - 1) >= 10)  # shorter rounds for more of them: the most that fit
    unit = half // jnp.maximum(2**count - 1, 1)
    used = k < count
    return jnp.where(used, jnp.cumsum(jnp.where(used, unit * 2**k, 0)) - 1, -1)


def _burn_in_plan(algo, num_warmup: int, stats) -> Plan:
    def warmup(key, x0, n):
        key_init, key_run = jax.random.split(key)
        state = algo.init(x0, key_init)
        keys = jax.random.split(key_run, max(num_warmup, 1))  # (0 keys cannot be indexed, even unused)
        state = jax.lax.fori_loop(0, n, lambda i, s: algo.step(keys[i], s)[0], state)
        return state, ()

    return Plan(warmup, lambda key, state, params: algo.step(key, state), stats)


def _dual_averaging_plan(spec: KernelSpec, logdensity_fn, num_warmup: int, step_size: float, adapt: bool) -> Plan:
    """A BlackJAX algorithm with one step size (MALA), tuned by dual averaging during warm-up."""
    kernel = spec.algorithm.build_kernel()
    da_init, da_update, da_final = dual_averaging_adaptation(MALA_TARGET_ACCEPTANCE)

    def warmup(key, x0, n):
        state = spec.algorithm.init(x0, logdensity_fn)
        keys = jax.random.split(key, max(num_warmup, 1))

        def body(i, carry):
            state, da = carry
            eps = jnp.exp(da.log_step_size) if adapt else step_size
            state, info = kernel(keys[i], state, logdensity_fn, eps)
            da = da_update(da, info.acceptance_rate) if adapt else da
            return state, da

        state, da = jax.lax.fori_loop(0, n, body, (state, da_init(step_size)))
        tuned = jnp.where(n > 0, da_final(da), step_size) if adapt else jnp.asarray(step_size)
        return state, tuned

    def step(key, state, eps):
        return kernel(key, state, logdensity_fn, eps)

    def stats(state, info, eps):
        return {**spec.info_stats(state, info, eps), "step_size": eps}

    return Plan(warmup, step, stats)


def _window_plan(spec: KernelSpec, potential: Potential, num_warmup: int, options: dict[str, Any]) -> Plan:
    """A BlackJAX HMC-like algorithm on the flattened event (its mass matrix is over a vector),
    step size and diagonal mass matrix tuned by window adaptation during warm-up."""
    algorithm = spec.algorithm
    event_shape = potential.event_shape
    dim = math.prod(event_shape)
    extra = {name: options[name] for name in ("num_integration_steps",) if name in options}
    initial_step = 1.0 if options["step_size"] is None else options["step_size"]
    adapt, target = options["adapt"], options["target_acceptance_rate"]
    logdensity_fn = potential.logdensity_fn()
    if len(event_shape) != 1:
        flat = logdensity_fn
        logdensity_fn = lambda z: flat(z.reshape(event_shape))  # noqa: E731

    def warmup(key, x0, n):  # n == num_warmup: the windows are scheduled in Python
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
        return {**spec.info_stats(state, info, params), "step_size": params["step_size"]}

    return Plan(warmup, step, stats)
