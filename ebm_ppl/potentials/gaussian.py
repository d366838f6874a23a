"""A multivariate Gaussian written as an energy (chapter eq. 6.2-6.4): the analytic reference."""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.potentials._checks import as_param, check_finite_params, check_positive, param_dtype, sizes
from ebm_ppl.potentials.base import Potential, Support, is_concrete
from ebm_ppl.potentials.enumeration import check_num
from ebm_ppl.potentials.registry import register_potential

__all__ = ["Gaussian"]


@register_potential()
class Gaussian(Potential):
    r"""``E(x) = 1/2 (x - mu)^T Sigma^{-1} (x - mu)``, so ``p(x) = N(mu, Sigma)`` (eq. 6.2-6.4).

    ``log Z = D/2 log(2 pi) + 1/2 log det Sigma`` is known in closed form, which makes this the
    reference for testing samplers and AIS, and the base distribution AIS anneals from for real x.

    Give exactly one of ``cov`` (full covariance, factorised by Cholesky), ``scale_tril`` (its
    lower Cholesky factor L, Sigma = L L^T) or ``scale_diag`` (standard deviations, diagonal
    Sigma). With none of them, Sigma = I.

    Attributes:
        mean: shape ``(D,)``.
        scale_tril: shape ``(D, D)`` or None.
        scale_diag: shape ``(D,)`` or None.
    """

    name: ClassVar[str] = "gaussian"
    support: ClassVar[Support] = Support.REAL

    mean: Array
    scale_tril: Array | None
    scale_diag: Array | None

    def __init__(
        self,
        mean: ArrayLike,
        cov: ArrayLike | None = None,
        *,
        scale_tril: ArrayLike | None = None,
        scale_diag: ArrayLike | None = None,
    ):
        mean = as_param(mean, "mean", ndim=1, owner="Gaussian")
        (dim,) = mean.shape
        given = [name for name, v in (("cov", cov), ("scale_tril", scale_tril), ("scale_diag", scale_diag)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"Gaussian: give at most one of cov, scale_tril, scale_diag (got {given})")
        self.mean = mean
        self.scale_tril = None
        self.scale_diag = None
        if cov is not None:
            cov = as_param(cov, "cov", shape=(dim, dim), owner="Gaussian")
            if is_concrete(cov) and not np.allclose(np.asarray(cov), np.asarray(cov).T, rtol=1e-5, atol=1e-8):
                raise ValueError("Gaussian: cov must be symmetric")
            scale_tril = jnp.linalg.cholesky(cov)
            if is_concrete(scale_tril) and not np.all(np.isfinite(np.asarray(scale_tril))):
                raise ValueError("Gaussian: cov must be positive definite (its Cholesky factorisation failed)")
        if scale_tril is not None:
            L = as_param(scale_tril, "scale_tril", shape=(dim, dim), owner="Gaussian")
            if is_concrete(L) and not np.all(np.triu(np.asarray(L), 1) == 0):
                raise ValueError("Gaussian: scale_tril must be lower triangular")
            check_positive(jnp.diag(L), "the diagonal of scale_tril", owner="Gaussian")
            self.scale_tril = L
        elif scale_diag is not None:
            s = as_param(scale_diag, "scale_diag", shape=(dim,), owner="Gaussian")
            check_positive(s, "scale_diag", owner="Gaussian")
            self.scale_diag = s
        else:
            self.scale_diag = jnp.ones_like(mean)
        check_finite_params(self)

    @classmethod
    def standard(cls, dim: int, dtype=None) -> "Gaussian":
        """N(0, I) in ``dim`` dimensions."""
        (dim,) = sizes("Gaussian.standard", dim=dim)
        dtype = param_dtype(dtype, "Gaussian.standard", 2 * dim)
        return cls(jnp.zeros(dim, dtype), scale_diag=jnp.ones(dim, dtype))

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.mean.shape

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @property
    def covariance(self) -> Array:
        """Sigma, shape ``(D, D)``."""
        if self.scale_tril is not None:
            return self.scale_tril @ self.scale_tril.T
        return jnp.diag(self.scale_diag**2)

    def _whiten(self, x: Array) -> Array:
        if self.scale_tril is not None:
            return solve_triangular(self.scale_tril, x - self.mean, lower=True)
        return (x - self.mean) / self.scale_diag

    def unbatched_energy(self, x: Array) -> Array:
        z = self._whiten(x)
        return 0.5 * jnp.dot(z, z)

    def log_partition(self, *, route: str | None = None, max_terms: int | None = None, chunk_size: int | None = None) -> Array:
        """``log Z = D/2 log(2 pi) + sum log diag(L)`` (analytic; the options are ignored)."""
        if route not in (None, "analytic"):
            raise ValueError(f"Gaussian: log Z is analytic; route must be None or 'analytic', got {route!r}")
        diag = jnp.diag(self.scale_tril) if self.scale_tril is not None else self.scale_diag
        return 0.5 * self.dim * math.log(2 * math.pi) + jnp.sum(jnp.log(diag))

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        """Exact draws, shape ``(*sample_shape, D)``."""
        sample_shape = tuple(checks.non_negative_int(n, "Gaussian.sample: sample_shape entry")
                             for n in (sample_shape if isinstance(sample_shape, (tuple, list)) else (sample_shape,)))
        num = math.prod(sample_shape)
        checks.check_memory(num * self.dim * self.mean.dtype.itemsize, f"{num} draws x {self.dim} values",
                            owner="Gaussian.sample")
        eps = jax.random.normal(key, (*sample_shape, self.dim), self.mean.dtype)
        if self.scale_tril is not None:
            return self.mean + eps @ self.scale_tril.T
        return self.mean + eps * self.scale_diag

    def exact_samples(self, key: PRNGKeyArray, num: int) -> Array:
        """``num`` exact draws, shape ``(num, D)``."""
        return self.sample(key, (check_num(num, "Gaussian.exact_samples", self.dim),))

    def base_model(self, data: ArrayLike | None = None) -> "Gaussian":
        """Itself: it already has a known log Z and exact samples."""
        return self
