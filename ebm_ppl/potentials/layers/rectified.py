"""Rectified units: ReLU (h >= 0) and dReLU (a ReLU on each side of 0; Tubiana & Monasson 2017).

Both are Gaussians restricted to half-lines, so their cumulant generating functions are
half-Gaussian integrals,

    log int_0^inf exp(-gamma h^2 / 2 + a h) dh = log(2 pi / gamma) / 2 + z^2 / 2 + log Phi(z),  z = a / sqrt(gamma),

computed without cancellation in float32: for z < 0 the last two terms are ``log(erfcx(-z / sqrt 2) / 2)``
(erfcx the scaled complementary error function), for z >= 0 ``log_ndtr`` is near 0. Draws are
inverse-CDF draws of a normal truncated below, refined by Newton steps on ``log_ndtr`` so that
they stay exact far in the tail, where ``jax.random.truncated_normal`` overflows in float32.
"""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
from jax.scipy.special import erfcx, log_ndtr, ndtri
from jaxtyping import Array, DTypeLike, PRNGKeyArray

from ebm_ppl.potentials.layers.base import Layer, QuadraticLayer, along
from ebm_ppl.potentials.supports import Support, box

__all__ = ["ReLU", "DReLU", "log_half_gaussian", "half_normal_mean", "truncated_normal_above"]

_LOG_2PI = math.log(2 * math.pi)


def log_half_gaussian(a: Array, precision: Array) -> Array:
    """``log int_0^inf exp(-precision h^2 / 2 + a h) dh``, elementwise, stable for any ``a``."""
    z = a / jnp.sqrt(precision)
    z_pos, z_neg = jnp.maximum(z, 0.0), jnp.minimum(z, 0.0)  # each branch sees only its own range
    positive = 0.5 * z_pos**2 + log_ndtr(z_pos)
    negative = jnp.log(erfcx(-z_neg / math.sqrt(2.0))) - math.log(2.0)
    return 0.5 * (_LOG_2PI - jnp.log(precision)) + jnp.where(z >= 0, positive, negative)


def _mills_term(z: Array) -> Array:
    """``phi(z) / Phi(z)`` (the mean shift of a normal truncated to (-z, inf) is this), stable."""
    return jnp.exp(-0.5 * z**2 - 0.5 * _LOG_2PI - log_ndtr(z))


#: below this standardized location z, :func:`half_normal_mean` takes the continued fraction
_CF_BELOW = -5.0
#: its terms: at z <= -5 thirty give float64 precision (relative error under 1e-16)
_CF_TERMS = 30


def half_normal_mean(z: Array) -> Array:
    """The mean of N(z, 1) restricted to (0, inf), ``z + phi(z) / Phi(z)``, elementwise, to float
    precision for any z (and never negative).

    For z >= -5 the formula loses at most a few ulps. Deeper in the tail its two terms nearly cancel
    (at z = -1000 the sum is 0.001 and the terms 1000: float32 keeps no digit of it), so there the
    mean is Laplace's continued fraction of ``phi(t) / Phi(-t) - t`` at ``t = -z`` (the Mills ratio's,
    shifted by t; Abramowitz & Stegun 26.2.14), ``1 / (t + 2 / (t + 3 / (t + 4 / (t + ...))))``,
    whose terms are all positive.
    """
    direct = z + _mills_term(jnp.maximum(z, _CF_BELOW))
    t = jnp.maximum(-z, -_CF_BELOW)  # each branch sees only its own range
    acc = t
    for k in range(_CF_TERMS, 1, -1):
        acc = t + k / acc
    return jnp.where(z >= _CF_BELOW, direct, 1 / acc)


def _positive_side(mu: Array, scale: Array, uniform: Array | None = None) -> Array:
    """N(mu, scale^2) restricted to (0, inf): the draw that ``uniform`` determines, or the mean
    when ``uniform`` is None."""
    if uniform is None:
        return scale * half_normal_mean(mu / scale)
    return mu + scale * truncated_normal_above(uniform, -mu / scale)


