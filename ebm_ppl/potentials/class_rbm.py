"""The classification RBM (Larochelle & Bengio 2008): binary pixels and a one-hot label as the
visible layer, binary hidden units; JEM's direct ancestor, with an exact ``p(y | x)``."""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.compiler import filter_jit
from ebm_ppl.ops import softplus
from ebm_ppl.potentials import _draws, enumeration
from ebm_ppl.potentials._checks import as_param, check_finite_params, param_dtype, sizes
from ebm_ppl.potentials._checks import scale as check_scale
from ebm_ppl.potentials.base import Potential, Support, is_concrete
from ebm_ppl.potentials.bernoulli_rbm import _data_visible_bias
from ebm_ppl.potentials.registry import register_potential

__all__ = ["ClassRBM"]


@register_potential()
class ClassRBM(Potential):
    r"""Binary pixels x in {0,1}^D and a label y in {0, ..., K-1} (one-hot ``e_y``) as the visible
    layer, binary hidden units h in {0,1}^M:

    ``E(x, y, h) = -b.x - c.h - d_y - x^T W h - h^T U_y``   (``U_y`` the row of label y).

    Summing h out gives the free energy of a labelled image and the label's exact conditional,

    ``F(x, y) = -b.x - d_y - sum_j softplus(c_j + (x^T W)_j + U_yj)``,
    ``p(y | x) = softmax_y(-F(x, y))``   (:meth:`predict_proba`; K terms, no sampling),

    and, as a potential over the image alone (the label summed out too), ``E(x) = -log sum_y
    exp(-F(x, y))``. ``log Z`` enumerates the hidden layer:
    ``logsumexp_h [c.h + sum_i softplus(b_i + (W h)_i) + logsumexp_y (d_y + (U h)_y)]``.
    Block Gibbs alternates ``(y, h) | x`` (y exactly from p(y | x), then h) and ``x | h``.

    Attributes:
        W: pixel-hidden weights, shape ``(n_visible, n_hidden)``.
        U: label-hidden weights, shape ``(n_classes, n_hidden)``.
        b: pixel biases ``(n_visible,)``; c: hidden biases ``(n_hidden,)``; d: label biases ``(n_classes,)``.
    """

    name: ClassVar[str] = "class_rbm"
    support: ClassVar[Support] = Support.BINARY

    W: Array
    U: Array
    b: Array
    c: Array
    d: Array

    def __init__(self, W: ArrayLike, U: ArrayLike, b: ArrayLike, c: ArrayLike, d: ArrayLike):
        W = as_param(W, "W", ndim=2, owner="ClassRBM")
        n_visible, n_hidden = W.shape
        U = as_param(U, "U", ndim=2, owner="ClassRBM")
        if U.shape[1] != n_hidden or U.shape[0] < 2:
            raise ValueError(f"ClassRBM: U must have shape (n_classes >= 2, {n_hidden}), got {U.shape}")
        self.W, self.U = W, U
        self.b = as_param(b, "b", shape=(n_visible,), owner="ClassRBM")
        self.c = as_param(c, "c", shape=(n_hidden,), owner="ClassRBM")
        self.d = as_param(d, "d", shape=(U.shape[0],), owner="ClassRBM")
        check_finite_params(self)

    @classmethod
    def init(cls, key: PRNGKeyArray, n_visible: int, n_hidden: int, n_classes: int, *, scale: float = 0.01,
             data: ArrayLike | None = None, dtype=None) -> "ClassRBM":
        """W, U ~ N(0, scale^2), zero hidden and label biases; pixel biases from the smoothed
        marginals of binary ``data`` ``(N, n_visible)`` when given, else zero."""
        n_visible, n_hidden, n_classes = sizes("ClassRBM.init", n_visible=n_visible, n_hidden=n_hidden,
                                               n_classes=n_classes)
        if n_classes < 2:
            raise ValueError(f"ClassRBM.init: n_classes must be at least 2, got {n_classes}")
        dtype = param_dtype(dtype, "ClassRBM.init", (n_visible + n_classes + 1) * (n_hidden + 1))
        scale = check_scale(scale, "ClassRBM.init")
        key_w, key_u = jax.random.split(key)
        b = jnp.zeros(n_visible, dtype) if data is None else _data_visible_bias(data, n_visible, "ClassRBM", dtype)
        return cls(scale * jax.random.normal(key_w, (n_visible, n_hidden), dtype),
                   scale * jax.random.normal(key_u, (n_classes, n_hidden), dtype), b,
                   jnp.zeros(n_hidden, dtype), jnp.zeros(n_classes, dtype))

    # -- shapes --------------------------------------------------------------------------------
    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    @property
    def n_classes(self) -> int:
        return self.U.shape[0]

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.n_visible,)

    # -- energies and the label ------------------------------------------------------------------
    def label_logits(self, x: Array) -> Array:
        """``-F(x, y) - b.x`` for every label: ``d_y + sum_j softplus(c_j + (x W)_j + U_yj)``;
        ``(*batch, D) -> (*batch, K)``. No validation."""
        pre = (x @ self.W + self.c)[..., None, :] + self.U
        return self.d + jnp.sum(softplus(pre), axis=-1)

    def unbatched_energy(self, x: Array) -> Array:
        return -(x @ self.b) - jax.nn.logsumexp(self.label_logits(x), axis=-1)

    def free_energy_joint(self, x: Array, y: Array) -> Array:
        """F(x, y) for integer labels ``y`` ``(*batch,)`` and images ``(*batch, D)``. No validation."""
        logits = self.label_logits(x)
        return -(x @ self.b) - jnp.take_along_axis(logits, y[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def energy_joint(self, x: ArrayLike, y: ArrayLike) -> Array:
        """F(x, y), h summed out; ``(*batch, D), (*batch,) -> (*batch,)``."""
        x = self._check(x)
        return self.free_energy_joint(x, self.check_labels(y, x.shape[:-1]))

    def predict_log_proba(self, x: ArrayLike) -> Array:
        """log p(y | x), exact; ``(*batch, D) -> (*batch, K)``."""
        return jax.nn.log_softmax(self.label_logits(self._check(x)), axis=-1)

    def predict_proba(self, x: ArrayLike) -> Array:
        """p(y | x), exact; ``(*batch, D) -> (*batch, K)``."""
        return jnp.exp(self.predict_log_proba(x))

    def predict(self, x: ArrayLike) -> Array:
        """The most probable label; ``(*batch, D) -> (*batch,)`` int32."""
        return jnp.argmax(self.label_logits(self._check(x)), axis=-1).astype(jnp.int32)

    def check_labels(self, y: ArrayLike, batch: tuple[int, ...], *, owner: str = "ClassRBM",
                     name: str = "labels") -> Array:
        """``y`` validated as labels of examples of batch shape ``batch``: numbers 0 .. K-1 (integers,
        or floats holding them), one per example; int32. Values are checked when concrete."""
        y = jnp.asarray(y)
        if y.shape != batch or not (jnp.issubdtype(y.dtype, jnp.integer) or jnp.issubdtype(y.dtype, jnp.floating)):
            raise ValueError(f"{owner}: {name} must be numbers of shape {batch}, one label number per example "
                             f"(not one-hot rows: take y.argmax(-1)), got {y.dtype} {y.shape}")
        if is_concrete(y):  # checked in NumPy: jnp would trace inside a jit that closes over y
            values = np.asarray(y)
            bad = (values < 0) | (values >= self.n_classes) | (values != np.round(values))
            if np.any(bad):
                first = values.reshape(-1)[np.argmax(bad.reshape(-1))].item()
                raise ValueError(f"{owner}: {name} must be integers 0 .. {self.n_classes - 1} (the model's "
                                 f"{self.n_classes} classes), got {first!r}")
        return y.astype(jnp.int32)

    # -- block conditionals ----------------------------------------------------------------------
    def hidden_logits_given(self, x: Array, y: Array) -> Array:
        """Logits of p(h = 1 | x, y): ``c + x W + U_y``; ``(*batch, M)``."""
        return x @ self.W + self.c + self.U[y.astype(jnp.int32)]

    def sample_hidden(self, key: PRNGKeyArray, x: Array) -> tuple[Array, Array]:
        """``(h, y) ~ p(h, y | x)``: the label from p(y | x) exactly, then h given both; h in x's
        dtype, y as numbers in x's dtype. No validation (jit inner)."""
        key_y, key_h = jax.random.split(key)
        y = jax.random.categorical(key_y, self.label_logits(x), axis=-1)
        h = _draws.bernoulli_logits(key_h, self.hidden_logits_given(x, y), x.dtype)
        return h, y.astype(x.dtype)

    def sample_visible(self, key: PRNGKeyArray, latent: tuple[Array, Array]) -> Array:
        """x ~ p(x | h) (the label does not enter); ``-> (*batch, D)``. No validation."""
        h = latent[0]
        return _draws.bernoulli_logits(key, h @ self.W.T + self.b, h.dtype)

    def conditional_visible_mean(self, latent: tuple[Array, Array]) -> Array:
        """E[x | h]; ``-> (*batch, D)``."""
        return jax.nn.sigmoid(latent[0] @ self.W.T + self.b)

    def sample_label(self, key: PRNGKeyArray, h: Array) -> Array:
        """y ~ p(y | h) = softmax(d + U h); ``(*batch, M) -> (*batch,)`` int32."""
        return jax.random.categorical(key, self.d + h @ self.U.T, axis=-1).astype(jnp.int32)

    def joint_sweep(self, key: PRNGKeyArray, x: Array, y: Array) -> tuple[Array, Array]:
        """One Gibbs sweep of labelled chains: h | x, y, then x | h and y | h (independent given
        h); ``(N, D), (N,) -> (N, D), (N,)``."""
        key_h, key_x, key_y = jax.random.split(key, 3)
        h = _draws.bernoulli_logits(key_h, self.hidden_logits_given(x, y), x.dtype)
        return self.sample_visible(key_x, (h, y)), self.sample_label(key_y, h)

    # -- exact log Z, exact samples, the AIS base --------------------------------------------------
    def _hidden_log_weight(self, h: Array) -> Array:
        """log of the unnormalized marginal of h: ``c.h + sum softplus(b + W h) + logsumexp(d + U h)``."""
        return h @ self.c + jnp.sum(softplus(h @ self.W.T + self.b), -1) + jax.nn.logsumexp(self.d + h @ self.U.T, -1)

    def log_partition(self, *, route: str | None = None, max_terms: int | None = None,
                      chunk_size: int = 2**14) -> Array:
        """Exact log Z by enumerating the 2^M hidden states (pixels and label summed in closed
        form), in chunks of ``chunk_size``; past ``max_terms`` (default 2^26) a ValueError points
        to :func:`ebm_ppl.ais`."""
        if route not in (None, "hidden"):
            raise ValueError(f"ClassRBM: route must be 'hidden' or None (the pixels cannot be enumerated), got "
                             f"{route!r}")
        enumeration.check_enumerable(2**self.n_hidden, max_terms, f"ClassRBM with n_hidden={self.n_hidden}")
        return _log_z(self, enumeration.check_chunk_size(chunk_size))

    def exact_samples(self, key: PRNGKeyArray, num: int) -> Array:
        """``num`` exact images ``(num, D)``: h from its marginal by enumeration (at most 2^22
        states), then x given h."""
        num = enumeration.check_num(num, "ClassRBM.exact_samples", self.n_visible)
        enumeration.check_enumerable(2**self.n_hidden, enumeration.MAX_EXACT_STATES,
                                     f"exact samples of a ClassRBM with n_hidden={self.n_hidden}", samples=True)
        return _exact_samples(self, key, num)

    def tempered(self, beta: Array) -> "ClassRBM":
        """The model at inverse temperature ``beta``: joint energy ``beta E(x, y, h)`` (every
        parameter times beta)."""
        return jax.tree.map(lambda a: beta * a, self)

    def base_model(self, data: ArrayLike | None = None) -> "ClassRBM":
        """The coupling-free model: W = U = 0, c = 0, the label biases kept, the pixel biases kept
        or fitted to binary ``data`` ``(N, D)``."""
        b = self.b if data is None else _data_visible_bias(data, self.n_visible, "ClassRBM.base_model", self.b.dtype)
        return ClassRBM(jnp.zeros_like(self.W), jnp.zeros_like(self.U), b, jnp.zeros_like(self.c), self.d)

    def factorized_log_partition(self) -> Array:
        """log Z of a model with W = U = 0: ``sum softplus(b) + sum softplus(c) + logsumexp(d)``."""
        return jnp.sum(softplus(self.b)) + jnp.sum(softplus(self.c)) + jax.nn.logsumexp(self.d)


@filter_jit
def _log_z(model: ClassRBM, chunk_size: int) -> Array:
    def log_term(index):
        return model._hidden_log_weight(enumeration.index_to_bits(index, model.n_hidden, model.W.dtype))

    return enumeration.logsumexp_over_indices(log_term, 2**model.n_hidden, chunk_size)


@filter_jit
def _exact_samples(model: ClassRBM, key: PRNGKeyArray, num: int) -> Array:
    key_h, key_x = jax.random.split(key)
    weights = enumeration.log_weights(
        lambda index: model._hidden_log_weight(enumeration.index_to_bits(index, model.n_hidden, model.W.dtype)),
        2**model.n_hidden)
    h = enumeration.index_to_bits(enumeration.sample_indices(key_h, weights, num), model.n_hidden, model.W.dtype)
    return model.sample_visible(key_x, (h, None))

