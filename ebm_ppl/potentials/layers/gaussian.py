"""Gaussian units: the native form (fields and precisions) and the scaled form of the
Gaussian-Bernoulli RBM (means and standard deviations, coupled through x / sigma)."""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, DTypeLike, PRNGKeyArray

from ebm_ppl.potentials import _draws
from ebm_ppl.potentials.layers.base import Layer, QuadraticLayer, along
from ebm_ppl.potentials.supports import Support

__all__ = ["Gaussian", "ScaledGaussian"]


class ScaledGaussian(Layer):
    """Real units with means b and standard deviations sigma that couple through ``x / sigma``
    (the form of Hinton's practical guide and Krizhevsky 2009)::

        E(x) = sum (x - b)^2 / (2 sigma^2),   features(x) = x / sigma,
        p(x | I) = N(b + sigma I, sigma^2),   cgf(I) = sum [b I / sigma + I^2 / 2 + log(sqrt(2 pi) sigma)].

    Attributes:
        loc: b, shape ``(size,)``.
        scale: sigma > 0, shape ``(size,)``.
    """

    support: ClassVar[Support] = Support.REAL
    noise_kind: ClassVar[str] = "normal"
    linear_parameters: ClassVar[bool] = False  # E depends on 1 / scale^2 and on the location

    loc: Array
    scale: Array

    @property
    def size(self) -> int:
        return self.loc.shape[0]

    def energy(self, x: Array, axis: int = -1) -> Array:
        loc, scale = along(self.loc, axis), along(self.scale, axis)
        return jnp.sum((x - loc) ** 2 / (2 * scale**2), axis=axis)

    def features(self, x: Array, axis: int = -1) -> Array:
        return x / along(self.scale, axis)

    def cgf(self, field: Array, axis: int = -1) -> Array:
        loc, scale = along(self.loc, axis), along(self.scale, axis)
        return jnp.sum(loc * field / scale + 0.5 * field**2, axis=axis) + self.log_normalizer()

    def log_normalizer(self) -> Array:
        """``sum log(sqrt(2 pi) sigma)``, the cgf at zero field."""
        return jnp.sum(jnp.log(self.scale)) + 0.5 * self.size * math.log(2 * math.pi)

    def noise(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        return jax.random.normal(key, shape, dtype)

    def sample_from_noise(self, noise: Array, field: Array, axis: int = -1) -> Array:
        scale = along(self.scale, axis)
        return along(self.loc, axis) + scale * field + scale * noise

    def sample(self, key: PRNGKeyArray, field: Array, dtype: DTypeLike) -> Array:
        return _draws.gaussian(key, self.mean(field), self.scale)

    def mean(self, field: Array) -> Array:
        return self.loc + self.scale * field

    def base(self, data: Array | None = None) -> "ScaledGaussian":
        """This layer, or its means set to ``data``'s (the standard deviations kept)."""
        if data is None:
            return self
        return ScaledGaussian(jnp.mean(data, axis=0).astype(self.loc.dtype), self.scale)

    def energy_drop(self, other: "Layer", x: Array, axis: int = -1) -> Array:
        scale = along(self.scale, axis)
        loc_self, loc_other = along(self.loc, axis), along(other.loc, axis)
        return jnp.sum(((x - loc_self) ** 2 - (x - loc_other) ** 2) / (2 * scale**2), axis=axis)

    def shift(self, field: Array) -> "ScaledGaussian":
        """The means moved by ``sigma * field`` (``E(x) - field . x / sigma`` up to a constant);
        sigma enters as a constant (no gradient flows to it through the shift)."""
        return ScaledGaussian(self.loc + jax.lax.stop_gradient(self.scale) * field, self.scale)

    def without_bias(self) -> "ScaledGaussian":
        return ScaledGaussian(jnp.zeros_like(self.loc), self.scale)

    def interpolate(self, other: "Layer", beta: Array) -> "ScaledGaussian":
        """The means interpolated; the standard deviations are ``other``'s (they must agree)."""
        return ScaledGaussian((1 - beta) * self.loc + beta * other.loc, other.scale)

    def same_features(self, other: "Layer") -> bool:
        if isinstance(self.scale, jax.core.Tracer) or isinstance(other.scale, jax.core.Tracer):  # assume they differ
            return False
        return bool(np.all(np.asarray(self.scale) == np.asarray(other.scale)))


class Gaussian(QuadraticLayer):
    """Real units with fields theta and precisions gamma > 0 (the native form):
    ``E(x) = sum (gamma x^2 / 2 - theta x)``, ``p(x | I) = N((theta + I) / gamma, 1 / gamma)``,
    ``cgf(I) = sum [(theta + I)^2 / (2 gamma) + log(2 pi / gamma) / 2]``.

    Attributes:
        bias: theta, shape ``(size,)``.
        precision: gamma, all > 0, shape ``(size,)``.
    """

    support: ClassVar[Support] = Support.REAL
    noise_kind: ClassVar[str] = "normal"

    def cgf(self, field: Array, axis: int = -1) -> Array:
        a, precision = along(self.bias, axis) + field, along(self.precision, axis)
        return jnp.sum(0.5 * a**2 / precision + 0.5 * jnp.log(2 * math.pi / precision), axis=axis)

    def noise(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        return jax.random.normal(key, shape, dtype)

    def sample_from_noise(self, noise: Array, field: Array, axis: int = -1) -> Array:
        mu, scale = self.location(field, axis)
        return mu + scale * noise

    def sample(self, key: PRNGKeyArray, field: Array, dtype: DTypeLike) -> Array:
        return _draws.gaussian(key, self.mean(field), 1 / jnp.sqrt(self.precision))

    def mean(self, field: Array) -> Array:
        return (self.bias + field) / self.precision

    def base(self, data: Array | None = None, variance_floor: float = 1e-2) -> "Gaussian":
        """This layer, or the Gaussian of ``data``'s per-unit mean and variance, each variance at
        least ``variance_floor`` times the data's typical one (the median over units; where more
        than half the units are constant, the variance of all entries; 1 for constant data).

        A unit constant in the data (a border pixel of images) would otherwise take a precision of
        1 / 0 or, under an absolute floor such as 1e-6, of 1e6: its energy terms ``gamma x^2 / 2 -
        theta x`` at x = 1 are then ~1e6, log Z as large, and float32 (7 digits) resolves the
        log-likelihoods to 0.1 nats only. Relative to the data's own scale the floor keeps those
        terms within ``1 / variance_floor`` of the others whatever the data's units.
        """
        if data is None:
            return self
        variance = jnp.var(data, axis=0)
        typical = jnp.median(variance)
        typical = jnp.where(typical > 0, typical, jnp.var(data))
        typical = jnp.where(typical > 0, typical, 1.0)
        precision = 1 / jnp.maximum(variance, variance_floor * typical)
        return Gaussian((jnp.mean(data, axis=0) * precision).astype(self.bias.dtype), precision.astype(self.bias.dtype))