def truncated_normal_above(uniform: Array, lower: Array, newton_steps: int = 3) -> Array:
    """The draw of N(0, 1) conditioned on ``> lower`` that ``uniform`` in (0, 1) maps to by the
    inverse CDF (its tail probability beyond the draw is ``uniform`` times that beyond ``lower``).

    The tail probability is handled in logs (``log_ndtr``), the first guess is the exact inverse
    where it is representable and an asymptotic one deeper in the tail, and Newton steps on
    ``log_ndtr(-x) = log u + log_ndtr(-lower)`` make it exact to float precision.
    """
    target = jnp.log(uniform) + log_ndtr(-lower)
    exact = -ndtri(jnp.exp(jnp.maximum(target, -80.0)))
    # deep tail: Phi(-x) ~ phi(x) / x, so x^2 / 2 + log x = -target - log sqrt(2 pi)
    r = jnp.maximum(-2.0 * target - _LOG_2PI, 1.0)
    deep = jnp.sqrt(jnp.maximum(r - jnp.log(r), 1.0))
    x = jnp.where(target > -80.0, exact, deep)
    for _ in range(newton_steps):
        log_tail = log_ndtr(-x)
        slope = -jnp.exp(-0.5 * x**2 - 0.5 * _LOG_2PI - log_tail)  # d/dx log Phi(-x)
        x = x - (log_tail - target) / slope
    return jnp.maximum(x, lower)


