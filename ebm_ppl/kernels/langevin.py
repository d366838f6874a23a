"""Unadjusted Langevin dynamics with the step size and the noise scale kept apart (chapter eq. 6.24).

    x_{t+1} = x_t + alpha * grad log p(x_t) + sigma * xi,    xi ~ N(0, I)

With ``sigma = sqrt(2 alpha)`` (``noise_scale=None``) this is the Euler-Maruyama discretisation of
the Langevin diffusion whose stationary law is p(x), up to an O(alpha) bias (no Metropolis
correction: use MALA for that). A different sigma targets the tempered law
``p(x)^(1/T)`` with temperature ``T = sigma^2 / (2 alpha)``: the JEM defaults alpha = 1,
sigma = 0.01 give T = 5e-5, i.e. close to noisy gradient ascent on log p, which is what JEM's
short-run sampler does on purpose (Grathwohl et al. 2019; Nijkamp et al. 2019).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm
from jaxtyping import Array, ArrayLike, PRNGKeyArray

__all__ = ["LangevinState", "LangevinInfo", "init", "build_kernel", "as_top_level_api", "temperature"]


class LangevinState(NamedTuple):
    position: Array
    logdensity: Array
    logdensity_grad: Array


class LangevinInfo(NamedTuple):
    """grad_norm: the Euclidean norm of grad log p at the step's start."""

    grad_norm: Array


def temperature(step_size: float, noise_scale: float | None) -> float:
    """The temperature T = sigma^2 / (2 alpha) the decoupled update implies (1 for proper Langevin)."""
    return 1.0 if noise_scale is None else noise_scale**2 / (2.0 * step_size)


def init(position: ArrayLike, logdensity_fn: Callable[[Array], Array]) -> LangevinState:
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
        sigma = jnp.sqrt(2.0 * step_size) if noise_scale is None else noise_scale
        noise = jax.random.normal(rng_key, state.position.shape, state.position.dtype)
        position = state.position + step_size * state.logdensity_grad + sigma * noise
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
    if not isinstance(step_size, jax.Array) and not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"langevin: step_size must be a positive number, got {step_size!r}")
    if noise_scale is not None and not isinstance(noise_scale, jax.Array) and not (
        math.isfinite(noise_scale) and noise_scale >= 0
    ):
        raise ValueError(f"langevin: noise_scale must be >= 0 or None, got {noise_scale!r}")
    kernel = build_kernel()

    def init_fn(position: ArrayLike, rng_key: PRNGKeyArray | None = None):
        return init(position, logdensity_fn)

    def step_fn(rng_key: PRNGKeyArray, state: LangevinState):
        return kernel(rng_key, state, logdensity_fn, step_size, noise_scale)

    return SamplingAlgorithm(init_fn, step_fn)
