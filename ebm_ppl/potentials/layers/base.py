"""Layers of units for restricted Boltzmann machines: what each kind of unit contributes.

An RBM is a visible layer, a hidden layer and couplings ``W`` between the layers' *features*
(:mod:`ebm_ppl.potentials.rbm`). A layer knows, for its units ``x`` (last axis) and an input
``field`` from the other layer:

* ``energy(x)``       its own energy E(x) (the bias terms);
* ``features(x)``     what the couplings see: ``E(x, h) = E_v(x) + E_h(h) - features_v(x) W features_h(h)``;
* ``cgf(field)``      its cumulant generating function ``log sum_x exp(-E(x) + field . features(x))``
                      (an integral for real units): what summing the layer out adds to the other
                      layer's free energy;
* ``sample(key, field, dtype)`` and ``mean(field)``: the conditional ``p(x | field)`` it defines,
  and ``mean_features(field)`` its mean features (what centering averages);
* ``shift(field)``    the layer with ``field . features(x)`` moved into its own energy, the same
                      conditional at input ``I`` as this one at ``I + field`` (how centered
                      parameters map to plain ones);
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
import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, DTypeLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.potentials.base import Support, validate_input

__all__ = ["Layer", "LinearLayer", "QuadraticLayer", "along"]


def along(v: Array, axis: int) -> Array:
    """A per-unit vector broadcast against arrays whose units are on ``axis`` (-1, or 0 of 2-D)."""
    return v if axis == -1 else v[:, None]


class Layer(eqx.Module):
    """A layer of ``size`` units (abstract); see the module docstring for the methods."""

    support: ClassVar[Support]
    #: the number of trailing axes of :meth:`features` (1: a vector; Potts units: 2, sites x states)
    feature_ndim: ClassVar[int] = 1
    #: the randomness :meth:`noise` draws, ``"uniform"`` or ``"normal"``; None where the layer
    #: does not split its draws (the fused AIS path then does not apply)
    noise_kind: ClassVar[str | None] = None
    #: whether the energy is linear in every field (biases, precisions), so that :meth:`tempered`
    #: is every field times beta; False for layers parametrized otherwise (a scale, a location)
    linear_parameters: ClassVar[bool] = True
    #: whether every parameter has the shape of the first (checked at construction); False for
    #: layers whose parameters differ in shape and are checked by their model (subspace units)
    uniform_parameters: ClassVar[bool] = True

    def __check_init__(self):
        """Every parameter has the layer's shape, that of its first: ``(size,)``, one value per
        unit (``(size, q)`` for Potts sites); a ValueError naming the layer, the parameter and both
        shapes otherwise (a ``(1,)`` or ``(size, 1)`` field would broadcast silently)."""
        if not self.uniform_parameters:
            return
        name, fields = type(self).__name__, [field.name for field in dataclasses.fields(self)]
        # concrete arrays only: under vmap a tracer's shape is one example's, and equinox or NumPyro
        # rebuild modules with placeholders for their leaves (hashing a model replaces arrays by ints)
        shapes = {field: tuple(np.shape(value)) for field in fields
                  if isinstance(value := getattr(self, field), (np.ndarray, list, tuple))
                  or (isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer))}
        if fields[0] not in shapes:
            return
        first, shape = fields[0], shapes[fields[0]]
        if len(shape) != self.feature_ndim:
            wanted, example = (("(size,), one value per unit", "size") if self.feature_ndim == 1 else
                               ("(sites, states)", "sites, num_categories=q"))
            raise ValueError(f"{name}: parameter {first} must have shape {wanted}, got {shape}; e.g. "
                             f"{name}.standard({example}) gives a standard layer")
        for field, other in shapes.items():
            if other != shape:
                raise ValueError(f"{name}: parameter {field} has shape {other}, but {first} has {shape}: every "
                                 f"parameter holds one value per unit, so give {field} shape {shape}")

    @classmethod
    def standard(cls, size: int, dtype: DTypeLike | None = None, **kwargs) -> "Layer":
        """``size`` (a positive integer) units with zero biases and unit precisions or scales
        (what an RBM starts from)."""
        size = checks.positive_int(size, f"{cls.__name__}.standard: size")
        dtype = jnp.result_type(float) if dtype is None else dtype
        values = {field.name: (jnp.ones if field.name.startswith(("precision", "scale")) else jnp.zeros)(
            (size, *cls._extra_shape(**kwargs)) if field.name == "bias" else (size,), dtype)
            for field in dataclasses.fields(cls)}
        return cls(**values)

    @classmethod
    def _extra_shape(cls, **kwargs) -> tuple[int, ...]:
        if kwargs:
            raise TypeError(f"{cls.__name__}.standard takes no options {sorted(kwargs)}")
        return ()

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """The number of units."""

    def tempered(self, beta: Array) -> "Layer":
        """The layer with energy ``beta E(x)`` (features unchanged): every field times beta, for
        layers with :attr:`linear_parameters`; a TypeError for others."""
        if not self.linear_parameters:
            raise TypeError(f"{type(self).__name__} has no tempered form by scaling its fields")
        return jax.tree.map(lambda a: beta * a, self)

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

    def mean_features(self, field: Array) -> Array:
        """E[features(x) | field]; shape of ``field`` (here ``features(mean(field))``: features
        linear in x)."""
        return self.features(self.mean(field))

    def shift(self, field: Array) -> "Layer":
        """The layer whose energy is ``E(x) - field . features(x)`` (up to a constant), for a
        ``field`` of the features' shape: here its ``bias`` plus ``field``."""
        return eqx.tree_at(lambda layer: layer.bias, self, self.bias + field)

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


