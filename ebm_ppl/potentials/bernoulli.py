"""Independent binary units: the factorized reference of any binary potential."""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.ops import softplus
from ebm_ppl.potentials._checks import as_param, check_finite_params
from ebm_ppl.potentials.base import Potential, Support, validate_input
from ebm_ppl.potentials.enumeration import check_num
from ebm_ppl.potentials.registry import register_potential

__all__ = ["Bernoulli"]


@register_potential()
class Bernoulli(Potential):
    """Independent units x in {0, 1} of any event shape: ``E(x) = -sum logits * x``, so
    ``p(x_i = 1) = sigmoid(logits_i)`` and ``log Z = sum softplus(logits)``.

    The base AIS anneals from for binary potentials without a base model of their own
    (:mod:`ebm_ppl.partition.paths`): uniform (zero logits), or fitted to data.

    Attributes:
        logits: shape ``event_shape``.
    """

    name: ClassVar[str] = "bernoulli"
    support: ClassVar[Support] = Support.BINARY

    logits: Array

    def __init__(self, logits: ArrayLike):
        self.logits = as_param(logits, "logits", owner="Bernoulli")
        check_finite_params(self)

    @classmethod
    def uniform(cls, event_shape: tuple[int, ...], dtype=None) -> "Bernoulli":
        """Fair coins: zero logits."""
        return cls(jnp.zeros(tuple(event_shape), jnp.result_type(float) if dtype is None else dtype))

    @classmethod
    def fit(cls, data: ArrayLike, *, smoothing: float = 1.0) -> "Bernoulli":
        """The logits of the marginals of binary ``data`` ``(N, *event_shape)`` with ``smoothing``
        pseudo counts of each value (no marginal exactly 0 or 1)."""
        data = jnp.asarray(data)
        x = validate_input(data, data.shape[1:], Support.BINARY, name="data", owner="Bernoulli.fit")
        p = (jnp.sum(x, axis=0) + smoothing) / (x.shape[0] + 2 * smoothing)
        return cls(jnp.log(p) - jnp.log1p(-p))

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.logits.shape

    def unbatched_energy(self, x: Array) -> Array:
        return -jnp.sum(self.logits * x)

    def site_logit(self, x: Array, i: Array) -> Array:
        """The logit of p(x_i = 1 | x_{-i}) (flat index ``i``): ``logits_i``."""
        return self.logits.reshape(-1)[i]

    def log_partition(self, *, route: str | None = None, max_terms: int | None = None,
                      chunk_size: int | None = None) -> Array:
        """``sum softplus(logits)`` (closed form; the options are ignored)."""
        return jnp.sum(softplus(self.logits))

    def exact_samples(self, key: PRNGKeyArray, num: int) -> Array:
        """``num`` independent draws ``(num, *event_shape)``."""
        num = check_num(num, "Bernoulli.exact_samples")
        return jax.random.bernoulli(key, jax.nn.sigmoid(self.logits), (num, *self.event_shape)).astype(self.logits.dtype)
