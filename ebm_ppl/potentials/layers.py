"""Layers of units for restricted Boltzmann machines: what each kind of unit contributes.

An RBM is a visible layer, a hidden layer and couplings ``W`` between the layers' *features*
(:mod:`ebm_ppl.potentials.rbm`). A layer knows, for its units ``x`` (last axis) and an input
``field`` from the other layer:

* ``energy(x)``       its own energy E(x) (the bias terms);
* ``features(x)``     what the couplings see: ``E(x, h) = E_v(x) + E_h(h) - features_v(x) W features_h(h)``;
* ``cgf(field)``      its cumulant generating function ``log sum_x exp(-E(x) + field . features(x))``
                      (an integral for real units): what summing the layer out adds to the other
                      layer's free energy;
* ``sample(key, field, dtype)`` and ``mean(field)``: the conditional ``p(x | field)`` it defines;
* ``base(data)``      the visible layer of a coupling-free reference model, fitted to data when
                      given (``without_bias()`` gives its hidden layer);
* for discrete layers, ``num_states`` and ``state(index)``: enumeration for exact sums.

Methods taking ``axis`` reduce over (and broadcast parameters along) the units axis, ``-1`` or,
for arrays laid out ``(units, chains)``, ``0``; the fused AIS path uses that layout. The
``noise``/``sample_from_noise`` pair splits a conditional draw into its random numbers and a
deterministic map, so AIS can draw the random numbers of many steps in one call.
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, DTypeLike, PRNGKeyArray

from ebm_ppl.ops import softplus
from ebm_ppl.potentials import _draws, enumeration
from ebm_ppl.potentials.base import Support, validate_input

__all__ = ["Layer", "Binary", "Gaussian"]


def _along(v: Array, axis: int) -> Array:
    """A per-unit vector broadcast against arrays whose units are on ``axis`` (-1, or 0 of 2-D)."""
    return v if axis == -1 else v[:, None]


class Layer(eqx.Module):
    """A layer of ``size`` units (abstract); see the module docstring for the methods."""

    support: ClassVar[Support]
    #: the randomness :meth:`noise` draws, ``"uniform"`` or ``"normal"``; None where the layer
    #: does not split its draws (the fused AIS path then does not apply)
    noise_kind: ClassVar[str | None] = None

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """The number of units."""

    @abc.abstractmethod
    def energy(self, x: Array, axis: int = -1) -> Array:
        """E(x); ``(*batch, size) -> (*batch,)``."""

    def features(self, x: Array, axis: int = -1) -> Array:
        """What the couplings see; ``(*batch, size) -> (*batch, size)`` (here x itself)."""
        return x

    @abc.abstractmethod
    def cgf(self, field: Array, axis: int = -1) -> Array:
        """``log sum_x exp(-E(x) + field . features(x))``; ``(*batch, size) -> (*batch,)``."""

    def noise(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        """The random numbers of one draw of ``shape`` (see :meth:`sample_from_noise`)."""
        raise NotImplementedError(f"{type(self).__name__} does not split its draws")

    def sample_from_noise(self, noise: Array, field: Array, axis: int = -1) -> Array:
        """The draw from ``p(x | field)`` that ``noise`` (from :meth:`noise`) determines."""
        raise NotImplementedError(f"{type(self).__name__} does not split its draws")

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, field: Array, dtype: DTypeLike) -> Array:
        """x ~ p(x | field) ∝ exp(-E(x) + field . features(x)); shape of ``field``."""

    @abc.abstractmethod
    def mean(self, field: Array) -> Array:
        """E[x | field]; shape of ``field``."""

    @abc.abstractmethod
    def base(self, data: Array | None = None) -> "Layer":
        """The layer of a coupling-free reference model: fitted to ``data`` ``(N, size)`` when
        given, else this layer."""

    def without_bias(self) -> "Layer":
        """This layer with its biases zero and its scales (if any) kept: the hidden layer of a
        coupling-free base model."""
        return jax.tree.map(jnp.zeros_like, self)

    def energy_drop(self, other: "Layer", x: Array, axis: int = -1) -> Array:
        """``E_self(x) - E_other(x)`` for a layer ``other`` of the same kind and features."""
        return self.energy(x, axis) - other.energy(x, axis)

    def interpolate(self, other: "Layer", beta: Array) -> "Layer":
        """The layer ``(1 - beta) self + beta other`` (parameters interpolated linearly) for a
        layer ``other`` of the same kind and features."""
        return jax.tree.map(lambda a, b: (1 - beta) * a + beta * b, self, other)

    def same_features(self, other: "Layer") -> bool:
        """Whether ``other.features`` is this layer's (so a coupling path may share them)."""
        return True

    def check(self, x: ArrayLike, name: str, owner: str) -> Array:
        """``x`` validated as states of this layer, ``(*batch, size)``."""
        return validate_input(x, (self.size,), self.support, name=name, owner=owner)


