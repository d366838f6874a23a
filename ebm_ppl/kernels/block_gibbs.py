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
from blackjax.base import SamplingAlgorithm
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.potentials.base import Potential

__all__ = ["BlockGibbsState", "BlockGibbsInfo", "init", "build_kernel", "as_top_level_api", "has_conditionals",
           "has_logit_energy"]


class BlockGibbsState(NamedTuple):
    """position: the visible sample x, ``event_shape``; latent: the last latent draw (pytree)."""

    position: Array
    latent: Any


class BlockGibbsInfo(NamedTuple):
    """hidden_mean: the mean over hidden units of p(h_j = 1 | x) at the step's start; energy: the
    free energy F(x) of the step's starting position, from the same hidden logits, for potentials
    with ``energy_from_hidden_logits`` (the three RBMs; else None)."""

    hidden_mean: Array
    energy: Array | None = None


def has_conditionals(potential: Potential) -> bool:
    """Whether ``potential`` offers ``hidden_logits``, ``sample_hidden`` and ``sample_visible``."""
    return all(callable(getattr(potential, m, None)) for m in ("hidden_logits", "sample_hidden", "sample_visible"))


def has_logit_energy(potential: Potential) -> bool:
    """Whether ``potential`` has ``energy_from_hidden_logits`` defined by the class that defines
    its ``_energy`` (a subclass that changes only ``_energy`` does not qualify)."""
    if not callable(getattr(potential, "energy_from_hidden_logits", None)):
        return False
    return _defining_class(potential, "_energy") is _defining_class(potential, "energy_from_hidden_logits")


def _defining_class(obj: Any, name: str) -> type | None:
    """The first class in ``type(obj)``'s MRO whose body defines ``name``."""
    return next((k for k in type(obj).__mro__ if name in vars(k)), None)


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
        logits = potential.hidden_logits(x)  # the same product sample_hidden forms (XLA merges them)
        hidden_mean = jnp.mean(jax.nn.sigmoid(logits))
        energy = potential.energy_from_hidden_logits(x, logits) if has_logit_energy(potential) else None
        latent = potential.sample_hidden(key_h, x)
        x = potential.sample_visible(key_x, latent)
        return BlockGibbsState(x, latent), BlockGibbsInfo(hidden_mean, energy)

    return kernel


def as_top_level_api(potential: Potential) -> SamplingAlgorithm:
    """``SamplingAlgorithm(init, step)`` for block Gibbs on ``potential``.

    ``init(position, rng_key=None)``; ``step(rng_key, state) -> (state, info)``.
    """
    if not has_conditionals(potential):
        raise ValueError(
            f"block Gibbs needs block conditionals (hidden_logits, sample_hidden, sample_visible); "
            f"{type(potential).__name__} has none. Use kernel='site_gibbs' for binary potentials or "
            "'mala'/'nuts' for real ones."
        )
    kernel = build_kernel()

    def init_fn(position: ArrayLike, rng_key: PRNGKeyArray | None = None):
        return init(position, potential, rng_key)

    def step_fn(rng_key: PRNGKeyArray, state: BlockGibbsState):
        return kernel(rng_key, state, potential)

    return SamplingAlgorithm(init_fn, step_fn)
