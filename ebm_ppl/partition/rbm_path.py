"""The annealing path of an RBM over layers, fused: two matmuls per temperature instead of four.

With a base of zero couplings (hidden biases c0, visible layer v0, the target's features), the
intermediate model at beta has the hidden input ``beta * a(x)``, ``a(x) = features_v(x) W``,
hidden layer ``h_beta = (1 - beta) h0 + beta h`` and visible layer ``v_beta`` likewise, so

    log f_beta(x) = -E_{v_beta}(x) + cgf_{h_beta}(beta a(x)),

and ``p_beta(h | x)`` takes the same input. One step computes ``a(x)`` once (one matmul) for both
log f terms of the weight and for ``h ~ p_beta(h | x)``, then ``x ~ p_beta(x | h)`` from
``beta W features_h(h)`` (the second matmul). :class:`~ebm_ppl.partition.paths.ParameterPath`
computes ``theta_beta`` and runs four; the two agree to float rounding (tested). The step's random
numbers come from :meth:`RBMPath.draws`, so AIS can draw them for many temperatures in one call.

Layout: with fewer hidden units than chains, the chains are kept transposed, ``(D, N)``, and the
hidden layer as ``(M, N)``, so elementwise work runs along the chain axis with one parameter per
row (layer methods take ``axis=0``); with wide hidden layers, and for layers whose features are
not vectors (Potts sites x states, multiplied by W flattened to a matrix), the ``(N, D)`` layout
is kept.
``docs/performance.md`` has the measurements behind both choices.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl.partition.paths import ParameterPath
from ebm_ppl.potentials.base import Potential
from ebm_ppl.potentials.capabilities import has_layers

__all__ = ["RBMPath", "fused_path"]


class RBMPath(ParameterPath):
    """:class:`~ebm_ppl.partition.paths.ParameterPath` of an RBM over layers, fused (module docstring)."""

    weights_t: Array | None = None  # W^T, set by prepare() for the transposed layout
    transposed: bool = eqx.field(static=True, default=False)

    def prepare(self, num_chains: int) -> "RBMPath":
        """The layout for ``num_chains`` chains, and ``W^T`` stored once (a dot with the transposed
        operand folded in runs on XLA's slow generic path, and a copy per step costs as much)."""
        vectors = self.target.visible.feature_ndim == 1 and self.target.hidden.feature_ndim == 1
        transposed = vectors and self.target.n_hidden < num_chains
        weights_t = jax.lax.optimization_barrier(self.target.W.T) if transposed else None
        return RBMPath(self.base, self.target, self.base_log_z, weights_t, transposed)

    def to_state(self, xs: Array) -> Array:
        """``(D, N)``, the chains transposed, in the transposed layout; else ``xs``."""
        return xs.T if self.transposed else xs

    def from_state(self, state: Array) -> Array:
        return state.T if self.transposed else state

    @property
    def chain_axis(self) -> int:
        """1 in the transposed layout ``(D, N)``, else 0."""
        return 1 if self.transposed else 0

    def draws(self, key: PRNGKeyArray, state: Array):
        """The random numbers of one step for chains in :meth:`to_state`'s layout: one array
        ``(N, M + D)`` (transposed: ``(M + D, N)``; the first M units' for h) when both layers draw
        the same kind of noise, else the pair ``(hidden noise, visible noise)``."""
        hidden, visible = self.target.hidden, self.target.visible
        m, d, t = hidden.size, visible.size, self.transposed
        n = state.shape[1] if t else state.shape[0]

        def shape(k):
            return (k, n) if t else (n, k)

        if hidden.noise_kind == visible.noise_kind:
            return hidden.noise(key, shape(m + d), state.dtype)
        key_h, key_x = jax.random.split(key)
        return hidden.noise(key_h, shape(m), state.dtype), visible.noise(key_x, shape(d), state.dtype)

    def anneal_step(self, draws, state: Array, beta_from: Array, beta_to: Array, aux):
        """:meth:`~ebm_ppl.partition.paths.AnnealingPath.anneal_step` on chains in :meth:`to_state`'s layout."""
        target, base, t = self.target, self.base, self.transposed
        axis = 0 if t else -1  # the axis of units in every array
        if isinstance(draws, tuple):
            noise_h, noise_x = draws
        else:
            m = target.n_hidden
            noise_h, noise_x = (draws[:m], draws[m:]) if t else (draws[:, :m], draws[:, m:])
        v_from = base.visible.interpolate(target.visible, beta_from)
        v_to = base.visible.interpolate(target.visible, beta_to)
        h_from = base.hidden.interpolate(target.hidden, beta_from)
        h_to = base.hidden.interpolate(target.hidden, beta_to)
        features = target.visible.features(state, axis)
        if t:  # vector features only (prepare)
            field = self.weights_t @ features  # a(x): shared by the weight and p(h | x)
        else:  # features of any shape (Potts: sites x states) against W flattened to a matrix
            n, w = state.shape[0], self.flat_weights
            field = (features.reshape(n, -1) @ w).reshape(n, *target.W.shape[target.visible.feature_ndim:])
        delta = (v_from.energy_drop(v_to, state, axis)
                 + h_to.cgf(beta_to * field, axis) - h_from.cgf(beta_from * field, axis))
        h = target.hidden.features(h_to.sample_from_noise(noise_h, beta_to * field, axis), axis)
        if t:
            visible_field = beta_to * (target.W @ h)
        else:
            visible_field = beta_to * (h.reshape(n, -1) @ w.T).reshape(
                n, *target.W.shape[:target.visible.feature_ndim])
        return v_to.sample_from_noise(noise_x, visible_field, axis), aux, delta

    @property
    def flat_weights(self) -> Array:
        """W as a ``(visible features, hidden features)`` matrix (a reshape, no copy)."""
        w = self.target.W
        return w.reshape(math.prod(w.shape[:self.target.visible.feature_ndim]), -1)


def fused_path(base: Potential, target: Potential, base_log_z: Array) -> RBMPath | None:
    """The fused path from ``base`` to ``target`` where it applies (an RBM over layers that split
    their draws, with matrix couplings, and a base whose visible features equal the target's),
    else None."""
    if not (has_layers(target) and has_layers(base)):
        return None
    if target.hidden.noise_kind is None or target.visible.noise_kind is None:
        return None
    if not base.visible.same_features(target.visible):
        return None
    return RBMPath(base, target, base_log_z)
