"""Single-site Gibbs sampling (systematic scan) for discrete potentials: binary (such as the
Boltzmann machine), spin and categorical.

One step visits every coordinate i = 0 .. D-1 in order (D = the event's size; events of any shape
are visited in C order) and draws ``x_i ~ p(x_i | x_{-i})``. For binary potentials that is
``sigmoid(logit_i)`` with ``logit_i = log p(x_i=1, x_{-i}) - log p(x_i=0, x_{-i})``; a binary
potential may supply ``site_logit(x, i)`` for the flat index i (O(D) for a Boltzmann machine:
``b_i + W_i . x``), otherwise the logit comes from two energy evaluations. For spin and
categorical supports the conditional over the q values comes from q energy evaluations
(``softmax_c -E(x with x_i = v_c)``), which works for any discrete potential.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax import GenerateSamplingAPI
from blackjax.base import SamplingAlgorithm
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.potentials.base import Potential, Support
from ebm_ppl.potentials.capabilities import has_site_logits

__all__ = ["sampling_api", "SiteGibbsState", "SiteGibbsInfo", "init", "build_kernel", "as_top_level_api", "site_logit", "site_log_weights"]


class SiteGibbsState(NamedTuple):
    """position: the discrete sample x, shape ``event_shape``."""

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


def site_log_weights(potential: Potential, x: Array, i: Array, values: Array) -> Array:
    """``-E(x with x_i = v)`` for each of the ``values`` ``(q,)`` of flat index ``i``: the
    unnormalized log conditional of coordinate i, shape ``(q,)``."""
    flat = x.reshape(-1)
    return jax.vmap(lambda v: -potential.unbatched_energy(flat.at[i].set(v).reshape(x.shape)))(values)


def build_kernel():
    """The raw kernel ``kernel(rng_key, state, potential) -> (state, info)`` for events of any
    shape; the values a coordinate takes are the potential's support's."""

    def kernel(rng_key: PRNGKeyArray, state: SiteGibbsState, potential: Potential):
        x0 = state.position
        shape = x0.shape
        uniforms = jax.random.uniform(rng_key, (x0.size,), x0.dtype)
        values = jnp.asarray(potential.support.values, x0.dtype)

        if potential.support == Support.BINARY:
            def visit(flat, i):
                logit = site_logit(potential, flat.reshape(shape), i)
                return flat.at[i].set((uniforms[i] < jax.nn.sigmoid(logit)).astype(flat.dtype)), None
        else:
            def visit(flat, i):  # inverse CDF of the conditional over the values
                probs = jax.nn.softmax(site_log_weights(potential, flat.reshape(shape), i, values))
                index = jnp.sum(uniforms[i] > jnp.cumsum(probs)[:-1])
                return flat.at[i].set(values[index]), None

        flat, _ = jax.lax.scan(visit, x0.reshape(-1), jnp.arange(x0.size))
        x = flat.reshape(shape)
        return SiteGibbsState(x), SiteGibbsInfo(jnp.mean(x != x0))

    return kernel


def as_top_level_api(potential: Potential) -> SamplingAlgorithm:
    """``SamplingAlgorithm(init, step)`` for systematic-scan single-site Gibbs on a discrete
    ``potential`` (binary, spin or categorical support)."""
    if potential.support.continuous:
        raise ValueError(f"site Gibbs needs a discrete potential (binary, spin or categorical); "
                         f"{type(potential).__name__} has support {potential.support}")
    kernel = build_kernel()

    def init_fn(position: ArrayLike, rng_key: PRNGKeyArray | None = None):
        return init(position)

    def step_fn(rng_key: PRNGKeyArray, state: SiteGibbsState):
        return kernel(rng_key, state, potential)

    return SamplingAlgorithm(init_fn, step_fn)


#: ``ep.kernels.site_gibbs``, exposed as BlackJAX exposes ``blackjax.mala``: calling it builds the algorithm.
sampling_api = GenerateSamplingAPI(as_top_level_api, init, build_kernel)
