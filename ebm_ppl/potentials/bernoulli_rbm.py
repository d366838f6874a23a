"""Bernoulli-Bernoulli restricted Boltzmann machine (chapter eq. 6.33-6.39)."""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.ops import softplus
from ebm_ppl import checks
from ebm_ppl.potentials._checks import as_param, check_finite_params, param_dtype, sizes
from ebm_ppl.potentials._checks import scale as check_scale
from ebm_ppl.potentials.base import Support, validate_input
from ebm_ppl.potentials.layers import Binary
from ebm_ppl.potentials.rbm import BinaryHiddenRBM
from ebm_ppl.potentials.registry import register_potential

__all__ = ["BernoulliRBM"]


@register_potential()
class BernoulliRBM(BinaryHiddenRBM):
    r"""Binary visible units x in {0,1}^D, binary hidden units h in {0,1}^M.

    Joint energy (eq. 6.33): ``E(x, h) = -x^T W h - b^T x - c^T h``.
    Free energy (eq. 6.37), h summed out: ``F(x) = -b^T x - sum_j softplus(c_j + (x^T W)_j)``.
    Conditionals (eq. 6.38-6.39): ``p(h_j=1|x) = sigmoid(c_j + (W^T x)_j)``,
    ``p(x_i=1|h) = sigmoid(b_i + (W h)_i)``. Two :class:`~ebm_ppl.potentials.layers.Binary`
    layers; the machinery shared by the RBMs (free energy, conditionals, exact log Z and samples,
    base model) is :class:`~ebm_ppl.potentials.rbm.RBMBase`'s.

    Attributes:
        W: weights, shape ``(n_visible, n_hidden)``.
        b: visible biases, shape ``(n_visible,)``.
        c: hidden biases, shape ``(n_hidden,)``.
    """

    name: ClassVar[str] = "bernoulli_rbm"
    support: ClassVar[Support] = Support.BINARY

    W: Array
    b: Array
    c: Array

    def __init__(self, W: ArrayLike, b: ArrayLike, c: ArrayLike):
        W = as_param(W, "W", ndim=2, owner="BernoulliRBM")
        n_visible, n_hidden = W.shape
        self.W = W
        self.b = as_param(b, "b", shape=(n_visible,), owner="BernoulliRBM")
        self.c = as_param(c, "c", shape=(n_hidden,), owner="BernoulliRBM")
        check_finite_params(self)

    @classmethod
    def init(
        cls, key: PRNGKeyArray, n_visible: int, n_hidden: int, *, scale: float = 0.01,
        data: ArrayLike | None = None, dtype=None
    ) -> "BernoulliRBM":
        """W ~ N(0, scale^2), zero hidden biases (Hinton's practical guide, Sec. 8).

        Args:
            data: optional binary training data ``(N, n_visible)``: the visible biases then start
                at the logit of its smoothed pixel marginals (the guide's Sec. 8.1; the
                :meth:`base_rate` model's), else at zero.
        """
        n_visible, n_hidden = sizes("BernoulliRBM.init", n_visible=n_visible, n_hidden=n_hidden)
        dtype = param_dtype(dtype, "BernoulliRBM.init", (n_visible + 1) * (n_hidden + 1))
        W = check_scale(scale, "BernoulliRBM.init") * jax.random.normal(key, (n_visible, n_hidden), dtype)
        b = jnp.zeros(n_visible, dtype) if data is None else _data_visible_bias(data, n_visible, "BernoulliRBM", dtype)
        return cls(W, b, jnp.zeros(n_hidden, dtype))

    @classmethod
    def base_rate(cls, data: ArrayLike, n_hidden: int, *, smoothing: float = 1.0) -> "BernoulliRBM":
        """The base-rate model: W = 0, c = 0, b = logit of the data's smoothed pixel marginals.

        Salakhutdinov & Murray (2008), Sec. 4.2: a tractable start for AIS whose
        ``log Z = sum_i softplus(b_i) + n_hidden log 2``. ``smoothing`` adds that many pseudo
        counts of each value so no marginal is exactly 0 or 1.

        Args:
            data: binary array of shape ``(N, n_visible)``.
        """
        n_hidden = checks.positive_int(n_hidden, "BernoulliRBM.base_rate: n_hidden")
        smoothing = checks.non_negative_float(smoothing, "BernoulliRBM.base_rate: smoothing")
        if np.ndim(data) != 2:
            raise ValueError(f"BernoulliRBM.base_rate: data must have shape (N, n_visible), got {np.shape(data)}")
        x = validate_input(data, (np.shape(data)[1],), Support.BINARY, name="data", owner="BernoulliRBM.base_rate")
        b = Binary(jnp.zeros(x.shape[1], x.dtype)).base(x, smoothing).bias
        return cls(jnp.zeros((x.shape[1], n_hidden), b.dtype), b, jnp.zeros(n_hidden, b.dtype))

    # -- scikit-learn ------------------------------------------------------------------------
    @classmethod
    def from_sklearn(cls, estimator: Any, *, dtype=None) -> "BernoulliRBM":
        """The RBM of a fitted ``sklearn.neural_network.BernoulliRBM``: ``W = components_.T``,
        ``b = intercept_visible_``, ``c = intercept_hidden_`` (the same free energy, so the same
        likelihood and conditionals)."""
        missing = [a for a in ("components_", "intercept_visible_", "intercept_hidden_") if not hasattr(estimator, a)]
        if missing:
            raise ValueError(f"BernoulliRBM.from_sklearn: expects a fitted sklearn.neural_network.BernoulliRBM; "
                             f"{type(estimator).__name__} has no {', '.join(missing)} (call .fit first)")
        dtype = jnp.result_type(float) if dtype is None else dtype
        W = np.asarray(estimator.components_).T
        return cls(W.astype(dtype), np.asarray(estimator.intercept_visible_).astype(dtype),
                   np.asarray(estimator.intercept_hidden_).astype(dtype))

    def to_sklearn(self, **params: Any):
        """A fitted ``sklearn.neural_network.BernoulliRBM`` with these parameters (float64), usable
        in scikit-learn pipelines (``transform``, ``score_samples``, ``gibbs``, ``partial_fit``);
        ``params`` are its constructor's (``batch_size``, ``learning_rate``, ``random_state``, ...)."""
        from sklearn.neural_network import BernoulliRBM as SklearnRBM

        estimator = SklearnRBM(n_components=self.n_hidden, **params)
        estimator.components_ = np.asarray(self.W, np.float64).T.copy(order="F")
        estimator.intercept_visible_ = np.asarray(self.b, np.float64)
        estimator.intercept_hidden_ = np.asarray(self.c, np.float64)
        estimator.h_samples_ = np.zeros((estimator.batch_size, self.n_hidden))
        estimator.n_features_in_ = self.n_visible
        estimator._n_features_out = self.n_hidden  # read by get_feature_names_out, as fit sets it
        return estimator

    # -- layers ------------------------------------------------------------------------------
    @property
    def visible(self) -> Binary:
        return Binary(self.b)

    @property
    def hidden(self) -> Binary:
        return Binary(self.c)

    def with_layers(self, visible: Binary, hidden: Binary, W: Array) -> "BernoulliRBM":
        return BernoulliRBM(W, visible.bias, hidden.bias)

    # -- conditionals (block Gibbs) ----------------------------------------------------------
    def visible_logits(self, h: Array) -> Array:
        """Logits of p(x=1|h): ``b + W h``; ``(*batch, M) -> (*batch, D)``. No validation."""
        return self.visible.logits(self.visible_field(h))

    def visible_probs(self, h: ArrayLike) -> Array:
        """p(x_i=1|h) (eq. 6.39); ``(*batch, M) -> (*batch, D)``."""
        return jax.nn.sigmoid(self.visible_logits(self._check_hidden(h)))

    # -- closed-form CD gradient -----------------------------------------------------------------
    def contrastive_gradient(self, x_data: Array, x_model: Array) -> tuple["BernoulliRBM", Array]:
        """The gradient of ``mean F(x_data) - mean F(x_model)`` in closed form, and that gap.

        With ``p(x) = sigmoid(c + xW)``: ``grad_W = -mean x^T p(x)``, ``grad_b = -mean x``,
        ``grad_c = -mean p(x)`` over the data minus the same over the samples (Hinton 2002's CD
        update); equal to autodiff of the free energy to rounding. Data and samples (rows weighted
        ``1/B_data`` and ``-1/B_model``) share two matmuls: ``xs @ [W | b]`` gives the hidden
        logits and ``x.b``, ``[xs | 1]^T @ [p | 1]`` gives the three gradients at once.

        Args:
            x_data: ``(B, D)`` data; x_model: ``(B', D)`` model samples (not differentiated).

        Returns:
            ``(grads, gap)``: gradients with this model's structure, and the scalar gap.
        """
        x_model = jax.lax.stop_gradient(x_model)
        n_data = x_data.shape[0]
        n_visible, n_hidden = self.W.shape
        xs = jnp.concatenate([x_data, x_model.astype(x_data.dtype)])
        weights = jnp.concatenate([jnp.full(n_data, 1.0 / n_data, xs.dtype),
                                   jnp.full(x_model.shape[0], -1.0 / x_model.shape[0], xs.dtype)])
        projections = xs @ jnp.concatenate([self.W, self.b[:, None]], axis=1)  # (N, M + 1): [x W | x.b]
        logits = self.c + projections[:, :n_hidden]
        p = jax.nn.sigmoid(logits)
        ones = jnp.ones((xs.shape[0], 1), xs.dtype)
        # weighted sums over the rows of x^T p, x, p: the data's means minus the samples' means
        moments = (jnp.concatenate([xs, ones], axis=1) * weights[:, None]).T @ jnp.concatenate([p, ones], axis=1)
        grads = eqx.tree_at(lambda m: (m.W, m.b, m.c), self,
                            (-moments[:n_visible, :n_hidden], -moments[:n_visible, n_hidden], -moments[n_visible, :n_hidden]))
        gap = weights @ (-projections[:, n_hidden] - jnp.sum(softplus(logits), axis=-1))  # weights @ F(xs)
        return grads, gap


def _data_visible_bias(data: ArrayLike, n_visible: int, owner: str, dtype) -> Array:
    """The base-rate visible biases of binary ``data (N, n_visible)`` (``init(data=...)``)."""
    shape = np.shape(data)
    if len(shape) != 2 or shape[1] != n_visible:
        raise ValueError(f"{owner}.init: data must have shape (N, {n_visible}), got {shape}")
    return BernoulliRBM.base_rate(data, 1).b.astype(dtype)
