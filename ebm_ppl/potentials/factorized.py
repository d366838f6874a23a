"""Independent discrete coordinates: the factorized reference of any spin or categorical potential."""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.potentials._checks import as_param, check_finite_params
from ebm_ppl.potentials.base import Potential, Support, as_support, validate_input
from ebm_ppl.potentials.enumeration import check_num
from ebm_ppl.potentials.registry import register_potential

__all__ = ["Factorized"]


@register_potential()
class Factorized(Potential):
    """Independent coordinates on a discrete support with values ``v_0 .. v_{q-1}`` (binary, spin
    or categorical): coordinate i takes ``v_c`` with probability ``softmax(logits[i])_c``, so
    ``E(x) = -sum_i logits[i, c(x_i)]`` and ``log Z = sum_i logsumexp_c logits[i, c]``.

    The base AIS anneals from for spin and categorical potentials without a base model of their
    own (:mod:`ebm_ppl.partition.paths`): uniform (zero logits), or fitted to data. (Binary
    potentials use :class:`~ebm_ppl.potentials.bernoulli.Bernoulli`, the same model with one logit
    per coordinate.)

    Attributes:
        logits: shape ``(*event_shape, q)``.
        support: a discrete support with q values.
    """

    name: ClassVar[str] = "factorized"

    logits: Array
    support: Support = eqx.field(static=True)

    def __init__(self, logits: ArrayLike, support: Support | str | dict):
        support = as_support(support)
        if support.continuous:
            raise ValueError(f"Factorized: the support must be discrete (binary, spin or categorical), got {support}")
        self.logits = as_param(logits, "logits", owner="Factorized")
        q = len(support.values)
        if self.logits.ndim < 2 or self.logits.shape[-1] != q:
            raise ValueError(f"Factorized: logits must have shape (*event_shape, {q}) for support {support}, "
                             f"got {self.logits.shape}")
        self.support = support
        check_finite_params(self)

    @classmethod
    def uniform(cls, event_shape: tuple[int, ...], support: Support | str | dict, dtype=None) -> "Factorized":
        """Every value equally likely in every coordinate: zero logits."""
        support = as_support(support)
        dtype = jnp.result_type(float) if dtype is None else dtype
        return cls(jnp.zeros((*tuple(event_shape), max(len(support.values), 1)), dtype), support)

    @classmethod
    def fit(cls, data: ArrayLike, support: Support | str | dict, *, smoothing: float = 1.0) -> "Factorized":
        """The log frequencies of each value per coordinate in ``data`` ``(N, *event_shape)``,
        with ``smoothing`` pseudo counts of each value (no frequency exactly 0)."""
        support = as_support(support)
        data = jnp.asarray(data)
        x = validate_input(data, data.shape[1:], support, name="data", owner="Factorized.fit")
        counts = jnp.sum(x[..., None] == jnp.asarray(support.values, x.dtype), axis=0)
        return cls(jnp.log(counts + smoothing) - jnp.log(x.shape[0] + len(support.values) * smoothing), support)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.logits.shape[:-1]

    def unbatched_energy(self, x: Array) -> Array:
        one_hot = x[..., None] == jnp.asarray(self.support.values, self.logits.dtype)
        return -jnp.sum(jnp.where(one_hot, self.logits, 0.0))

    def log_partition(self, *, route: str | None = None, max_terms: int | None = None,
                      chunk_size: int | None = None) -> Array:
        """``sum logsumexp(logits, -1)`` (closed form; the options are ignored)."""
        return jnp.sum(jax.nn.logsumexp(self.logits, axis=-1))

    def exact_samples(self, key: PRNGKeyArray, num: int) -> Array:
        """``num`` independent draws ``(num, *event_shape)``."""
        num = check_num(num, "Factorized.exact_samples")
        index = jax.random.categorical(key, self.logits, axis=-1, shape=(num, *self.event_shape))
        return jnp.asarray(self.support.values, self.logits.dtype)[index]

    def to_config(self) -> dict[str, Any]:
        return {"support": self.support.to_json()}

    @classmethod
    def from_config(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Factorized":
        return cls(arrays[".logits"], as_support(config["support"]))
