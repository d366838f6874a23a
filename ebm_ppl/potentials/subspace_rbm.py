"""Subspace restricted Boltzmann machine (Tomczak & Gonczarek 2016; chapter eq. 6.44-6.47)."""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.compiler import filter_jit
from ebm_ppl.potentials import _draws, enumeration
from ebm_ppl.potentials._checks import as_param, check_finite_params
from ebm_ppl.potentials.base import Potential, Support, validate_input
from ebm_ppl.potentials.registry import register_potential
from ebm_ppl.ops import softplus
from ebm_ppl.potentials.bernoulli_rbm import _data_visible_bias

__all__ = ["SubspaceRBM"]


@register_potential()
class SubspaceRBM(Potential):
    r"""Binary visible x in {0,1}^D, binary gates h in {0,1}^M, binary subspace units S in {0,1}^(M, K).

    Tomczak & Gonczarek (2016), "Learning invariant features using subspace restricted Boltzmann
    machine". Each gate h_j switches on a subspace of K units S_j; the joint energy is::

        E(x, h, S) = -sum_ijk W_ijk x_i h_j S_jk - b^T x - c^T h - sum_jk h_j d_jk S_jk

    With ``a_jk(x) = sum_i W_ijk x_i + d_jk``, summing out S and then h gives the free energy::

        F(x) = -b^T x - sum_j [K log 2 + softplus(c_j - K log 2 + sum_k softplus(a_jk))]

    (when h_j = 0 the K units S_j are free, contributing 2^K). Block-Gibbs conditionals:

    * ``p(h_j=1|x)      = sigmoid(c_j - K log 2 + sum_k softplus(a_jk))`` (S summed out);
    * ``p(S_jk=1|x, h)  = sigmoid(h_j a_jk)`` (uniform when the gate is off);
    * ``p(x_i=1|h, S)   = sigmoid(b_i + sum_jk W_ijk h_j S_jk)``.

    The latent state passed between :meth:`sample_hidden` and :meth:`sample_visible` is the
    pair ``(h, S)``.

    Attributes:
        W: weights, shape ``(n_visible, n_gates, n_subspace)``.
        b: visible biases, shape ``(n_visible,)``.
        c: gate biases, shape ``(n_gates,)``.
        d: subspace biases (active only when their gate is on), shape ``(n_gates, n_subspace)``.
    """

    name: ClassVar[str] = "subspace_rbm"
    support: ClassVar[Support] = Support.BINARY

    W: Array
    b: Array
    c: Array
    d: Array

    def __init__(self, W: ArrayLike, b: ArrayLike, c: ArrayLike, d: ArrayLike):
        owner = "SubspaceRBM"
        W = as_param(W, "W", ndim=3, owner=owner)
        n_visible, n_gates, n_subspace = W.shape
        self.W = W
        self.b = as_param(b, "b", shape=(n_visible,), owner=owner)
        self.c = as_param(c, "c", shape=(n_gates,), owner=owner)
        self.d = as_param(d, "d", shape=(n_gates, n_subspace), owner=owner)
        check_finite_params(self)

    @classmethod
    def init(
        cls,
        key: PRNGKeyArray,
        n_visible: int,
        n_gates: int,
        n_subspace: int,
        *,
        scale: float = 0.01,
        data: ArrayLike | None = None,
        dtype=None,
    ) -> "SubspaceRBM":
        """W ~ N(0, scale^2), zero gate and subspace biases; visible biases zero, or the logit of
        the smoothed pixel marginals of binary ``data (N, n_visible)`` when given (as
        :meth:`BernoulliRBM.init`)."""
        dtype = jnp.result_type(float) if dtype is None else dtype
        W = scale * jax.random.normal(key, (n_visible, n_gates, n_subspace), dtype)
        b = jnp.zeros(n_visible, dtype) if data is None else _data_visible_bias(data, n_visible, "SubspaceRBM", dtype)
        return cls(
            W,
            b,
            jnp.zeros(n_gates, dtype),
            jnp.zeros((n_gates, n_subspace), dtype),
        )

    # -- shapes ------------------------------------------------------------------------------
    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_gates(self) -> int:
        return self.W.shape[1]

    @property
    def n_subspace(self) -> int:
        return self.W.shape[2]

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.n_visible,)

    # -- energies ----------------------------------------------------------------------------
    def unbatched_energy(self, x: Array) -> Array:
        return self.energy_from_hidden_logits(x, self.hidden_logits(x))

    def energy_from_hidden_logits(self, x: Array, logits: Array) -> Array:
        """F(x) from the gates' ``logits = hidden_logits(x)`` (which a Gibbs sweep computes anyway):
        ``-b.x - sum_j (K log 2 + softplus(logits_j))``; ``(*batch, D), (*batch, M) -> (*batch,)``.
        No validation."""
        return -x @ self.b - jnp.sum(self.n_subspace * math.log(2.0) + softplus(logits), axis=-1)

    def free_energy(self, x: ArrayLike) -> Array:
        """F(x) = -log sum_{h,S} exp(-E(x, h, S)); ``(*batch, D) -> (*batch,)``."""
        return self.energy(x)

    def energy_joint(self, x: ArrayLike, h: ArrayLike, S: ArrayLike) -> Array:
        """E(x, h, S); ``x: (*batch, D)``, ``h: (*batch, M)``, ``S: (*batch, M, K)`` -> ``(*batch,)``."""
        x = self._check(x)
        h = self._check_gates(h)
        S = self._check_subspace(S)
        hS = h[..., None] * S
        return -jnp.sum(self.subspace_activations(x) * hS, axis=(-2, -1)) - x @ self.b - h @ self.c

    # -- conditionals (block Gibbs) ----------------------------------------------------------
    def subspace_activations(self, x: Array) -> Array:
        """``a_jk = sum_i W_ijk x_i + d_jk``; ``(*batch, D) -> (*batch, M, K)``. No validation."""
        return jnp.einsum("...i,ijk->...jk", x, self.W) + self.d

    def hidden_logits(self, x: Array) -> Array:
        """Logits of p(h_j=1|x): ``c_j - K log 2 + sum_k softplus(a_jk)``; ``(*batch, D) -> (*batch, M)``.

        No validation.
        """
        return self._gate_logits(self.subspace_activations(x))

    def _gate_logits(self, a: Array) -> Array:
        return self.c - self.n_subspace * math.log(2.0) + jnp.sum(softplus(a), axis=-1)

    def subspace_logits(self, x: Array, h: Array) -> Array:
        """Logits of p(S_jk=1|x, h): ``h_j a_jk``; ``(*batch, D), (*batch, M) -> (*batch, M, K)``.

        No validation.
        """
        return h[..., None] * self.subspace_activations(x)

    def visible_logits(self, h: Array, S: Array) -> Array:
        """Logits of p(x_i=1|h, S): ``b_i + sum_jk W_ijk h_j S_jk``; ``-> (*batch, D)``. No validation."""
        return self.b + jnp.einsum("...jk,ijk->...i", h[..., None] * S, self.W)

    def hidden_probs(self, x: ArrayLike) -> Array:
        """p(h_j=1|x), S summed out; ``(*batch, D) -> (*batch, M)``."""
        return jax.nn.sigmoid(self.hidden_logits(self._check(x)))

    def subspace_probs(self, x: ArrayLike, h: ArrayLike) -> Array:
        """p(S_jk=1|x, h); ``x: (*batch, D)``, ``h: (*batch, M)`` -> ``(*batch, M, K)``."""
        return jax.nn.sigmoid(self.subspace_logits(self._check(x), self._check_gates(h)))

    def visible_probs(self, h: ArrayLike, S: ArrayLike) -> Array:
        """p(x_i=1|h, S); ``h: (*batch, M)``, ``S: (*batch, M, K)`` -> ``(*batch, D)``."""
        return jax.nn.sigmoid(self.visible_logits(self._check_gates(h), self._check_subspace(S)))

    def sample_hidden(self, key: PRNGKeyArray, x: Array) -> tuple[Array, Array]:
        """(h, S) ~ p(h, S|x): h from p(h|x), then S from p(S|x, h).

        ``(*batch, D) -> ((*batch, M), (*batch, M, K))`` in x's dtype. No validation (jit inner).
        """
        key_h, key_s = jax.random.split(key)
        a = self.subspace_activations(x)
        h = _draws.bernoulli_logits(key_h, self._gate_logits(a), x.dtype)
        S = _draws.bernoulli_logits(key_s, h[..., None] * a, x.dtype)
        return h, S

    def sample_visible(self, key: PRNGKeyArray, latent: tuple[Array, Array]) -> Array:
        """x ~ p(x|h, S) for ``latent = (h, S)``; ``-> (*batch, D)`` in h's dtype. No validation."""
        h, S = latent
        return _draws.bernoulli_logits(key, self.visible_logits(h, S), h.dtype)

    # -- exact log partition -----------------------------------------------------------------
    @property
    def n_hidden_terms(self) -> int:
        """Effective number of (h, S) states: ``(1 + 2^K)^M`` (an off gate's S is free)."""
        return (1 + 2**self.n_subspace) ** self.n_gates

    def log_partition(
        self, *, route: str | None = None, max_terms: int | None = None, chunk_size: int = 2**14
    ) -> Array:
        """Exact log Z by enumerating x (``route="visible"``) or the latents (``route="hidden"``).

        * visible: ``log Z = logsumexp_x [-F(x)]`` over 2^D states;
        * hidden: x summed out analytically,
          ``log Z = logsumexp_{h,S} [c^T h + sum_jk h_j d_jk S_jk + sum_i softplus(b_i + sum_jk W_ijk h_j S_jk)]``.
          A gate that is off leaves its S_j out of the energy, so each gate has ``1 + 2^K``
          distinct states (off, weighted 2^K; or on with one of 2^K patterns): ``(1 + 2^K)^M``
          terms instead of ``2^(M (K + 1))``, indexed as mixed-radix digits in base ``1 + 2^K``.

        ``route=None`` picks the route with fewer terms.
        """
        n_visible_terms = 2**self.n_visible
        n_hidden_terms = self.n_hidden_terms
        if route is None:
            route = "hidden" if n_hidden_terms <= n_visible_terms else "visible"
        elif route not in ("hidden", "visible"):
            raise ValueError(f"SubspaceRBM: route must be 'hidden', 'visible' or None, got {route!r}")
        num_terms = n_hidden_terms if route == "hidden" else n_visible_terms
        enumeration.check_enumerable(
            num_terms,
            max_terms,
            f"SubspaceRBM with n_visible={self.n_visible}, n_gates={self.n_gates}, "
            f"n_subspace={self.n_subspace}, enumerating the {route} units",
        )
        return _log_z(self, route, chunk_size)

    def _check_gates(self, h: ArrayLike) -> Array:
        return validate_input(h, (self.n_gates,), Support.BINARY, name="h", owner="SubspaceRBM")

    def _check_subspace(self, S: ArrayLike) -> Array:
        return validate_input(
            S, (self.n_gates, self.n_subspace), Support.BINARY, name="S", owner="SubspaceRBM"
        )

    def base_model(self) -> "SubspaceRBM":
        """W = 0, c = 0, d = 0 and these visible biases: x independent Bernoulli(sigmoid(b)).

        Its ``log Z = sum_i softplus(b_i) + n_gates (n_subspace + 1) log 2``.
        """
        return SubspaceRBM(jnp.zeros_like(self.W), self.b, jnp.zeros_like(self.c), jnp.zeros_like(self.d))


