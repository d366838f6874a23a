"""Random draws of the latent and visible layers, each computed once.

XLA fuses an elementwise producer into every consumer and duplicates it when there are several;
it counts random-number generation as cheap elementwise work. A Gibbs draw typically has two
consumers (the next matmul and the chain's stored state or a statistic such as the mean hidden
activation), so without a barrier XLA generates its random numbers twice (the cost is in
``docs/performance.md``). The draws below end in ``lax.optimization_barrier``, which makes XLA
materialize them once (the values do not change).
"""

from __future__ import annotations

import jax
from jaxtyping import Array, DTypeLike, PRNGKeyArray

__all__ = ["bernoulli_logits", "gaussian"]


def bernoulli_logits(key: PRNGKeyArray, logits: Array, dtype: DTypeLike) -> Array:
    """Draws of Bernoulli(sigmoid(logits)) as 0/1 in ``dtype``; shape of ``logits``."""
    return jax.lax.optimization_barrier(jax.random.bernoulli(key, jax.nn.sigmoid(logits)).astype(dtype))


def gaussian(key: PRNGKeyArray, mean: Array, scale: Array) -> Array:
    """Draws of N(mean, scale^2) in ``mean``'s dtype; shape of ``mean``."""
    return jax.lax.optimization_barrier(mean + scale * jax.random.normal(key, mean.shape, mean.dtype))
