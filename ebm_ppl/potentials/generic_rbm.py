"""``ep.RBM``: a restricted Boltzmann machine of any visible and any hidden layer.

    rbm = ep.RBM.init(key, ep.layers.Potts(jnp.zeros((64, 4))), ep.layers.DReLU.standard(16))
    ep.log_partition(rbm)     # enumerates the smaller discrete layer, integrates the other
    ep.sample(key, rbm)       # block Gibbs
    ep.ais(key, rbm)          # the parameter path from its coupling-free base

The layers (:mod:`ebm_ppl.potentials.layers`) are the model's fields, ``W`` couples their
features (shape ``visible features + hidden features``: ``(D, M)``, ``(D, q, M)`` for a Potts
visible layer), and everything else comes from :class:`~ebm_ppl.potentials.rbm.RBMBase`: the
free energy, block conditionals, exact log Z and exact samples by enumerating the smaller
discrete layer, the base model, AIS. The Bernoulli, Gaussian-Bernoulli and subspace RBMs are
named layer pairs with their own fields and files; this class serves every other pair.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.potentials._checks import as_param, check_finite_params, check_positive
from ebm_ppl.potentials._checks import scale as check_scale
from ebm_ppl.potentials.layers import LAYERS, Layer
from ebm_ppl.potentials.rbm import RBMBase
from ebm_ppl.potentials.registry import register_potential

__all__ = ["RBM"]


def _kind(layer: Layer) -> str:
    for name, cls in LAYERS.items():
        if type(layer) is cls:
            return name
    raise ValueError(f"RBM: unknown layer type {type(layer).__name__}; use one of {', '.join(LAYERS)}")


@register_potential()
class RBM(RBMBase):
    """An RBM over any two layers: ``E(x, h) = E_v(x) + E_h(h) - features_v(x) W features_h(h)``.

    Attributes:
        visible: the visible layer (its support is the model's).
        hidden: the hidden layer.
        W: the couplings, shape ``visible features + hidden features``.
    """

    name: ClassVar[str] = "rbm"

    visible: Layer
    hidden: Layer
    W: Array

    def __init__(self, visible: Layer, hidden: Layer, W: ArrayLike):
        _check_layers(visible, hidden, "RBM")
        visible, hidden = _as_float_layer(visible, "visible"), _as_float_layer(hidden, "hidden")
        shape = _feature_shape(visible) + _feature_shape(hidden)
        self.visible, self.hidden = visible, hidden
        self.W = as_param(W, "W", shape=shape, owner="RBM")
        check_finite_params(self)
        for side, layer in (("visible", visible), ("hidden", hidden)):
            for field in dataclasses.fields(layer):
                if field.name.startswith("precision") or field.name == "scale":
                    check_positive(getattr(layer, field.name), f"{side}.{field.name}", owner="RBM")

    @classmethod
    def init(cls, key: PRNGKeyArray, visible: Layer, hidden: Layer, *, scale: float = 0.01,
             data: ArrayLike | None = None) -> "RBM":
        """W ~ N(0, scale^2) (``scale >= 0``) between the given layers; with ``data`` ``(N, D)``
        the visible layer starts fitted to it (``visible.base(data)``)."""
        _check_layers(visible, hidden, "RBM.init")
        scale = check_scale(scale, "RBM.init")
        shape = _feature_shape(visible) + _feature_shape(hidden)
        dtype = jax.tree.leaves(visible)[0].dtype
        if data is not None:
            data = visible.check(data, "data", "RBM.init")
            if data.ndim != 2 or data.shape[0] == 0:
                raise ValueError(f"RBM.init: data must have shape (N, {visible.size}) with N >= 1 rows, got "
                                 f"{tuple(data.shape)}; pass one example as data[None]")
            visible = visible.base(data)
        return cls(visible, hidden, scale * jax.random.normal(key, shape, dtype))

    def with_layers(self, visible: Layer, hidden: Layer, W: Array) -> "RBM":
        return RBM(visible, hidden, W)

    def energy_joint(self, x: ArrayLike, h: ArrayLike) -> Array:
        """E(x, h); ``x: (*batch, D)``, ``h: (*batch, M)`` -> ``(*batch,)``."""
        x = self._check(x)
        h = self.hidden.check(h, "h", "RBM")
        coupling = jnp.sum(self.hidden_field(x) * self.hidden.features(h),
                           axis=tuple(range(-self.hidden.feature_ndim, 0)))
        return self.visible.energy(x) + self.hidden.energy(h) - coupling

    # -- saving --------------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {"visible": _kind(self.visible), "hidden": _kind(self.hidden)}

    @classmethod
    def from_config(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> "RBM":
        layers = []
        for side in ("visible", "hidden"):
            layer_cls = LAYERS.get(config.get(side))
            if layer_cls is None:
                raise ValueError(f"RBM: unknown {side} layer kind {config.get(side)!r}")
            prefix = f".{side}."
            fields = {key[len(prefix):]: jnp.asarray(value) for key, value in arrays.items() if key.startswith(prefix)}
            layers.append(layer_cls(**fields))
        return cls(*layers, arrays[".W"])


def _check_layers(visible: Layer, hidden: Layer, owner: str) -> None:
    """TypeError unless both are layers of a known kind; ValueError for a layer of no units."""
    for side, layer in (("visible", visible), ("hidden", hidden)):
        if not isinstance(layer, Layer):
            raise TypeError(f"{owner}: {side} must be a layer (ep.layers.Binary, Potts, ...), got "
                            f"{type(layer).__name__}")
        _kind(layer)
        if layer.size == 0:
            raise ValueError(f"{owner}: the {side} layer {type(layer).__name__} has no units (size 0); give it "
                             "at least one, e.g. ep.layers.Binary.standard(4)")


def _as_float_layer(layer: Layer, side: str) -> Layer:
    """The layer with every parameter a floating JAX array (numpy or integer input converted)."""
    return jax.tree.map(lambda v: as_param(v, side, owner="RBM"), layer)


def _feature_shape(layer: Layer) -> tuple[int, ...]:
    """The shape of one state's features (``(size,)``; ``(size, q)`` for Potts units)."""
    state = jnp.zeros((layer.size,), jax.tree.leaves(layer)[0].dtype)
    return tuple(jax.eval_shape(layer.features, state).shape)
