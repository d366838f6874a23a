"""Unadjusted Langevin moves (chapter eq. 6.24), without BlackJAX: the update and :func:`run`,
the position after n steps (JEM's negatives). :mod:`ebm_ppl.kernels.langevin` is the same move as a
BlackJAX ``SamplingAlgorithm`` (its module docstring has the update and its temperature).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks

__all__ = ["temperature", "move", "run", "check_step"]


def temperature(step_size: float, noise_scale: float | None) -> float:
    """The temperature T = sigma^2 / (2 alpha) the decoupled update implies (1 for proper Langevin)."""
    return 1.0 if noise_scale is None else noise_scale**2 / (2.0 * step_size)


def move(rng_key: PRNGKeyArray, position: Array, grad: Array, step_size, noise_scale) -> Array:
    """One update x + alpha * grad + sigma * xi (eq. 6.24); sigma = sqrt(2 alpha) when noise_scale is None."""
    sigma = jnp.sqrt(2.0 * step_size) if noise_scale is None else noise_scale
    noise = jax.random.normal(rng_key, position.shape, position.dtype)
    return position + step_size * grad + sigma * noise


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

    The same moves and draws as :mod:`ebm_ppl.kernels.langevin`'s ``init`` followed by ``step``
    with each key of ``jax.random.split(rng_key, num_steps)`` in turn (a ``lax.scan``; each
    iteration evaluates grad log p where the chain stands and moves). Jit-compatible; vmap it for
    many chains.

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
    step_size, noise_scale = check_step(step_size, noise_scale)
    position = jnp.asarray(position)
    if num_steps == 0:
        return position
    grad_fn = jax.grad(logdensity_fn)

    def body(x, key):
        return move(key, x, grad_fn(x), step_size, noise_scale), None

    position, _ = jax.lax.scan(body, position, jax.random.split(rng_key, num_steps))
    return position


def check_step(step_size, noise_scale):
    """``(step_size, noise_scale)`` checked and as Python numbers where they hold values (Python,
    NumPy or concrete JAX numbers); traced values pass as they are (the caller's responsibility)."""
    if not isinstance(step_size, jax.core.Tracer):
        step_size = checks.positive_float(step_size, "langevin: step_size")
    if noise_scale is not None and not isinstance(noise_scale, jax.core.Tracer):
        noise_scale = checks.non_negative_float(noise_scale, "langevin: noise_scale")
    return step_size, noise_scale
