"""Exact samples of small models (for reverse AIS and for tests), by enumeration."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl.potentials import BernoulliRBM, BoltzmannMachine, Gaussian
from ebm_ppl.potentials.base import Potential
from ebm_ppl.potentials.enumeration import check_enumerable, index_to_bits
from ebm_ppl.ops import softplus

__all__ = ["exact_samples", "MAX_EXACT_STATES"]

#: The largest state space exact_samples enumerates (the log-probabilities are held in memory).
MAX_EXACT_STATES = 2**22


def exact_samples(key: PRNGKeyArray, potential: Potential, num: int) -> Array:
    """``num`` independent exact draws, shape ``(num, *event_shape)``.

    Gaussian: directly. Bernoulli RBM: h from its marginal ``p(h) ∝ exp(c.h + sum_i softplus(b_i +
    (W h)_i))`` by enumerating the 2^M hidden states, then x ~ p(x | h). Boltzmann machine: by
    enumerating all 2^D states. Others raise a ValueError.
    """
    num = int(num)
    if isinstance(potential, Gaussian):
        return potential.sample(key, (num,))
    if isinstance(potential, BernoulliRBM):
        m = potential.n_hidden
        check_enumerable(2**m, MAX_EXACT_STATES, f"exact samples of a BernoulliRBM with n_hidden={m}")
        h_all = index_to_bits(jnp.arange(2**m, dtype=jnp.int32), m, potential.W.dtype)
        logits = h_all @ potential.c + jnp.sum(softplus(potential.visible_logits(h_all)), axis=-1)
        k_h, k_x = jax.random.split(key)
        h = h_all[jax.random.categorical(k_h, logits, shape=(num,))]
        return potential.sample_visible(k_x, h)
    if isinstance(potential, BoltzmannMachine):
        d = potential.dim
        check_enumerable(2**d, MAX_EXACT_STATES, f"exact samples of a BoltzmannMachine with D={d}")
        x_all = index_to_bits(jnp.arange(2**d, dtype=jnp.int32), d, potential.W.dtype)
        logits = -jax.vmap(potential.unbatched_energy)(x_all)
        return x_all[jax.random.categorical(key, logits, shape=(num,))]
    raise ValueError(f"exact samples of {type(potential).__name__} are not available; start reverse AIS "
                     "from data or from long-chain samples (ebm_ppl.sample)")
