"""Single-site Gibbs sampling (systematic scan) for binary potentials such as the Boltzmann machine.

One step visits every coordinate i = 0 .. D-1 in order and draws
``x_i ~ p(x_i | x_{-i}) = sigmoid(logit_i)`` with ``logit_i = log p(x_i=1, x_{-i}) - log p(x_i=0, x_{-i})``.
A potential may supply ``site_logit(x, i)`` (O(D) for a Boltzmann machine: ``b_i + W_i . x``); otherwise the logit comes from two energy
evaluations, which works for any binary potential.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.potentials.base import Potential, Support
from ebm_ppl.potentials.capabilities import has_site_logits

__all__ = ["SiteGibbsState", "SiteGibbsInfo", "init", "build_kernel", "as_top_level_api"]


class SiteGibbsState(NamedTuple):
    """position: the binary sample x, shape ``(D,)``."""

    position: Array


class SiteGibbsInfo(NamedTuple):
    """flip_rate: the fraction of coordinates whose value changed in this sweep."""

    flip_rate: Array


def init(position: ArrayLike) -> SiteGibbsState:
    return SiteGibbsState(jnp.asarray(position))


def _site_logit(potential: Potential, x: Array, i: Array) -> Array:
    if has_site_logits(potential):
        return potential.site_logit(x, i)
    on, off = x.at[i].set(1), x.at[i].set(0)
    return potential.unbatched_energy(off) - potential.unbatched_energy(on)


def build_kernel():
    """The raw kernel ``kernel(rng_key, state, potential) -> (state, info)`` for ``(D,)`` events."""

    def kernel(rng_key: PRNGKeyArray, state: SiteGibbsState, potential: Potential):
        x0 = state.position
        uniforms = jax.random.uniform(rng_key, x0.shape, x0.dtype)

        def visit(x, i):
            logit = _site_logit(potential, x, i)
            return x.at[i].set((uniforms[i] < jax.nn.sigmoid(logit)).astype(x.dtype)), None

        x, _ = jax.lax.scan(visit, x0, jnp.arange(x0.shape[0]))
        return SiteGibbsState(x), SiteGibbsInfo(jnp.mean(x != x0))

    return kernel


def as_top_level_api(potential: Potential) -> SamplingAlgorithm:
    """``SamplingAlgorithm(init, step)`` for systematic-scan single-site Gibbs on ``potential``."""
    if potential.support != Support.BINARY or len(potential.event_shape) != 1:
        raise ValueError(
            f"site Gibbs needs a binary potential over vectors; {type(potential).__name__} has "
            f"support {potential.support.value!r} and event shape {potential.event_shape}"
        )
    kernel = build_kernel()

    def init_fn(position: ArrayLike, rng_key: PRNGKeyArray | None = None):
        return init(position)

    def step_fn(rng_key: PRNGKeyArray, state: SiteGibbsState):
        return kernel(rng_key, state, potential)

    return SamplingAlgorithm(init_fn, step_fn)
