"""Single-site Gibbs sampling (systematic scan) for binary potentials such as the Boltzmann machine.

One step visits every coordinate i = 0 .. D-1 in order (D = the event's size; events of any shape
are visited in C order) and draws ``x_i ~ p(x_i | x_{-i}) = sigmoid(logit_i)`` with
``logit_i = log p(x_i=1, x_{-i}) - log p(x_i=0, x_{-i})``. A potential may supply
``site_logit(x, i)`` for the flat index i (O(D) for a Boltzmann machine: ``b_i + W_i . x``);
otherwise the logit comes from two energy evaluations, which works for any binary potential.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.potentials.base import Potential, Support
from ebm_ppl.potentials.capabilities import has_site_logits

__all__ = ["SiteGibbsState", "SiteGibbsInfo", "init", "build_kernel", "as_top_level_api", "site_logit"]


class SiteGibbsState(NamedTuple):
    """position: the binary sample x, shape ``event_shape``."""

    position: Array


class SiteGibbsInfo(NamedTuple):
    """flip_rate: the fraction of coordinates whose value changed in this sweep."""

    flip_rate: Array


def init(position: ArrayLike) -> SiteGibbsState:
    return SiteGibbsState(jnp.asarray(position))


def site_logit(potential: Potential, x: Array, i: Array) -> Array:
    """The logit of p(x_i = 1 | x_{-i}) for flat index ``i`` of one example ``x``: the
    potential's ``site_logit`` where it has one, else ``E(x with x_i = 0) - E(x with x_i = 1)``."""
    if has_site_logits(potential):
        return potential.site_logit(x, i)
    flat = x.reshape(-1)
    on, off = flat.at[i].set(1).reshape(x.shape), flat.at[i].set(0).reshape(x.shape)
    return potential.unbatched_energy(off) - potential.unbatched_energy(on)


def build_kernel():
    """The raw kernel ``kernel(rng_key, state, potential) -> (state, info)`` for events of any shape."""

    def kernel(rng_key: PRNGKeyArray, state: SiteGibbsState, potential: Potential):
        x0 = state.position
        shape = x0.shape
        uniforms = jax.random.uniform(rng_key, (x0.size,), x0.dtype)

        def visit(flat, i):
            logit = site_logit(potential, flat.reshape(shape), i)
            return flat.at[i].set((uniforms[i] < jax.nn.sigmoid(logit)).astype(flat.dtype)), None

        flat, _ = jax.lax.scan(visit, x0.reshape(-1), jnp.arange(x0.size))
        x = flat.reshape(shape)
        return SiteGibbsState(x), SiteGibbsInfo(jnp.mean(x != x0))

    return kernel


def as_top_level_api(potential: Potential) -> SamplingAlgorithm:
    """``SamplingAlgorithm(init, step)`` for systematic-scan single-site Gibbs on ``potential``."""
    if potential.support != Support.BINARY:
        raise ValueError(f"site Gibbs needs a binary potential; {type(potential).__name__} has support "
                         f"{potential.support.value!r}")
    kernel = build_kernel()

    def init_fn(position: ArrayLike, rng_key: PRNGKeyArray | None = None):
        return init(position)

    def step_fn(rng_key: PRNGKeyArray, state: SiteGibbsState):
        return kernel(rng_key, state, potential)

    return SamplingAlgorithm(init_fn, step_fn)
