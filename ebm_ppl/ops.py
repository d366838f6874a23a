"""Numerical building blocks shared by the families, the annealing paths and the estimators.

Elementwise functions here are written so that XLA's CPU backend vectorizes them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array

__all__ = ["softplus", "scale_energy"]


@jax.custom_jvp
def softplus(x: Array) -> Array:
    """``log(1 + exp(x))`` as ``max(x, 0) + log1p(exp(-|x|))``: the formula of ``jax.nn.softplus``
    (``jnp.logaddexp(x, 0)``) without its NaN branch, so equal to it wherever x is not NaN (NaN
    stays NaN). Its derivative is defined as ``sigmoid(x)`` (differentiating the formula gives 0
    instead of 1/2 at x = 0, where ``max`` and ``abs`` have kinks). RBM free energies, the AIS
    weights and the enumerated log Z are mostly softplus; its cost against ``jax.nn.softplus`` is
    in ``docs/performance.md``."""
    return jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return softplus(x), jax.nn.sigmoid(x) * dx


def scale_energy(beta: Array, energy: Array) -> Array:
    """``beta * energy``, and 0 where ``beta == 0`` even for an infinite energy (IEEE's 0 * inf
    is NaN): at beta = 0 an annealing or tempering path's component is absent, so a hard
    constraint (E = +inf outside a region) of the target leaves the base's states possible there."""
    return jnp.where(beta == 0, jnp.zeros_like(energy), beta * energy)
