"""Gaussian-Bernoulli restricted Boltzmann machine: real visible units, binary hidden units."""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import numpy as np
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.compiler import filter_jit
from ebm_ppl.potentials import _draws, enumeration
from ebm_ppl.potentials._checks import as_param, check_finite_params, check_positive
from ebm_ppl.potentials.base import Potential, Support, validate_input
from ebm_ppl.potentials.registry import register_potential
from ebm_ppl.ops import softplus

__all__ = ["GaussianBernoulliRBM"]


@register_potential()
class GaussianBernoulliRBM(Potential):
    r"""Real visible units x in R^D with per-unit std sigma, binary hidden units h in {0,1}^M.

    Convention (the form of Hinton's practical guide, 2010, and Krizhevsky, 2009, where the
    visible units enter the interaction term divided by their standard deviation)::

        E(x, h) = sum_i (x_i - b_i)^2 / (2 sigma_i^2) - sum_ij (x_i / sigma_i) W_ij h_j - c^T h

    Free energy, h summed out::

        F(x) = sum_i (x_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(c_j + (W^T (x / sigma))_j)

    Conditionals: ``p(h_j=1|x) = sigmoid(c_j + (W^T (x / sigma))_j)`` and
    ``p(x|h) = N(b + sigma * (W h), diag(sigma^2))``, independent over i.

    ``F`` is bounded below for every W, so ``Z = int sum_h exp(-E)`` is always finite; the
    exact ``log Z`` enumerates h and integrates x out in closed form (:meth:`log_partition`).

    Attributes:
        W: weights, shape ``(n_visible, n_hidden)``.
        b: visible biases (the means of x when h = 0), shape ``(n_visible,)``.
        c: hidden biases, shape ``(n_hidden,)``.
        sigma: visible standard deviations, all > 0, shape ``(n_visible,)``.
    """

    name: ClassVar[str] = "gaussian_bernoulli_rbm"
    support: ClassVar[Support] = Support.REAL

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
        dtype = jnp.result_type(float) if dtype is None else dtype
        W = scale * jax.random.normal(key, (n_visible, n_hidden), dtype)
        if data is None:
            b = jnp.zeros(n_visible, dtype)
        else:
            if np.ndim(data) != 2 or np.shape(data)[1] != n_visible:
                raise ValueError(f"GaussianBernoulliRBM.init: data must have shape (N, {n_visible}), "
                                 f"got {np.shape(data)}")
            x = validate_input(data, (n_visible,), Support.REAL, name="data", owner="GaussianBernoulliRBM.init")
            b = jnp.mean(x, axis=0).astype(dtype)
        return cls(W, b, jnp.zeros(n_hidden, dtype), jnp.ones(n_visible, dtype))

    # -- shapes ------------------------------------------------------------------------------
    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.n_visible,)

    # -- energies ----------------------------------------------------------------------------
    def unbatched_energy(self, x: Array) -> Array:
        return self.energy_from_hidden_logits(x, self.hidden_logits(x))

    def energy_from_hidden_logits(self, x: Array, logits: Array) -> Array:
        """F(x) from ``logits = hidden_logits(x)`` (which a Gibbs sweep computes anyway):
        ``sum (x - b)^2 / (2 sigma^2) - sum softplus(logits)``; ``(*batch, D), (*batch, M) ->
        (*batch,)``. No validation."""
        quad = jnp.sum((x - self.b) ** 2 / (2 * self.sigma**2), axis=-1)
        return quad - jnp.sum(softplus(logits), axis=-1)

    def free_energy(self, x: ArrayLike) -> Array:
        """F(x) = -log sum_h exp(-E(x, h)); ``(*batch, D) -> (*batch,)``."""
        return self.energy(x)

    def energy_joint(self, x: ArrayLike, h: ArrayLike) -> Array:
        """E(x, h) in the convention above; ``x: (*batch, D)``, ``h: (*batch, M)`` -> ``(*batch,)``."""
        x = self._check(x)
        h = self._check_hidden(h)
        quad = jnp.sum((x - self.b) ** 2 / (2 * self.sigma**2), axis=-1)
        return quad - jnp.sum(((x / self.sigma) @ self.W) * h, axis=-1) - h @ self.c

    # -- conditionals (block Gibbs) ----------------------------------------------------------
    def hidden_logits(self, x: Array) -> Array:
        """Logits of p(h=1|x): ``c + (x / sigma) W``; ``(*batch, D) -> (*batch, M)``. No validation."""
        return self.c + (x / self.sigma) @ self.W

    def hidden_probs(self, x: ArrayLike) -> Array:
        """p(h_j=1|x); ``(*batch, D) -> (*batch, M)``."""
        return jax.nn.sigmoid(self.hidden_logits(self._check(x)))

    def _visible_mean(self, h: Array) -> Array:
        return self.b + self.sigma * (h @ self.W.T)

    def visible_mean(self, h: ArrayLike) -> Array:
        """E[x|h] = ``b + sigma * (W h)``; ``(*batch, M) -> (*batch, D)``. The std is ``sigma``."""
        return self._visible_mean(self._check_hidden(h))

    def sample_hidden(self, key: PRNGKeyArray, x: Array) -> Array:
        """h ~ p(h|x); ``(*batch, D) -> (*batch, M)`` in x's dtype. No validation (jit inner)."""
        return _draws.bernoulli_logits(key, self.hidden_logits(x), x.dtype)

    def sample_visible(self, key: PRNGKeyArray, h: Array) -> Array:
        """x ~ N(b + sigma * (W h), sigma^2); ``(*batch, M) -> (*batch, D)``. No validation (jit inner)."""
        return _draws.gaussian(key, self._visible_mean(h), self.sigma)

    # -- exact log partition -----------------------------------------------------------------
    def log_partition(
        self, *, route: str | None = None, max_terms: int | None = None, chunk_size: int = 2**14
    ) -> Array:
        """Exact log Z by enumerating h and integrating x in closed form (2^M terms).

        With ``a = W h`` the Gaussian integral over x gives::

            log Z = logsumexp_h [c^T h + sum_i (b_i a_i / sigma_i + a_i^2 / 2)]
                    + sum_i log(sqrt(2 pi) sigma_i)

        Only ``route="hidden"`` (or None) exists: x is real-valued and cannot be enumerated.
        """
        if route == "visible":
            raise ValueError(
                "GaussianBernoulliRBM: route='visible' is impossible, x is real-valued and cannot be "
                "enumerated; use route='hidden' (or None), which integrates x out analytically"
            )
        if route not in (None, "hidden"):
            raise ValueError(f"GaussianBernoulliRBM: route must be 'hidden' or None, got {route!r}")
        enumeration.check_enumerable(
            2**self.n_hidden,
            max_terms,
            f"GaussianBernoulliRBM with n_hidden={self.n_hidden}, enumerating the hidden layer",
        )
        return _log_z(self, chunk_size)

    def _check_hidden(self, h: ArrayLike) -> Array:
        return validate_input(h, (self.n_hidden,), Support.BINARY, name="h", owner="GaussianBernoulliRBM")

    def base_model(self) -> "GaussianBernoulliRBM":
        """W = 0, c = 0, same b and sigma: x ~ N(b, sigma^2) independent of h.

        Its ``log Z = n_hidden log 2 + sum_i log(sqrt(2 pi) sigma_i)``.
        """
        return GaussianBernoulliRBM(jnp.zeros_like(self.W), self.b, jnp.zeros_like(self.c), self.sigma)


@filter_jit
def _log_z(rbm: GaussianBernoulliRBM, chunk_size: int) -> Array:
    def log_term(idx):
        h = enumeration.index_to_bits(idx, rbm.n_hidden, rbm.W.dtype)
        a = h @ rbm.W.T  # (chunk, D)
        return h @ rbm.c + jnp.sum(rbm.b * a / rbm.sigma + 0.5 * a**2, axis=-1)

    log_gauss = jnp.sum(jnp.log(rbm.sigma)) + 0.5 * rbm.n_visible * math.log(2 * math.pi)
    return enumeration.logsumexp_over_indices(log_term, 2**rbm.n_hidden, chunk_size) + log_gauss
