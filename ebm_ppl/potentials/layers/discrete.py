"""Discrete units: Binary {0, 1}, Spin {-1, +1} and Potts (q categorical states per site)."""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, DTypeLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.ops import softplus
from ebm_ppl.potentials import _draws, enumeration
from ebm_ppl.potentials.layers.base import Layer, LinearLayer
from ebm_ppl.potentials.supports import Categorical, Support

__all__ = ["Binary", "Spin", "Potts"]


class Binary(LinearLayer):
    """Units x in {0, 1} with biases b: ``E(x) = -b . x``, ``cgf(I) = sum softplus(b + I)``,
    ``p(x_i = 1 | I) = sigmoid(b_i + I_i)``.

    Attributes:
        bias: b, shape ``(size,)``.
    """

    support: ClassVar[Support] = Support.BINARY

    def cgf(self, field: Array, axis: int = -1) -> Array:
        return self.cgf_from_logits(self.logits(field, axis), axis)

    def cgf_from_logits(self, logits: Array, axis: int = -1) -> Array:
        """:meth:`cgf` given ``logits = b + field``: ``sum softplus(logits)``."""
        return jnp.sum(softplus(logits), axis=axis)

    def sample_from_noise(self, noise: Array, field: Array, axis: int = -1) -> Array:
        return (noise < jax.nn.sigmoid(self.logits(field, axis))).astype(noise.dtype)

    def sample(self, key: PRNGKeyArray, field: Array, dtype: DTypeLike) -> Array:
        return _draws.bernoulli_logits(key, self.logits(field), dtype)

    def mean(self, field: Array) -> Array:
        return jax.nn.sigmoid(self.logits(field))

    def base(self, data: Array | None = None, smoothing: float = 1.0) -> "Binary":
        """This layer, or the logits of ``data``'s marginals with ``smoothing`` pseudo counts of
        each value (the base-rate model of Salakhutdinov & Murray 2008)."""
        if data is None:
            return self
        p = (jnp.sum(data, axis=0) + smoothing) / (data.shape[0] + 2 * smoothing)
        return Binary((jnp.log(p) - jnp.log1p(-p)).astype(self.bias.dtype))

    # -- enumeration ---------------------------------------------------------------------------
    @property
    def num_states(self) -> int:
        """2^size."""
        return 2**self.size

    def state(self, index: Array, dtype: DTypeLike) -> tuple[Array, Array]:
        """The state numbered ``index`` (its bits, least significant first) and its log
        multiplicity (0); ``(...,) int32 -> ((..., size), (...,))``."""
        return enumeration.index_to_bits(index, self.size, dtype), jnp.zeros(index.shape, dtype)


class Spin(LinearLayer):
    """Units x in {-1, +1} with fields b: ``E(x) = -b . x``, ``cgf(I) = sum log(2 cosh(b + I))``,
    ``p(x_i = +1 | I) = sigmoid(2 (b_i + I_i))``, ``E[x | I] = tanh(b + I)``.

    Attributes:
        bias: b, shape ``(size,)``.
    """

    support: ClassVar[Support] = Support.SPIN

    def cgf(self, field: Array, axis: int = -1) -> Array:
        a = self.logits(field, axis)
        return jnp.sum(softplus(2 * a) - a, axis=axis)  # log(e^a + e^-a), stable

    def sample_from_noise(self, noise: Array, field: Array, axis: int = -1) -> Array:
        up = noise < jax.nn.sigmoid(2 * self.logits(field, axis))
        return jnp.where(up, 1.0, -1.0).astype(noise.dtype)

    def sample(self, key: PRNGKeyArray, field: Array, dtype: DTypeLike) -> Array:
        return 2 * _draws.bernoulli_logits(key, 2 * self.logits(field), dtype) - 1

    def mean(self, field: Array) -> Array:
        return jnp.tanh(self.logits(field))

    def base(self, data: Array | None = None, smoothing: float = 1.0) -> "Spin":
        """This layer, or the fields of ``data``'s marginals (``smoothing`` pseudo counts of each value)."""
        if data is None:
            return self
        p = (jnp.sum(data > 0, axis=0) + smoothing) / (data.shape[0] + 2 * smoothing)
        return Spin((0.5 * (jnp.log(p) - jnp.log1p(-p))).astype(self.bias.dtype))

    @property
    def num_states(self) -> int:
        return 2**self.size

    def state(self, index: Array, dtype: DTypeLike) -> tuple[Array, Array]:
        """The state numbered ``index`` (its bits as spins, least significant first), log multiplicity 0."""
        return 2 * enumeration.index_to_bits(index, self.size, dtype) - 1, jnp.zeros(index.shape, dtype)


