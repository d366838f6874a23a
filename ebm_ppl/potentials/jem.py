"""Joint energy-based model (JEM): a classifier read as an energy (chapter eq. 6.5-6.16).

Grathwohl et al. (2019), "Your classifier is secretly an energy based model and you should treat
it like one". Any network ``f: x -> R^K`` of logits defines

* the joint energy ``E(x, y) = -f(x)[y]``                 (eq. 6.5-6.8),
* the marginal energy ``E(x) = -logsumexp_y f(x)[y]``     (eq. 6.9-6.12),
* the classifier ``p(y|x) = softmax(f(x))[y]``, where the normalizer of x cancels (eq. 6.13-6.16).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.potentials._checks import param_dtype, sizes
from ebm_ppl.potentials.base import Potential, Support, as_support
from ebm_ppl.potentials.registry import register_potential

__all__ = ["JEM", "ACTIVATIONS"]


def _expm1_nonpositive(x: Array) -> Array:
    """expm1(x) for x <= 0 (NaN passes through); float32 within about 1 ulp, other dtypes jnp.expm1.

    Cody-Waite reduction x = n ln2 + r with |r| <= ln2 / 2, expm1(r) by its degree-7 Taylor
    polynomial (truncation below 1e-8 relative), then expm1(x) = 2^n expm1(r) + (2^n - 1) with
    2^n built from its exponent bits: a few fused multiply-adds, where XLA's CPU ``expm1`` is a
    library call (``docs/performance.md``).
    Inputs below -87 give -1 (as expm1 does in float32); subnormal inputs give 0 (XLA CPU flushes
    subnormals).
    """
    if x.dtype != jnp.float32:
        return jnp.expm1(x)
    x = jnp.maximum(x, -87.0)  # 2^n stays a normal float32 (n >= -126)
    n = jnp.round(x * 1.4426950408889634)  # x / ln 2
    r = x - n * 0.693145751953125 - n * 1.428606765330187e-06  # ln 2 = hi + lo, n * hi exact
    p = r * (1 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r / 5040))))))
    two_n = jax.lax.bitcast_convert_type((n.astype(jnp.int32) + 127) << 23, jnp.float32)
    return two_n * p + (two_n - 1)


@jax.custom_jvp
def elu(x: Array) -> Array:
    """ELU with alpha = 1 (Clevert et al. 2016): ``x`` for x > 0, ``expm1(x)`` otherwise; elementwise.

    ``jax.nn.elu``'s values (to about 1 ulp in float32), computed with fewer transcendental
    calls: expm1 is a polynomial (:func:`_expm1_nonpositive`), and the derivative (1, or
    ``elu(x) + 1`` = exp(x) for x <= 0) is read off the output, where ``jax.nn.elu``'s autodiff
    evaluates a second exponential.
    """
    return jnp.where(x > 0, x, _expm1_nonpositive(jnp.minimum(x, 0)))


@elu.defjvp
def _elu_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    y = elu(x)
    return y, dx * jnp.where(y > 0, 1.0, y + 1)  # y > 0 exactly where x > 0


#: Activations a :meth:`JEM.init` network can use (by name, so saved models rebuild).
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "elu": elu,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "silu": jax.nn.silu,
    "gelu": jax.nn.gelu,
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
}


@register_potential()
class JEM(Potential):
    """The marginal energy ``E(x) = -logsumexp_y f(x)[y]`` of a classifier ``f`` (eq. 6.9-6.12).

    The classifier is any Equinox module mapping one example of shape ``event_shape`` to ``K``
    logits. Build the chapter's 64-512-512-512-10 ELU network with :meth:`JEM.init`, or wrap your
    own with ``JEM(net, event_shape=(D,))``. The marginal over R^D need not be normalizable (a
    network's logits can grow without bound); on a box (``support=ep.box(-1, 1)``, the range of
    the chapter's data) it is a proper density, so MALA/NUTS stay in the box and ``ep.ais`` /
    ``ep.reverse_ais`` estimate its log Z and with it the test log-likelihood of the data.

    Attributes:
        net: the classifier ``f``.
        event_shape: shape of one x.
        num_classes: K.
        support: ``Support.REAL`` or a box (:func:`ebm_ppl.box`).
    """

    name: ClassVar[str] = "jem"

    net: eqx.Module
    _event_shape: tuple[int, ...] = eqx.field(static=True)
    num_classes: int = eqx.field(static=True)
    mlp_spec: tuple[tuple[str, Any], ...] | None = eqx.field(static=True, default=None)
    support: Support = eqx.field(static=True, default=Support.REAL)

    def __init__(
        self,
        net: eqx.Module,
        event_shape: tuple[int, ...],
        num_classes: int | None = None,
        *,
        mlp_spec: dict[str, Any] | None = None,
        support: Support | str = "real",
    ):
        support = as_support(support)
        if not support.continuous:
            raise ValueError(f"JEM: the support must be continuous ('real' or ep.box(low, high)), got {support}")
        event_shape = sizes("JEM", **{f"event_shape[{i}]": s for i, s in enumerate(event_shape)})
        try:
            out = jax.eval_shape(net, jax.ShapeDtypeStruct(event_shape, jnp.result_type(float)))
        except Exception as exc:
            raise ValueError(f"JEM: the network does not accept one example of shape {event_shape}: {exc}") from None
        if out.ndim != 1:
            raise ValueError(f"JEM: the network must return a vector of K logits, got shape {out.shape}")
        if num_classes is not None and out.shape[0] != num_classes:
            raise ValueError(f"JEM: num_classes={num_classes} but the network returns {out.shape[0]} logits")
        self.net = net
        self._event_shape = event_shape
        self.num_classes = int(out.shape[0])
        self.mlp_spec = None if mlp_spec is None else tuple(sorted(mlp_spec.items()))
        self.support = support

    @classmethod
    def init(
        cls,
        key: PRNGKeyArray,
        in_features: int = 64,
        num_classes: int = 10,
        *,
        width: int = 512,
        depth: int = 3,
        activation: str = "elu",
        dtype=None,
        support: Support | str = "real",
    ) -> "JEM":
        """An MLP classifier ``in_features -> width x depth -> num_classes`` (the chapter's default
        is 64-512-512-512-10 with ELU) on ``support``: ``"real"``, or a box such as
        ``ep.box(-1, 1)`` (the digits' range), on which the marginal is a proper density."""
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"JEM.init: unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        in_features, num_classes, width = sizes("JEM.init", in_features=in_features, num_classes=num_classes,
                                                width=width)
        depth = checks.non_negative_int(depth, "JEM.init: depth")
        num_params = (in_features + 1) * width + depth * (width + 1) * width + (width + 1) * num_classes
        param_dtype(dtype, "JEM.init", num_params)
        spec = dict(in_features=in_features, num_classes=num_classes, width=width, depth=depth,
                    activation=activation)
        net = _mlp(spec, key, dtype)
        return cls(net, (int(in_features),), int(num_classes), mlp_spec=spec, support=support)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self._event_shape

    def with_support(self, support: Support | str) -> "JEM":
        """The same classifier on another support (e.g. ``ep.box(-1, 1)`` after training on R^D,
        where the training data's noise may leave the box)."""
        spec = None if self.mlp_spec is None else dict(self.mlp_spec)
        return JEM(self.net, self._event_shape, self.num_classes, mlp_spec=spec, support=support)

    # -- the classifier ----------------------------------------------------------------------
    def logits(self, x: ArrayLike) -> Array:
        """f(x); ``(*batch, *event_shape) -> (*batch, K)``."""
        return self._batched(self.net, self._check(x))

    def log_softmax(self, x: ArrayLike) -> Array:
        """log p(y|x) computed stably; ``(*batch, *event_shape) -> (*batch, K)``."""
        return jax.nn.log_softmax(self.logits(x), axis=-1)

    def classify(self, x: ArrayLike) -> Array:
        """argmax_y f(x)[y]; ``(*batch, *event_shape) -> (*batch,)`` int."""
        return jnp.argmax(self.logits(x), axis=-1)

    # -- energies ----------------------------------------------------------------------------
    def unbatched_energy(self, x: Array) -> Array:
        return -jax.nn.logsumexp(self.net(x))

    def energy_joint(self, x: ArrayLike, y: ArrayLike) -> Array:
        """E(x, y) = -f(x)[y] (eq. 6.5); ``x: (*batch, *event)``, ``y: (*batch,)`` int -> ``(*batch,)``."""
        logits = self.logits(x)
        y = np.asarray(y) if not isinstance(y, jax.Array) else y
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise ValueError(f"JEM: labels y must be integers, got dtype {y.dtype}")
        if isinstance(y, np.ndarray) and y.size and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(f"JEM: labels must lie in [0, {self.num_classes}), got range [{y.min()}, {y.max()}]")
        return -jnp.take_along_axis(logits, jnp.asarray(y)[..., None], axis=-1)[..., 0]

    # -- saving ------------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        config = {"event_shape": list(self._event_shape), "num_classes": self.num_classes,
                  "mlp_spec": None if self.mlp_spec is None else dict(self.mlp_spec)}
        if self.support != Support.REAL:  # files of JEMs on R^D stay as before
            config["support"] = self.support.to_json()
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> "JEM":
        spec = config.get("mlp_spec")
        if spec is None:
            raise NotImplementedError("this JEM wraps a custom network; load it with like=<a JEM of the same structure>")
        dtype = next(iter(arrays.values())).dtype if arrays else None
        skeleton = cls(_mlp(spec, jax.random.key(0), dtype), tuple(config["event_shape"]),
                       config["num_classes"], mlp_spec=spec, support=as_support(config.get("support", "real")))
        params, static = eqx.partition(skeleton, eqx.is_array)
        leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
        keys = [jax.tree_util.keystr(path) for path, _ in leaves]
        if sorted(keys) != sorted(arrays):
            raise ValueError(f"JEM: stored arrays {sorted(arrays)} do not match the network's {sorted(keys)}")
        new = [jnp.asarray(arrays[k]) for k in keys]
        return eqx.combine(jax.tree_util.tree_unflatten(treedef, new), static)


def _mlp(spec: dict[str, Any], key: PRNGKeyArray, dtype) -> eqx.nn.MLP:
    return eqx.nn.MLP(
        spec["in_features"],
        spec["num_classes"],
        spec["width"],
        spec["depth"],
        activation=ACTIVATIONS[spec["activation"]],
        dtype=dtype,
        key=key,
    )