class LinearLayer(Layer):
    """Units with a bias per unit and a linear energy ``E(x) = -b . x`` (binary and spin units).

    Attributes:
        bias: b, shape ``(size,)``.
    """

    noise_kind: ClassVar[str] = "uniform"

    bias: Array

    @property
    def size(self) -> int:
        return self.bias.shape[0]

    def energy(self, x: Array, axis: int = -1) -> Array:
        return -(x @ self.bias) if axis == -1 else -(self.bias @ x)

    def logits(self, field: Array, axis: int = -1) -> Array:
        """``b + field``: the total input of each unit."""
        return along(self.bias, axis) + field

    def noise(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        return jax.random.uniform(key, shape, dtype)

    def energy_drop(self, other: "Layer", x: Array, axis: int = -1) -> Array:
        delta = other.bias - self.bias
        return x @ delta if axis == -1 else delta @ x


class QuadraticLayer(Layer):
    """Units with fields theta and precisions gamma > 0 and ``E(x) = sum (gamma x^2 / 2 - theta x)``
    over their support (Gaussian units on the line, ReLU units on the half-line).

    Attributes:
        bias: theta, shape ``(size,)``.
        precision: gamma, all > 0, shape ``(size,)``.
    """

    bias: Array
    precision: Array

    @property
    def size(self) -> int:
        return self.bias.shape[0]

    def energy(self, x: Array, axis: int = -1) -> Array:
        bias, precision = along(self.bias, axis), along(self.precision, axis)
        return jnp.sum(0.5 * precision * x**2 - bias * x, axis=axis)

    def location(self, field: Array, axis: int = -1) -> tuple[Array, Array]:
        """The mean ``(theta + field) / gamma`` and standard deviation ``1 / sqrt(gamma)`` of the
        (untruncated) Gaussian ``exp(-E(x) + field x)``."""
        precision = along(self.precision, axis)
        return (along(self.bias, axis) + field) / precision, 1 / jnp.sqrt(precision)

    def without_bias(self) -> "QuadraticLayer":
        return type(self)(jnp.zeros_like(self.bias), self.precision)
