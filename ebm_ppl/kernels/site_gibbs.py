"""Single-site Gibbs sampling (systematic scan) for discrete potentials: binary (such as the
Boltzmann machine), spin and categorical, in BlackJAX's ``SamplingAlgorithm`` convention.

One step is one sweep of :func:`ebm_ppl.moves.site.site_sweep` (every coordinate in C order, each
drawn from its exact conditional); the info reports the fraction of coordinates that changed.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from blackjax import GenerateSamplingAPI
from blackjax.base import SamplingAlgorithm
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.kernels.positions import check_position
from ebm_ppl.moves.site import site_sweep
from ebm_ppl.potentials.base import Potential

__all__ = ["sampling_api", "SiteGibbsState", "SiteGibbsInfo", "init", "build_kernel", "as_top_level_api"]


class SiteGibbsState(NamedTuple):
    """position: the discrete sample x, shape ``event_shape``."""

    position: Array


class SiteGibbsInfo(NamedTuple):
    """flip_rate: the fraction of coordinates whose value changed in this sweep."""

    flip_rate: Array


def init(position: ArrayLike) -> SiteGibbsState:
    return SiteGibbsState(jnp.asarray(position))


def build_kernel():
    """The raw kernel ``kernel(rng_key, state, potential) -> (state, info)`` for events of any
    shape; the values a coordinate takes are the potential's support's."""

    def kernel(rng_key: PRNGKeyArray, state: SiteGibbsState, potential: Potential):
        x = site_sweep(rng_key, potential, state.position)
        return SiteGibbsState(x), SiteGibbsInfo(jnp.mean(x != state.position))

    return kernel


def as_top_level_api(potential: Potential) -> SamplingAlgorithm:
    """``SamplingAlgorithm(init, step)`` for systematic-scan single-site Gibbs on a discrete
    ``potential`` (binary, spin or categorical support)."""
    if potential.support.continuous:
        raise ValueError(f"site Gibbs needs a discrete potential (binary, spin or categorical); "
                         f"{type(potential).__name__} has support {potential.support}")
    kernel = build_kernel()

    def init_fn(position: ArrayLike, rng_key: PRNGKeyArray | None = None):
        return init(check_position(position, potential, "site_gibbs.init"))

    def step_fn(rng_key: PRNGKeyArray, state: SiteGibbsState):
        return kernel(rng_key, state, potential)

    return SamplingAlgorithm(init_fn, step_fn)


#: ``ep.kernels.site_gibbs``, exposed as BlackJAX exposes ``blackjax.mala``: calling it builds the algorithm.
sampling_api = GenerateSamplingAPI(as_top_level_api, init, build_kernel)