def _decode_hidden(idx: Array, n_gates: int, n_subspace: int, dtype) -> tuple[Array, Array, Array]:
    """Mixed-radix index -> ``(h, S, log_multiplicity)``: ``(chunk,) -> (chunk, M), (chunk, M, K), (chunk,)``.

    Digit j (base ``1 + 2^K``, least significant first) is 0 for an off gate (S_j set to 0,
    standing for all 2^K patterns) or ``1 + s`` for an on gate with S_j the bits of s.
    """
    radix = 1 + 2**n_subspace
    powers = jnp.asarray([radix**j for j in range(n_gates)], dtype=jnp.int32)
    digits = (idx[..., None] // powers) % radix  # (chunk, M)
    on = digits > 0
    h = on.astype(dtype)
    S = enumeration.index_to_bits(jnp.maximum(digits - 1, 0), n_subspace, dtype) * h[..., None]
    log_mult = jnp.sum(~on, axis=-1).astype(dtype) * (n_subspace * math.log(2.0))
    return h, S, log_mult


@filter_jit
def _log_z(rbm: SubspaceRBM, route: str, chunk_size: int) -> Array:
    if route == "hidden":

        def log_term(idx):
            h, S, log_mult = _decode_hidden(idx, rbm.n_gates, rbm.n_subspace, rbm.W.dtype)
            hS = h[..., None] * S
            return (
                log_mult
                + h @ rbm.c
                + jnp.sum(rbm.d * hS, axis=(-2, -1))
                + jnp.sum(softplus(rbm.visible_logits(h, S)), axis=-1)
            )

        return enumeration.logsumexp_over_indices(log_term, rbm.n_hidden_terms, chunk_size)

    def log_term(idx):
        x = enumeration.index_to_bits(idx, rbm.n_visible, rbm.W.dtype)
        return -jax.vmap(rbm.unbatched_energy)(x)

    return enumeration.logsumexp_over_indices(log_term, 2**rbm.n_visible, chunk_size)
