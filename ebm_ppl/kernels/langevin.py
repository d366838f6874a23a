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

from ebm_ppl.moves.langevin import check_step, move, run, temperature

__all__ = ["sampling_api", "LangevinState", "LangevinInfo", "init", "build_kernel", "as_top_level_api", "run", "temperature"]


class LangevinState(NamedTuple):
    """position, log p(position) and grad log p(position) (the gradient the next step moves along)."""

    position: Array
    logdensity: Array
    logdensity_grad: Array


class LangevinInfo(NamedTuple):
    """grad_norm: the Euclidean norm of grad log p at the step's start."""

    grad_norm: Array


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
        position = move(rng_key, state.position, state.logdensity_grad, step_size, noise_scale)
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
    step_size, noise_scale = check_step(step_size, noise_scale)
    kernel = build_kernel()

    def init_fn(position: ArrayLike, rng_key: PRNGKeyArray | None = None):
        return init(position, logdensity_fn)

    def step_fn(rng_key: PRNGKeyArray, state: LangevinState):
        return kernel(rng_key, state, logdensity_fn, step_size, noise_scale)

    return SamplingAlgorithm(init_fn, step_fn)


#: ``ep.kernels.langevin``, exposed as BlackJAX exposes ``blackjax.mala``: calling it builds the algorithm.
sampling_api = GenerateSamplingAPI(as_top_level_api, init, build_kernel)
sampling_api.register_factory("run", run)
sampling_api.register_factory("temperature", temperature)
