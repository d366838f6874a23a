"""Exact block Gibbs sampling for potentials with block conditionals (the RBM family).

One step resamples every latent unit given x, then every visible unit given the latents:
``latent ~ p(latent | x)``, ``x ~ p(x | latent)``. Both conditionals are exact, so there is no
accept/reject and no step size. Written in BlackJAX's convention (``init``/``step`` with
NamedTuple state and info), so it drops into any runner that takes a
``blackjax.base.SamplingAlgorithm``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from blackjax import GenerateSamplingAPI
from blackjax.base import SamplingAlgorithm
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.kernels.positions import check_position
from ebm_ppl.potentials.base import Potential
from ebm_ppl.potentials.capabilities import has_block_conditionals, has_hidden_logits, has_logit_energy

__all__ = ["sampling_api", "BlockGibbsState", "BlockGibbsInfo", "init", "build_kernel", "as_top_level_api"]


class BlockGibbsState(NamedTuple):
    """position: the visible sample x, ``event_shape``; latent: the last latent draw (pytree)."""

    position: Array
    latent: Any


class BlockGibbsInfo(NamedTuple):
    """hidden_mean: the mean over binary hidden units of p(h_j = 1 | x) at the step's start (for
    potentials with ``hidden_logits``; else the mean of the latent draw); energy: the free energy
    F(x) of the step's starting position, from the same hidden logits, for potentials with
    ``energy_from_hidden_logits`` (see :mod:`ebm_ppl.potentials.capabilities`; else None)."""

    hidden_mean: Array
    energy: Array | None = None


def init(position: ArrayLike, potential: Potential, rng_key: PRNGKeyArray | None = None) -> BlockGibbsState:
    """A state at ``position``; the latent is drawn from p(latent | x) (key 0 unless given)."""
    position = jnp.asarray(position)
    key = jax.random.key(0) if rng_key is None else rng_key
    return BlockGibbsState(position, potential.sample_hidden(key, position))


def build_kernel():
    """The raw kernel ``kernel(rng_key, state, potential) -> (state, info)``."""

    def kernel(rng_key: PRNGKeyArray, state: BlockGibbsState, potential: Potential):
        key_h, key_x = jax.random.split(rng_key)
        x = state.position
        latent = potential.sample_hidden(key_h, x)
        energy = None
        if has_hidden_logits(potential):
            logits = potential.hidden_logits(x)  # the same product sample_hidden forms (XLA merges them)
            hidden_mean = jnp.mean(jax.nn.sigmoid(logits))
            if has_logit_energy(potential):
                energy = potential.energy_from_hidden_logits(x, logits)
        else:
            hidden_mean = jnp.mean(jnp.stack([jnp.mean(leaf) for leaf in jax.tree.leaves(latent)]))
        x = potential.sample_visible(key_x, latent)
        return BlockGibbsState(x, latent), BlockGibbsInfo(hidden_mean, energy)

    return kernel


def as_top_level_api(potential: Potential) -> SamplingAlgorithm:
    """``SamplingAlgorithm(init, step)`` for block Gibbs on ``potential``.

    ``init(position, rng_key=None)``; ``step(rng_key, state) -> (state, info)``.
    """
    if not has_block_conditionals(potential):
        raise ValueError(
            f"block Gibbs needs block conditionals (sample_hidden, sample_visible); "
            f"{type(potential).__name__} has none. Use kernel='site_gibbs' for binary potentials or "
            "'mala'/'nuts' for real ones."
        )
    kernel = build_kernel()

    def init_fn(position: ArrayLike, rng_key: PRNGKeyArray | None = None):
        return init(check_position(position, potential, "block_gibbs.init"), potential, rng_key)

    def step_fn(rng_key: PRNGKeyArray, state: BlockGibbsState):
        return kernel(rng_key, state, potential)

    return SamplingAlgorithm(init_fn, step_fn)


#: ``ep.kernels.block_gibbs``, exposed as BlackJAX exposes ``blackjax.mala``: calling it builds the algorithm.
sampling_api = GenerateSamplingAPI(as_top_level_api, init, build_kernel)
