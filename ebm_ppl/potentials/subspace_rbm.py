"""Subspace restricted Boltzmann machine (Tomczak & Gonczarek 2016; chapter eq. 6.44-6.47)."""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.ops import softplus
from ebm_ppl.potentials import _draws, enumeration
from ebm_ppl.potentials._checks import as_param, check_finite_params, param_dtype, sizes
from ebm_ppl.potentials._checks import scale as check_scale
from ebm_ppl.potentials.base import Support, validate_input
from ebm_ppl.potentials.bernoulli_rbm import _data_visible_bias
from ebm_ppl.potentials.layers import Binary, Layer
from ebm_ppl.potentials.rbm import RBMBase
from ebm_ppl.potentials.registry import register_potential

__all__ = ["SubspaceRBM", "decode_hidden"]


@register_potential()
class SubspaceRBM(RBMBase):
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
    pair ``(h, S)``: the hidden layer is :class:`SubspaceUnits`, the visible layer
    :class:`~ebm_ppl.potentials.layers.Binary`, and the shared RBM machinery
    (:class:`~ebm_ppl.potentials.rbm.RBMBase`) gives exact log Z by enumerating x (2^D states) or
    the latents, with x summed out analytically. A gate that is off leaves its S_j out of the
    energy, so each gate has ``1 + 2^K`` distinct states (off, weighted 2^K; or on with one of
    2^K patterns): ``(1 + 2^K)^M`` terms instead of ``2^(M (K + 1))``.

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
        owner = "SubspaceRBM.init"
        n_visible, n_gates, n_subspace = sizes(owner, n_visible=n_visible, n_gates=n_gates, n_subspace=n_subspace)
        dtype = param_dtype(dtype, owner, (n_visible + 1) * n_gates * (n_subspace + 1) + n_visible)
        W = check_scale(scale, owner) * jax.random.normal(key, (n_visible, n_gates, n_subspace), dtype)
        b = jnp.zeros(n_visible, dtype) if data is None else _data_visible_bias(data, n_visible, "SubspaceRBM", dtype)
        return cls(
            W,
            b,
            jnp.zeros(n_gates, dtype),
            jnp.zeros((n_gates, n_subspace), dtype),
        )

    # -- layers ------------------------------------------------------------------------------
    @property
    def visible(self) -> Binary:
        return Binary(self.b)

    @property
    def hidden(self) -> "SubspaceUnits":
        return SubspaceUnits(self.c, self.d)

    def with_layers(self, visible: Binary, hidden: "SubspaceUnits", W: Array) -> "SubspaceRBM":
        return SubspaceRBM(W, visible.bias, hidden.gate_bias, hidden.subspace_bias)

    def hidden_field(self, x: Array) -> Array:
        """``sum_i x_i W_ijk``, the input to the subspace units; ``(*batch, D) -> (*batch, M, K)``."""
        return jnp.einsum("...i,ijk->...jk", x, self.W)

    def visible_field(self, latent: tuple[Array, Array]) -> Array:
        """``sum_jk W_ijk h_j S_jk``; ``((*batch, M), (*batch, M, K)) -> (*batch, D)``."""
        return jnp.einsum("...jk,ijk->...i", self.hidden.features(latent), self.W)

    # -- shapes ------------------------------------------------------------------------------
    @property
    def n_gates(self) -> int:
        return self.W.shape[1]

    @property
    def n_subspace(self) -> int:
        return self.W.shape[2]

    @property
    def n_hidden_terms(self) -> int:
        """Effective number of (h, S) states: ``(1 + 2^K)^M`` (an off gate's S is free)."""
        return self.hidden.num_states

    # -- energies ----------------------------------------------------------------------------
    def energy_from_hidden_logits(self, x: Array, logits: Array) -> Array:
        """F(x) from the gates' ``logits = hidden_logits(x)`` (which a Gibbs sweep computes anyway):
        ``-b.x - sum_j (K log 2 + softplus(logits_j))``; ``(*batch, D), (*batch, M) -> (*batch,)``.
        No validation."""
        return self.visible.energy(x) - self.hidden.cgf_from_gate_logits(logits)

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
        return self.hidden_field(x) + self.d

    def hidden_logits(self, x: Array) -> Array:
        """Logits of p(h_j=1|x): ``c_j - K log 2 + sum_k softplus(a_jk)``; ``(*batch, D) -> (*batch, M)``.

        No validation.
        """
        return self.hidden.gate_logits(self.hidden_field(x))

    def subspace_logits(self, x: Array, h: Array) -> Array:
        """Logits of p(S_jk=1|x, h): ``h_j a_jk``; ``(*batch, D), (*batch, M) -> (*batch, M, K)``.

        No validation.
        """
        return h[..., None] * self.subspace_activations(x)

    def visible_logits(self, h: Array, S: Array) -> Array:
        """Logits of p(x_i=1|h, S): ``b_i + sum_jk W_ijk h_j S_jk``; ``-> (*batch, D)``. No validation."""
        return self.visible.logits(self.visible_field((h, S)))

    def hidden_probs(self, x: ArrayLike) -> Array:
        """p(h_j=1|x), S summed out; ``(*batch, D) -> (*batch, M)``."""
        return jax.nn.sigmoid(self.hidden_logits(self._check(x)))

    def subspace_probs(self, x: ArrayLike, h: ArrayLike) -> Array:
        """p(S_jk=1|x, h); ``x: (*batch, D)``, ``h: (*batch, M)`` -> ``(*batch, M, K)``."""
        return jax.nn.sigmoid(self.subspace_logits(self._check(x), self._check_gates(h)))

    def visible_probs(self, h: ArrayLike, S: ArrayLike) -> Array:
        """p(x_i=1|h, S); ``h: (*batch, M)``, ``S: (*batch, M, K)`` -> ``(*batch, D)``."""
        return jax.nn.sigmoid(self.visible_logits(self._check_gates(h), self._check_subspace(S)))

    def _check_gates(self, h: ArrayLike) -> Array:
        return validate_input(h, (self.n_gates,), Support.BINARY, name="h", owner="SubspaceRBM")

    def _check_subspace(self, S: ArrayLike) -> Array:
        return validate_input(
            S, (self.n_gates, self.n_subspace), Support.BINARY, name="S", owner="SubspaceRBM"
        )

    def _describe(self, route: str) -> str:
        return (f"SubspaceRBM with n_visible={self.n_visible}, n_gates={self.n_gates}, "
                f"n_subspace={self.n_subspace}, enumerating the {route} units")


