"""Exact samples of small models (for reverse AIS and for tests)."""

from __future__ import annotations

import math

import jax
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl.potentials.base import Potential, check_potential
from ebm_ppl.potentials.capabilities import has_exact_samples
from ebm_ppl.potentials.enumeration import MAX_EXACT_STATES, check_num, sample_states

__all__ = ["exact_samples", "MAX_EXACT_STATES"]


def exact_samples(key: PRNGKeyArray, potential: Potential, num: int) -> Array:
    """``num`` independent exact draws, shape ``(num, *event_shape)``.

    The potential's own ``exact_samples(key, num)`` where it has one (the Gaussian directly; the
    RBMs and the Boltzmann machine by enumerating their smaller discrete layer); any other discrete
    potential (binary, spin, categorical) by enumerating its ``q^D`` states (at most 2^22). Others
    raise a ValueError.
    """
    potential = check_potential(potential, "exact_samples")
    num = check_num(num, "exact_samples", math.prod(potential.event_shape))
    if has_exact_samples(potential):
        return potential.exact_samples(key, num)
    if not potential.support.continuous:
        size = math.prod(potential.event_shape)

        def log_weight(states):
            return -jax.vmap(potential.unbatched_energy)(states.reshape(-1, *potential.event_shape))

        draws = sample_states(key, log_weight, potential.support.values, size, num, jax.numpy.result_type(float),
                              f"a {type(potential).__name__} with {size} {potential.support} units")
        return draws.reshape(num, *potential.event_shape)
    raise ValueError(f"exact samples of {type(potential).__name__} are not available; start reverse AIS "
                     "from data or from long-chain samples (ebm_ppl.sample)")
