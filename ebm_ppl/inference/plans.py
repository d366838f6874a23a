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
import jax.numpy as jnp
from blackjax.adaptation.step_size import dual_averaging_adaptation
import blackjax

from ebm_ppl.kernels.registry import KernelSpec, fixed_algorithm
from ebm_ppl.potentials.base import Potential

__all__ = ["Plan", "build_plan", "MALA_TARGET_ACCEPTANCE"]

MALA_TARGET_ACCEPTANCE = 0.574


class Plan(NamedTuple):
    """What one chain runs: ``warmup(key, x0) -> (state, params)``, ``step(key, state, params)``,
    and ``stats(state, info, params) -> dict`` of per-draw statistics (named as the kernel table's
    ``stats``; the Gibbs kernels' energies are computed by the runner)."""

    warmup: Callable
    step: Callable
    stats: Callable


def build_plan(spec: KernelSpec, potential: Potential, num_warmup: int, options: dict[str, Any]) -> Plan:
    """The plan of kernel ``spec`` on ``potential``; ``options`` were checked against the table
    (:func:`ebm_ppl.kernels.check_kernel`), their values are checked here."""
    options = dict(options)
    if spec.name == "block_gibbs":
        return _burn_in_plan(fixed_algorithm(spec, potential), num_warmup,
                             lambda s, i, p: {"hidden_mean": i.hidden_mean})
    if spec.name == "site_gibbs":
        return _burn_in_plan(fixed_algorithm(spec, potential), num_warmup, lambda s, i, p: {"flip_rate": i.flip_rate})
    if spec.name == "langevin":
        step_size = _positive(options.get("step_size", 1e-2), "step_size")
        algo = fixed_algorithm(spec, potential, step_size=step_size, noise_scale=options.get("noise_scale"))
        return _burn_in_plan(algo, num_warmup, lambda s, i, p: {
            "energy": -s.logdensity, "grad_norm": i.grad_norm, "step_size": jnp.asarray(step_size)})
    if spec.name == "mala":
        return _mala_plan(potential.logdensity_fn(), num_warmup, _positive(options.get("step_size", 1e-2), "step_size"),
                          options.get("adapt", True))
    step_size = options.get("step_size")
    return _hmc_plan(spec, potential, num_warmup, None if step_size is None else _positive(step_size, "step_size"),
                     options.get("num_integration_steps", 16), options.get("target_acceptance_rate", 0.8),
                     options.get("adapt", True))


def _positive(value, name):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _burn_in_plan(algo, num_warmup: int, stats) -> Plan:
    def warmup(key, x0):
        key_init, key_run = jax.random.split(key)
        state = algo.init(x0, key_init)
        state, _ = jax.lax.scan(lambda s, k: algo.step(k, s), state, jax.random.split(key_run, num_warmup))
        return state, ()

    return Plan(warmup, lambda key, state, params: algo.step(key, state), stats)


def _mala_plan(logdensity_fn, num_warmup: int, step_size: float, adapt: bool) -> Plan:
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

    return Plan(warmup, step, stats)


def _hmc_plan(spec: KernelSpec, potential: Potential, num_warmup, step_size, num_steps, target, adapt) -> Plan:
    """HMC or NUTS on the flattened event (BlackJAX's mass matrix is over a vector)."""
    algorithm = spec.algorithm
    nuts = spec.name == "nuts"
    event_shape = potential.event_shape
    dim = math.prod(event_shape)
    extra = {} if nuts else {"num_integration_steps": int(num_steps)}
    initial_step = 1.0 if step_size is None else step_size
    logdensity_fn = potential.logdensity_fn()
    if len(event_shape) != 1:
        flat = logdensity_fn
        logdensity_fn = lambda z: flat(z.reshape(event_shape))  # noqa: E731

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
        if nuts:
            out["tree_depth"] = info.num_trajectory_expansions
        return out

    return Plan(warmup, step, stats)