class Potts(Layer):
    """Sites x_i in {0, ..., q - 1} (stored as numbers) with fields h: ``E(x) = -sum_i h[i, x_i]``.

    The couplings see the one-hot encoding (``features``: shape ``(size, q)``, so the weights of
    an RBM with a Potts visible layer have shape ``(size, q, M)``); ``cgf(I) = sum_i logsumexp_c
    (h + I)[i, c]`` and ``p(x_i = c | I) = softmax_c (h + I)[i]``. Gauge: adding a constant to
    ``h[i]`` changes no probability (adding one to ``W[i, :, m]`` is the same as adding it to
    hidden unit m's input); no gauge is imposed.

    Attributes:
        bias: h, shape ``(size, q)``.
    """

    feature_ndim: ClassVar[int] = 2
    noise_kind: ClassVar[str] = "uniform"

    bias: Array

    def __check_init__(self):
        if self.bias is not None and np.ndim(self.bias) == 2 and np.shape(self.bias)[1] < 2:
            raise ValueError(f"Potts: bias must have shape (sites, q) with q >= 2 states, got {np.shape(self.bias)} "
                             "(a site of one state is constant: leave it out)")

    @classmethod
    def _extra_shape(cls, num_categories: int | None = None) -> tuple[int, ...]:
        if num_categories is None:
            raise ValueError("Potts.standard needs num_categories >= 2, got None")
        return (checks.int_at_least(num_categories, "Potts.standard: num_categories", 2),)

    @property
    def support(self) -> Categorical:  # type: ignore[override]
        return Categorical(self.num_categories)

    @property
    def size(self) -> int:
        return self.bias.shape[0]

    @property
    def num_categories(self) -> int:
        """q."""
        return self.bias.shape[1]

    def features(self, x: Array, axis: int = -1) -> Array:
        return jax.nn.one_hot(x.astype(jnp.int32), self.num_categories, dtype=self.bias.dtype)

    def energy(self, x: Array, axis: int = -1) -> Array:
        return -jnp.sum(self.features(x) * self.bias, axis=(-2, -1))

    def cgf(self, field: Array, axis: int = -1) -> Array:
        return jnp.sum(jax.nn.logsumexp(self.bias + field, axis=-1), axis=-1)

    def noise(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        """One uniform in [0, 1) per site: ``shape`` is ``(*batch, size)``, without the states' axis."""
        return jax.random.uniform(key, shape, dtype)

    def sample_from_noise(self, noise: Array, field: Array, axis: int = -1) -> Array:
        """The inverse-CDF draw of every site: state ``c`` where ``cdf[c - 1] <= u < cdf[c]``;
        ``noise`` ``(*batch, size)``, ``field`` ``(*batch, size, q)`` (units on the last axes only)."""
        if axis != -1:
            raise NotImplementedError("Potts units are drawn with their sites on the last axis but one")
        cdf = jnp.cumsum(jax.nn.softmax(self.bias + field, axis=-1), axis=-1)
        return jnp.sum(noise[..., None] >= cdf[..., :-1], axis=-1).astype(noise.dtype)

    def sample(self, key: PRNGKeyArray, field: Array, dtype: DTypeLike) -> Array:
        return jax.lax.optimization_barrier(jax.random.categorical(key, self.bias + field, axis=-1).astype(dtype))

    def mean_features(self, field: Array) -> Array:
        """The state probabilities ``softmax(h + field)`` per site, shape ``(size, q)``."""
        return jax.nn.softmax(self.bias + field, axis=-1)

    def mean(self, field: Array) -> Array:
        """E[x_i | field], the expected state index (meaningful for ordered states such as gray levels)."""
        probs = jax.nn.softmax(self.bias + field, axis=-1)
        return probs @ jnp.arange(self.num_categories, dtype=probs.dtype)

    def base(self, data: Array | None = None, smoothing: float = 1.0) -> "Potts":
        """This layer, or the log frequencies of ``data``'s states per site (``smoothing`` pseudo counts)."""
        if data is None:
            return self
        counts = jnp.sum(self.features(data), axis=0) + smoothing
        return Potts(jnp.log(counts / jnp.sum(counts, axis=-1, keepdims=True)).astype(self.bias.dtype))

    @property
    def num_states(self) -> int:
        return self.num_categories**self.size

    def state(self, index: Array, dtype: DTypeLike) -> tuple[Array, Array]:
        """The state numbered ``index``: its base-q digits, least significant first; log multiplicity 0."""
        q = self.num_categories
        powers = jnp.asarray([q**i for i in range(self.size)], dtype=jnp.int32)
        return ((index[..., None] // powers) % q).astype(dtype), jnp.zeros(index.shape, dtype)