class Binary(Layer):
    """Units x in {0, 1} with biases b: ``E(x) = -b . x``, ``cgf(I) = sum softplus(b + I)``,
    ``p(x_i = 1 | I) = sigmoid(b_i + I_i)``.

    Attributes:
        bias: b, shape ``(size,)``.
    """

    support: ClassVar[Support] = Support.BINARY
    noise_kind: ClassVar[str] = "uniform"

    bias: Array

    @property
    def size(self) -> int:
        return self.bias.shape[0]

    def energy(self, x: Array, axis: int = -1) -> Array:
        return -(x @ self.bias) if axis == -1 else -(self.bias @ x)

    def logits(self, field: Array, axis: int = -1) -> Array:
        """``b + field``, the logits of p(x = 1 | field)."""
        return _along(self.bias, axis) + field

    def cgf(self, field: Array, axis: int = -1) -> Array:
        return self.cgf_from_logits(self.logits(field, axis), axis)

    def cgf_from_logits(self, logits: Array, axis: int = -1) -> Array:
        """:meth:`cgf` given ``logits = b + field``: ``sum softplus(logits)``."""
        return jnp.sum(softplus(logits), axis=axis)

    def noise(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        return jax.random.uniform(key, shape, dtype)

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

    def energy_drop(self, other: "Layer", x: Array, axis: int = -1) -> Array:
        delta = other.bias - self.bias
        return x @ delta if axis == -1 else delta @ x

    # -- enumeration ---------------------------------------------------------------------------
    @property
    def num_states(self) -> int:
        """2^size."""
        return 2**self.size

    def state(self, index: Array, dtype: DTypeLike) -> tuple[Array, Array]:
        """The state numbered ``index`` (its bits, least significant first) and its log
        multiplicity (0); ``(...,) int32 -> ((..., size), (...,))``."""
        return enumeration.index_to_bits(index, self.size, dtype), jnp.zeros(index.shape, dtype)


class Gaussian(Layer):
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

    loc: Array
    scale: Array

    @property
    def size(self) -> int:
        return self.loc.shape[0]

    def energy(self, x: Array, axis: int = -1) -> Array:
        loc, scale = _along(self.loc, axis), _along(self.scale, axis)
        return jnp.sum((x - loc) ** 2 / (2 * scale**2), axis=axis)

    def features(self, x: Array, axis: int = -1) -> Array:
        return x / _along(self.scale, axis)

    def cgf(self, field: Array, axis: int = -1) -> Array:
        loc, scale = _along(self.loc, axis), _along(self.scale, axis)
        return jnp.sum(loc * field / scale + 0.5 * field**2, axis=axis) + self.log_normalizer()

    def log_normalizer(self) -> Array:
        """``sum log(sqrt(2 pi) sigma)``, the cgf at zero field."""
        return jnp.sum(jnp.log(self.scale)) + 0.5 * self.size * math.log(2 * math.pi)

    def noise(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        return jax.random.normal(key, shape, dtype)

    def sample_from_noise(self, noise: Array, field: Array, axis: int = -1) -> Array:
        scale = _along(self.scale, axis)
        return _along(self.loc, axis) + scale * field + scale * noise

    def sample(self, key: PRNGKeyArray, field: Array, dtype: DTypeLike) -> Array:
        return _draws.gaussian(key, self.mean(field), self.scale)

    def mean(self, field: Array) -> Array:
        return self.loc + self.scale * field

    def base(self, data: Array | None = None) -> "Gaussian":
        """This layer, or its means set to ``data``'s (the standard deviations kept)."""
        if data is None:
            return self
        return Gaussian(jnp.mean(data, axis=0).astype(self.loc.dtype), self.scale)

    def energy_drop(self, other: "Layer", x: Array, axis: int = -1) -> Array:
        scale = _along(self.scale, axis)
        loc_self, loc_other = _along(self.loc, axis), _along(other.loc, axis)
        return jnp.sum(((x - loc_self) ** 2 - (x - loc_other) ** 2) / (2 * scale**2), axis=axis)

    def without_bias(self) -> "Gaussian":
        return Gaussian(jnp.zeros_like(self.loc), self.scale)

    def interpolate(self, other: "Layer", beta: Array) -> "Gaussian":
        """The means interpolated; the standard deviations are ``other``'s (they must agree)."""
        return Gaussian((1 - beta) * self.loc + beta * other.loc, other.scale)

    def same_features(self, other: "Layer") -> bool:
        try:
            return bool(jnp.all(self.scale == other.scale))
        except jax.errors.ConcretizationTypeError:  # traced parameters: assume they differ
            return False
