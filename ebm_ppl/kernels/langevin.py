"""Unadjusted Langevin dynamics with the step size and the noise scale kept apart (chapter eq. 6.24).

    x_{t+1} = x_t + alpha * grad log p(x_t) + sigma * xi,    xi ~ N(0, I)

With ``sigma = sqrt(2 alpha)`` (``noise_scale=None``) this is the Euler-Maruyama discretisation of
the Langevin diffusion whose stationary law is p(x), up to an O(alpha) bias (no Metropolis
correction: use MALA for that). A different sigma targets the tempered law
``p(x)^(1/T)`` with temperature ``T = sigma^2 / (2 alpha)``: the JEM defaults alpha = 1,
sigma = 0.01 give T = 5e-5, i.e. close to noisy gradient ascent on log p, which is what JEM's
short-run sampler does on purpose (Grathwohl et al. 2019; Nijkamp et al. 2019).

The state keeps grad log p at its position (BlackJAX's convention, as in MALA), so ``init``
evaluates one gradient and every ``step`` one more: ``init`` + n steps cost n + 1 gradients.
:func:`run` makes the same n moves with the same draws from n gradients, for callers that only
want the final position (JEM's negatives).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from blackjax import GenerateSamplingAPI
from blackjax.base import SamplingAlgorithm
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks

__all__ = ["sampling_api", "LangevinState", "LangevinInfo", "init", "build_kernel", "as_top_level_api", "run", "temperature"]


class LangevinState(NamedTuple):
    """position, log p(position) and grad log p(position) (the gradient the next step moves along)."""

    position: Array
    logdensity: Array
    logdensity_grad: Array


class LangevinInfo(NamedTuple):
    """grad_norm: the Euclidean norm of grad log p at the step's start."""

    grad_norm: Array


def temperature(step_size: float, noise_scale: float | None) -> float:
    """The temperature T = sigma^2 / (2 alpha) the decoupled update implies (1 for proper Langevin)."""
    return 1.0 if noise_scale is None else noise_scale**2 / (2.0 * step_size)


def _move(rng_key: PRNGKeyArray, position: Array, grad: Array, step_size, noise_scale) -> Array:
    """One update x + alpha * grad + sigma * xi (eq. 6.24); sigma = sqrt(2 alpha) when noise_scale is None."""
    sigma = jnp.sqrt(2.0 * step_size) if noise_scale is None else noise_scale
    noise = jax.random.normal(rng_key, position.shape, position.dtype)
    return position + step_size * grad + sigma * noise


def init(position: ArrayLike, logdensity_fn: Callable[[Array], Array]) -> LangevinState:
    """The state at ``position``: evaluates log p and its gradient once."""
    position = jnp.asarray(position)
    logdensity, grad = jax.value_and_grad(logdensity_fn)(position)
    return LangevinState(position, logdensity, grad)


def build_kernel():
    """The raw kernel ``kernel(rng_key, state, logdensity_fn, step_size, noise_scale=None)``."""

    def kernel(
        rng_key: PRNGKeyArray,
        state: LangevinState,
        logdensity_fn: Callable[[Array], Array],
        step_size: float,
        noise_scale: float | None = None,
    ):
        position = _move(rng_key, state.position, state.logdensity_grad, step_size, noise_scale)
        logdensity, grad = jax.value_and_grad(logdensity_fn)(position)
        info = LangevinInfo(jnp.sqrt(jnp.sum(state.logdensity_grad**2)))
        return LangevinState(position, logdensity, grad), info

    return kernel


def as_top_level_api(
    logdensity_fn: Callable[[Array], Array], step_size: float, noise_scale: float | None = None
) -> SamplingAlgorithm:
    """``SamplingAlgorithm(init, step)`` for unadjusted Langevin.

    Args:
        logdensity_fn: log p(x) up to a constant (``potential.logdensity``), one example.
        step_size: alpha > 0, the gradient step.
        noise_scale: sigma >= 0, the noise std; None means sqrt(2 alpha) (proper Langevin, T = 1).
    """
    step_size, noise_scale = _check(step_size, noise_scale)
    kernel = build_kernel()

    def init_fn(position: ArrayLike, rng_key: PRNGKeyArray | None = None):
        return init(position, logdensity_fn)

    def step_fn(rng_key: PRNGKeyArray, state: LangevinState):
        return kernel(rng_key, state, logdensity_fn, step_size, noise_scale)

    return SamplingAlgorithm(init_fn, step_fn)


def run(
    rng_key: PRNGKeyArray,
    position: ArrayLike,
    logdensity_fn: Callable[[Array], Array],
    num_steps: int,
    step_size: float,
    noise_scale: float | None = None,
) -> Array:
    """The position after ``num_steps`` kernel steps from ``position``, at the cost of ``num_steps``
    gradients (``init`` + ``num_steps`` steps evaluate one more, at the final position).

    The same moves and draws as ``init`` followed by ``step`` with each key of
    ``jax.random.split(rng_key, num_steps)`` in turn (a ``lax.scan``; each iteration evaluates
    grad log p where the chain stands and moves). Jit-compatible; vmap it for many chains.

    Args:
        rng_key: the key the step keys are split from.
        position: the start ``(*event)``.
        logdensity_fn: log p(x) up to a constant, one example.
        num_steps: n >= 0, a Python int (0 returns ``position``).
        step_size: alpha > 0.
        noise_scale: sigma >= 0; None means sqrt(2 alpha).

    Returns:
        The final position, shape and dtype of ``position``.
    """
    num_steps = checks.int_at_least(num_steps, "langevin.run: num_steps", 0)
    step_size, noise_scale = _check(step_size, noise_scale)
    position = jnp.asarray(position)
    if num_steps == 0:
        return position
    grad_fn = jax.grad(logdensity_fn)

    def body(x, key):
        return _move(key, x, grad_fn(x), step_size, noise_scale), None

    position, _ = jax.lax.scan(body, position, jax.random.split(rng_key, num_steps))
    return position


def _check(step_size, noise_scale):
    """``(step_size, noise_scale)`` checked and as Python numbers where they hold values (Python,
    NumPy or concrete JAX numbers); traced values pass as they are (the caller's responsibility)."""
    if not isinstance(step_size, jax.core.Tracer):
        step_size = checks.positive_float(step_size, "langevin: step_size")
    if noise_scale is not None and not isinstance(noise_scale, jax.core.Tracer):
        noise_scale = checks.non_negative_float(noise_scale, "langevin: noise_scale")
    return step_size, noise_scale


#: ``ep.kernels.langevin``, exposed as BlackJAX exposes ``blackjax.mala``: calling it builds the algorithm.
sampling_api = GenerateSamplingAPI(as_top_level_api, init, build_kernel)
sampling_api.register_factory("run", run)
sampling_api.register_factory("temperature", temperature)
