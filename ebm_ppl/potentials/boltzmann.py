"""The fully visible Boltzmann machine (chapter eq. 6.32)."""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.compiler import filter_jit
from ebm_ppl.potentials import enumeration
from ebm_ppl.potentials._checks import as_param, check_finite_params, param_dtype, sizes
from ebm_ppl.potentials._checks import scale as check_scale
from ebm_ppl.potentials.base import Potential, Support, is_concrete, validate_input
from ebm_ppl.potentials.layers import Binary
from ebm_ppl.potentials.registry import register_potential

__all__ = ["BoltzmannMachine"]


@register_potential()
class BoltzmannMachine(Potential):
    r"""Binary units x in {0,1}^D with pairwise couplings (eq. 6.32).

    ``E(x) = -1/2 x^T W x - b^T x = -sum_{i<j} W_ij x_i x_j - sum_i b_i x_i`` with W symmetric
    and zero on the diagonal. The single-site conditional is
    ``p(x_i = 1 | x_{-i}) = sigmoid(b_i + sum_j W_ij x_j)``.

    Attributes:
        W: couplings, shape ``(D, D)``, symmetric with zero diagonal.
        b: biases, shape ``(D,)``.
    """

    name: ClassVar[str] = "boltzmann"
    support: ClassVar[Support] = Support.BINARY

    W: Array
    b: Array

    def __init__(self, W: ArrayLike, b: ArrayLike):
        W = as_param(W, "W", ndim=2, owner="BoltzmannMachine")
        dim = W.shape[0]
        if W.shape != (dim, dim):
            raise ValueError(f"BoltzmannMachine: W must be square, got shape {W.shape}")
        if is_concrete(W):  # checked in NumPy: jnp would trace inside a jit that closes over W
            Wn = np.asarray(W)
            if not np.all(Wn == Wn.T):
                asym = float(np.max(np.abs(Wn - Wn.T)))
                raise ValueError(
                    f"BoltzmannMachine: W must be symmetric (max |W - W^T| = {asym:.3g}); "
                    "symmetrize with (W + W.T) / 2"
                )
            if not np.all(np.diag(Wn) == 0):
                raise ValueError("BoltzmannMachine: W must have a zero diagonal (no self-couplings)")
        self.W = W
        self.b = as_param(b, "b", shape=(dim,), owner="BoltzmannMachine")
        check_finite_params(self)

    @classmethod
    def init(cls, key: PRNGKeyArray, dim: int, *, scale: float = 0.01, dtype=None) -> "BoltzmannMachine":
        """Symmetric couplings W_ij ~ N(0, scale^2) for i < j, zero diagonal, zero biases."""
        (dim,) = sizes("BoltzmannMachine.init", dim=dim)
        dtype = param_dtype(dtype, "BoltzmannMachine.init", dim * (dim + 1))
        upper = jnp.triu(check_scale(scale, "BoltzmannMachine.init") * jax.random.normal(key, (dim, dim), dtype), 1)
        return cls(upper + upper.T, jnp.zeros(dim, dtype))

    @property
    def dim(self) -> int:
        return self.b.shape[0]

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def unbatched_energy(self, x: Array) -> Array:
        return -0.5 * x @ self.W @ x - x @ self.b

    def site_logits(self, x: Array) -> Array:
        """Logits of p(x_i = 1 | x_{-i}) for every i at once: ``b + W x`` (W has a zero diagonal).

        ``(*batch, D) -> (*batch, D)``. No validation (jitted inner code).
        """
        return self.b + x @ self.W

    def site_logit(self, x: Array, i: Array) -> Array:
        """The logit of p(x_i = 1 | x_{-i}) for one ``(D,)`` example: ``b_i + W_i . x``, O(D)."""
        return self.b[i] + self.W[i] @ x

    def log_partition(
        self, *, route: str | None = None, max_terms: int | None = None, chunk_size: int = 2**14
    ) -> Array:
        """Exact log Z by enumerating all 2^D states in chunks (bounded memory)."""
        if route not in (None, "visible"):
            raise ValueError(f"BoltzmannMachine: only route='visible' (enumerate x) exists, got {route!r}")
        enumeration.check_enumerable(2**self.dim, max_terms, f"BoltzmannMachine with D={self.dim}")
        return _log_z(self, enumeration.check_chunk_size(chunk_size))

    def _log_weights(self, x: Array) -> Array:
        """-E(x) of states ``(S, D)``, vectorized over the rows."""
        return 0.5 * jnp.sum((x @ self.W) * x, axis=-1) + x @ self.b

    def exact_samples(self, key: PRNGKeyArray, num: int) -> Array:
        """``num`` independent exact draws ``(num, D)`` by enumerating the 2^D states (D <= 22)."""
        num = enumeration.check_num(num, "BoltzmannMachine.exact_samples", self.dim)
        return enumeration.sample_binary_states(key, self._log_weights, self.dim, num, self.W.dtype,
                                                f"a BoltzmannMachine with D={self.dim}")

    def tempered(self, beta: Array) -> "BoltzmannMachine":
        """The machine at inverse temperature ``beta``: ``beta E(x)`` (W and b times beta)."""
        return BoltzmannMachine(beta * self.W, beta * self.b)

    # -- the coupling-free base model ----------------------------------------------------------
    def base_model(self, data: ArrayLike | None = None) -> "BoltzmannMachine":
        """W = 0 and biases fitted to binary ``data`` ``(N, D)`` when given (the logits of its
        smoothed marginals), else these biases: independent units, log Z in closed form
        (:meth:`factorized_log_partition`)."""
        if data is not None:
            data = validate_input(data, self.event_shape, self.support, name="data", owner="BoltzmannMachine.base_model")
            if data.ndim != 2:
                raise ValueError(f"BoltzmannMachine.base_model: data must have shape (N, {self.dim}), got {data.shape}")
        return BoltzmannMachine(jnp.zeros_like(self.W), Binary(self.b).base(data).bias)

    def factorized_log_partition(self) -> Array:
        """Exact log Z when W = 0: ``sum softplus(b)``. A concrete nonzero W raises a ValueError."""
        if is_concrete(self.W) and np.any(np.asarray(self.W) != 0):
            raise ValueError("BoltzmannMachine: the base model must have zero couplings (W is not zero); "
                             "use base_model()")
        return Binary(self.b).cgf(jnp.zeros_like(self.b))


@filter_jit
def _log_z(bm: BoltzmannMachine, chunk_size: int) -> Array:
    def log_term(idx):
        return bm._log_weights(enumeration.index_to_bits(idx, bm.dim, bm.W.dtype))

    return enumeration.logsumexp_over_indices(log_term, 2**bm.dim, chunk_size)