class ReLU(QuadraticLayer):
    """Units h >= 0 with fields theta and precisions gamma > 0: ``E(h) = sum (gamma h^2 / 2 -
    theta h)``; given the input I, ``h`` is N((theta + I) / gamma, 1 / gamma) truncated to
    ``[0, inf)``, and ``cgf(I) = sum log_half_gaussian(theta + I, gamma)``.

    Attributes:
        bias: theta, shape ``(size,)``.
        precision: gamma, all > 0, shape ``(size,)``.
    """

    support: ClassVar[Support] = box(0.0, math.inf)
    noise_kind: ClassVar[str] = "uniform"

    def cgf(self, field: Array, axis: int = -1) -> Array:
        return jnp.sum(log_half_gaussian(along(self.bias, axis) + field, along(self.precision, axis)), axis=axis)

    def noise(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        return jax.random.uniform(key, shape, dtype, minval=jnp.finfo(dtype).tiny, maxval=1.0)

    def sample_from_noise(self, noise: Array, field: Array, axis: int = -1) -> Array:
        return _positive_side(*self.location(field, axis), noise)

    def sample(self, key: PRNGKeyArray, field: Array, dtype: DTypeLike) -> Array:
        draws = self.sample_from_noise(self.noise(key, field.shape, dtype), field)
        return jax.lax.optimization_barrier(draws.astype(dtype))

    def mean(self, field: Array) -> Array:
        return _positive_side(*self.location(field))

    def base(self, data: Array | None = None) -> "ReLU":
        """This layer (a ReLU layer is not fitted to data here)."""
        return self


class DReLU(Layer):
    """Double ReLU units (Tubiana & Monasson 2017): ``E(h) = gamma_+ (h_+)^2 / 2 + gamma_- (h_-)^2 / 2
    - theta_+ h_+ - theta_- h_-`` with ``h_+ = max(h, 0)``, ``h_- = min(h, 0)``: a different
    Gaussian on each side of 0, so ``cgf(I) = sum logaddexp(log_half_gaussian(theta_+ + I, gamma_+),
    log_half_gaussian(-(theta_- + I), gamma_-))``; a draw picks a side with probability
    proportional to its integral, then a truncated normal on it.

    Attributes:
        bias_pos, bias_neg: theta_+, theta_-, shape ``(size,)``.
        precision_pos, precision_neg: gamma_+, gamma_-, all > 0, shape ``(size,)``.
    """

    support: ClassVar[Support] = Support.REAL
    noise_kind: ClassVar[str] = "uniform"

    bias_pos: Array
    bias_neg: Array
    precision_pos: Array
    precision_neg: Array

    @property
    def size(self) -> int:
        return self.bias_pos.shape[0]

    def energy(self, x: Array, axis: int = -1) -> Array:
        pos, neg = jnp.maximum(x, 0.0), jnp.minimum(x, 0.0)
        g_pos, g_neg = along(self.precision_pos, axis), along(self.precision_neg, axis)
        t_pos, t_neg = along(self.bias_pos, axis), along(self.bias_neg, axis)
        return jnp.sum(0.5 * g_pos * pos**2 + 0.5 * g_neg * neg**2 - t_pos * pos - t_neg * neg, axis=axis)

    @property
    def _positive(self) -> ReLU:
        """The ReLU layer of h on h > 0."""
        return ReLU(self.bias_pos, self.precision_pos)

    @property
    def _negative(self) -> ReLU:
        """The ReLU layer of -h on h < 0."""
        return ReLU(-self.bias_neg, self.precision_neg)

    def _sides(self, field: Array, axis: int = -1) -> tuple[Array, Array]:
        """The log integrals of exp(-E(h) + I h) over h > 0 and over h < 0."""
        return (log_half_gaussian(along(self.bias_pos, axis) + field, along(self.precision_pos, axis)),
                log_half_gaussian(-(along(self.bias_neg, axis) + field), along(self.precision_neg, axis)))

    def cgf(self, field: Array, axis: int = -1) -> Array:
        log_pos, log_neg = self._sides(field, axis)
        return jnp.sum(jnp.logaddexp(log_pos, log_neg), axis=axis)

    def noise(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        return jax.random.uniform(key, shape, dtype, minval=jnp.finfo(dtype).tiny, maxval=1.0)

    def sample_from_noise(self, noise: Array, field: Array, axis: int = -1) -> Array:
        """One uniform per unit: the less probable side takes ``[0, p_rare)`` (where floats are
        finest), its draw the inverse CDF of ``u / p_rare`` on that side; the other side the
        inverse CDF of ``(u - p_rare) / (1 - p_rare)``."""
        log_pos, log_neg = self._sides(field, axis)
        pos_rare = log_pos <= log_neg
        p_rare = jax.nn.sigmoid(jnp.where(pos_rare, log_pos - log_neg, log_neg - log_pos))
        rare = noise < p_rare
        tiny = jnp.finfo(noise.dtype).tiny
        u = jnp.clip(jnp.where(rare, noise / p_rare, (noise - p_rare) / (1 - p_rare)), tiny, 1.0)
        positive = rare == pos_rare
        (mu_pos, scale_pos), (mu_neg, scale_neg) = (self._positive.location(field, axis),
                                                    self._negative.location(-field, axis))
        # one truncated-normal inverse CDF per unit, on the side it drew (h = -g on the negative side)
        g = _positive_side(jnp.where(positive, mu_pos, mu_neg), jnp.where(positive, scale_pos, scale_neg), u)
        return jnp.where(positive, g, -g)

    def sample(self, key: PRNGKeyArray, field: Array, dtype: DTypeLike) -> Array:
        draws = self.sample_from_noise(self.noise(key, field.shape, dtype), field)
        return jax.lax.optimization_barrier(draws.astype(dtype))

    def mean(self, field: Array) -> Array:
        log_pos, log_neg = self._sides(field)
        p_pos = jax.nn.sigmoid(log_pos - log_neg)
        mean_pos = _positive_side(*self._positive.location(field))
        mean_neg = -_positive_side(*self._negative.location(-field))
        return p_pos * mean_pos + (1 - p_pos) * mean_neg

    def base(self, data: Array | None = None) -> "DReLU":
        """This layer (a dReLU layer is not fitted to data here)."""
        return self

    def shift(self, field: Array) -> "DReLU":
        """Both sides' fields plus ``field``."""
        return DReLU(self.bias_pos + field, self.bias_neg + field, self.precision_pos, self.precision_neg)

    def without_bias(self) -> "DReLU":
        return DReLU(jnp.zeros_like(self.bias_pos), jnp.zeros_like(self.bias_neg), self.precision_pos,
                     self.precision_neg)
