"""Gaussian-Bernoulli restricted Boltzmann machine: real visible units, binary hidden units."""

from __future__ import annotations

from typing import ClassVar

import jax
import numpy as np
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.potentials._checks import as_param, check_finite_params, check_positive, param_dtype, sizes
from ebm_ppl.potentials._checks import scale as check_scale
from ebm_ppl.potentials.base import Support, validate_input
from ebm_ppl.potentials.layers import Binary, ScaledGaussian
from ebm_ppl.potentials.rbm import BinaryHiddenRBM
from ebm_ppl.potentials.registry import register_potential

__all__ = ["GaussianBernoulliRBM"]


@register_potential()
class GaussianBernoulliRBM(BinaryHiddenRBM):
    r"""Real visible units x in R^D with per-unit std sigma, binary hidden units h in {0,1}^M.

    Convention (the form of Hinton's practical guide, 2010, and Krizhevsky, 2009, where the
    visible units enter the interaction term divided by their standard deviation)::

        E(x, h) = sum_i (x_i - b_i)^2 / (2 sigma_i^2) - sum_ij (x_i / sigma_i) W_ij h_j - c^T h

    Free energy, h summed out::

        F(x) = sum_i (x_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(c_j + (W^T (x / sigma))_j)

    Conditionals: ``p(h_j=1|x) = sigmoid(c_j + (W^T (x / sigma))_j)`` and
    ``p(x|h) = N(b + sigma * (W h), diag(sigma^2))``, independent over i.

    ``F`` is bounded below for every W, so ``Z = int sum_h exp(-E)`` is always finite; the
    exact ``log Z`` enumerates h and integrates x out in closed form (with ``a = W h``)::

        log Z = logsumexp_h [c^T h + sum_i (b_i a_i / sigma_i + a_i^2 / 2)] + sum_i log(sqrt(2 pi) sigma_i)

    A :class:`~ebm_ppl.potentials.layers.ScaledGaussian` visible layer and a
    :class:`~ebm_ppl.potentials.layers.Binary` hidden layer over the shared RBM machinery
    (:class:`~ebm_ppl.potentials.rbm.RBMBase`). ``sigma`` is not trained by default
    (``frozen_fields``).

    Attributes:
        W: weights, shape ``(n_visible, n_hidden)``.
        b: visible biases (the means of x when h = 0), shape ``(n_visible,)``.
        c: hidden biases, shape ``(n_hidden,)``.
        sigma: visible standard deviations, all > 0, shape ``(n_visible,)``.
    """

    name: ClassVar[str] = "gaussian_bernoulli_rbm"
    support: ClassVar[Support] = Support.REAL
    #: fields :func:`ebm_ppl.fit` keeps fixed unless ``freeze=`` says otherwise
    frozen_fields: ClassVar[tuple[str, ...]] = ("sigma",)

    W: Array
    b: Array
    c: Array
    sigma: Array

    def __init__(self, W: ArrayLike, b: ArrayLike, c: ArrayLike, sigma: ArrayLike | None = None):
        owner = "GaussianBernoulliRBM"
        W = as_param(W, "W", ndim=2, owner=owner)
        n_visible, n_hidden = W.shape
        self.W = W
        self.b = as_param(b, "b", shape=(n_visible,), owner=owner)
        self.c = as_param(c, "c", shape=(n_hidden,), owner=owner)
        if sigma is None:
            sigma = jnp.ones(n_visible, W.dtype)
        self.sigma = as_param(sigma, "sigma", shape=(n_visible,), owner=owner)
        check_finite_params(self)
        check_positive(self.sigma, "sigma (the visible standard deviations)", owner=owner)

    @classmethod
    def init(
        cls, key: PRNGKeyArray, n_visible: int, n_hidden: int, *, scale: float = 0.01,
        data: ArrayLike | None = None, dtype=None
    ) -> "GaussianBernoulliRBM":
        """W ~ N(0, scale^2), zero hidden biases, unit sigma (suits data standardised per pixel);
        visible biases zero, or the per-pixel mean of real ``data (N, n_visible)`` when given."""
        owner = "GaussianBernoulliRBM.init"
        n_visible, n_hidden = sizes(owner, n_visible=n_visible, n_hidden=n_hidden)
        dtype = param_dtype(dtype, owner, (n_visible + 1) * (n_hidden + 2))
        W = check_scale(scale, owner) * jax.random.normal(key, (n_visible, n_hidden), dtype)
        if data is None:
            b = jnp.zeros(n_visible, dtype)
        else:
            if np.ndim(data) != 2 or np.shape(data)[1] != n_visible:
                raise ValueError(f"GaussianBernoulliRBM.init: data must have shape (N, {n_visible}), "
                                 f"got {np.shape(data)}")
            x = validate_input(data, (n_visible,), Support.REAL, name="data", owner="GaussianBernoulliRBM.init")
            b = jnp.mean(x, axis=0).astype(dtype)
        return cls(W, b, jnp.zeros(n_hidden, dtype), jnp.ones(n_visible, dtype))

    # -- layers ------------------------------------------------------------------------------
    @property
    def visible(self) -> ScaledGaussian:
        return ScaledGaussian(self.b, self.sigma)

    @property
    def hidden(self) -> Binary:
        return Binary(self.c)

    def with_layers(self, visible: ScaledGaussian, hidden: Binary, W: Array) -> "GaussianBernoulliRBM":
        return GaussianBernoulliRBM(W, visible.loc, hidden.bias, visible.scale)

    def visible_mean(self, h: ArrayLike) -> Array:
        """E[x|h] = ``b + sigma * (W h)``; ``(*batch, M) -> (*batch, D)``. The std is ``sigma``."""
        return self.conditional_visible_mean(self._check_hidden(h))