class SubspaceUnits(Layer):
    """The hidden layer of a subspace RBM: M gates h_j, each with K subspace units S_jk.

    ``E(h, S) = -c.h - sum_jk h_j d_jk S_jk``, features ``h_j S_jk`` (shape ``(M, K)``); an off
    gate leaves its S_j free (2^K states), so with ``a = I + d``::

        cgf(I) = sum_j [K log 2 + softplus(c_j - K log 2 + sum_k softplus(a_jk))],

    and ``p(h_j = 1 | I) = sigmoid(c_j - K log 2 + sum_k softplus(a_jk))``, ``p(S_jk = 1 | h, I)
    = sigmoid(h_j a_jk)``. Enumerating it takes ``(1 + 2^K)^M`` states (:func:`decode_hidden`).

    Attributes:
        gate_bias: c, shape ``(M,)``.
        subspace_bias: d, shape ``(M, K)``.
    """

    support: ClassVar[Support] = Support.BINARY
    uniform_parameters: ClassVar[bool] = False  # (M,) and (M, K): SubspaceRBM checks them

    gate_bias: Array
    subspace_bias: Array

    @property
    def size(self) -> int:
        return self.gate_bias.shape[0]

    @property
    def n_subspace(self) -> int:
        return self.subspace_bias.shape[1]

    def energy(self, latent: tuple[Array, Array], axis: int = -1) -> Array:
        h, S = latent
        return -(h @ self.gate_bias) - jnp.sum(self.subspace_bias * (h[..., None] * S), axis=(-2, -1))

    def features(self, latent: tuple[Array, Array], axis: int = -1) -> Array:
        h, S = latent
        return h[..., None] * S

    def gate_logits(self, field: Array) -> Array:
        """Logits of p(h_j = 1 | field), S summed out; ``(*batch, M, K) -> (*batch, M)``."""
        return self._gate_logits(field + self.subspace_bias)

    def _gate_logits(self, a: Array) -> Array:
        return self.gate_bias - self.n_subspace * math.log(2.0) + jnp.sum(softplus(a), axis=-1)

    def cgf_from_gate_logits(self, logits: Array) -> Array:
        """:meth:`cgf` given the gate logits; ``(*batch, M) -> (*batch,)``."""
        return jnp.sum(self.n_subspace * math.log(2.0) + softplus(logits), axis=-1)

    def cgf(self, field: Array, axis: int = -1) -> Array:
        return self.cgf_from_gate_logits(self.gate_logits(field))

    def sample(self, key: PRNGKeyArray, field: Array, dtype) -> tuple[Array, Array]:
        key_h, key_s = jax.random.split(key)
        a = field + self.subspace_bias
        h = _draws.bernoulli_logits(key_h, self._gate_logits(a), dtype)
        S = _draws.bernoulli_logits(key_s, h[..., None] * a, dtype)
        return h, S

    def mean(self, field: Array) -> tuple[Array, Array]:
        """``(E[h], E[S])``: an off gate's S_jk is 1/2 on average."""
        p_h = jax.nn.sigmoid(self.gate_logits(field))[..., None]
        p_s = jax.nn.sigmoid(field + self.subspace_bias)
        return p_h[..., 0], p_h * p_s + (1 - p_h) * 0.5

    def base(self, data: Array | None = None) -> "SubspaceUnits":
        """Zero biases (a hidden layer is never fitted to data)."""
        return self.without_bias()

    @property
    def num_states(self) -> int:
        return (1 + 2**self.n_subspace) ** self.size

    def state(self, index: Array, dtype) -> tuple[tuple[Array, Array], Array]:
        h, S, log_mult = decode_hidden(index, self.size, self.n_subspace, dtype)
        return (h, S), log_mult


def decode_hidden(idx: Array, n_gates: int, n_subspace: int, dtype) -> tuple[Array, Array, Array]:
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


