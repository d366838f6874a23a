"""What every restricted Boltzmann machine has, written once over its two layers.

An RBM couples a visible layer and a hidden layer (:mod:`ebm_ppl.potentials.layers`) through
weights W between their features::

    E(x, h) = E_v(x) + E_h(h) - features_v(x) W features_h(h)
    F(x)    = E_v(x) - cgf_h(features_v(x) W)            (h summed out)
    log Z   = logsumexp_h [-E_h(h) + cgf_v(W features_h(h))]   (or over x; the smaller discrete layer)

From these, :class:`RBMBase` gives the free energy, the block conditionals, exact log Z by
chunked enumeration, exact samples, the coupling-free base model and its log Z. A family names its
layers (``visible``, ``hidden`` properties over its own fields, so its file format is its own)
and, where the couplings are not a matrix product, the two fields (:meth:`RBMBase.hidden_field`,
:meth:`RBMBase.visible_field`). :class:`BinaryHiddenRBM` adds what binary hidden units allow
(logits, the energy from the logits a Gibbs sweep forms anyway).
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.compiler import filter_jit
from ebm_ppl.potentials import enumeration
from ebm_ppl.potentials.base import Potential, validate_input
from ebm_ppl.potentials.layers import Binary, Layer

__all__ = ["RBMBase", "BinaryHiddenRBM"]


class RBMBase(Potential):
    """A restricted Boltzmann machine over ``visible`` and ``hidden`` layers (abstract).

    Subclasses define the fields, the ``visible`` and ``hidden`` layers over them, and
    :meth:`with_layers` (the same family rebuilt from layers and weights).
    """

    W: eqx.AbstractVar[Array]
    visible: eqx.AbstractVar[Layer]
    hidden: eqx.AbstractVar[Layer]

    @abc.abstractmethod
    def with_layers(self, visible: Layer, hidden: Layer, W: Array) -> "RBMBase":
        """A model of this family with these layers and weights (other settings kept)."""

    # -- shapes and couplings ------------------------------------------------------------------
    @property
    def n_visible(self) -> int:
        return self.visible.size

    @property
    def n_hidden(self) -> int:
        return self.hidden.size

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.n_visible,)

    @property
    def standard_couplings(self) -> bool:
        """Whether the fields are :meth:`hidden_field` and :meth:`visible_field` as defined here,
        the contractions of the layers' features with W (a family may override them, as the
        subspace RBM does)."""
        return type(self).hidden_field is RBMBase.hidden_field and type(self).visible_field is RBMBase.visible_field

    @property
    def temperable(self) -> bool:
        """Whether :meth:`tempered` applies: standard couplings between layers whose energies are
        linear in their fields."""
        return self.standard_couplings and self.visible.linear_parameters and self.hidden.linear_parameters

    def tempered(self, beta: Array) -> "RBMBase":
        """The RBM at inverse temperature ``beta``: joint energy ``beta E(x, h)`` (every field and
        W times beta), so its free energy is ``F_beta(x)``, not ``beta F(x)``. TypeError where not
        :attr:`temperable`."""
        if not self.temperable:
            raise TypeError(f"{type(self).__name__} has no tempered form by scaling its fields")
        return self.with_layers(self.visible.tempered(beta), self.hidden.tempered(beta), beta * self.W)

    def couple_visible(self, features: Array) -> Array:
        """``features W`` for visible features ``(*batch, *visible features)`` (contracting their
        axes): the hidden layer's input; ``-> (*batch, *hidden features)``."""
        k = self.visible.feature_ndim
        return features @ self.W if self.W.ndim == 2 else jnp.tensordot(features, self.W, axes=k)

    def couple_hidden(self, features: Array) -> Array:
        """``W features`` for hidden features ``(*batch, *hidden features)``: the visible layer's
        input; ``-> (*batch, *visible features)``."""
        k = self.hidden.feature_ndim
        if self.W.ndim == 2:
            return features @ self.W.T
        axes = (list(range(features.ndim - k, features.ndim)), list(range(self.W.ndim - k, self.W.ndim)))
        return jnp.tensordot(features, self.W, axes=axes)

    def hidden_field(self, x: Array) -> Array:
        """The input to the hidden layer, ``features_v(x) W``; ``(*batch, D) -> (*batch, *hidden features)``."""
        return self.couple_visible(self.visible.features(x))

    def visible_field(self, latent: Any) -> Array:
        """The input to the visible layer, ``W features_h(latent)``; ``-> (*batch, *visible features)``."""
        return self.couple_hidden(self.hidden.features(latent))

    # -- centering (Melchior et al. 2016) ----------------------------------------------------------
    def plain_to_centered(self, visible_offset: Array, hidden_offset: Array) -> "RBMBase":
        """This model's parameters in the centered form ``E(x, h) = E_v(x) + E_h(h) - (f_v(x) -
        mu) W (f_h(h) - lambda)`` with offsets ``mu`` (visible features' shape) and ``lambda``
        (hidden features' shape): the layers shifted by ``W lambda`` and ``mu W``. Same
        distribution; :meth:`centered_to_plain` inverts it."""
        return self.with_layers(self.visible.shift(self.couple_hidden(hidden_offset)),
                                self.hidden.shift(self.couple_visible(visible_offset)), self.W)

    def centered_to_plain(self, visible_offset: Array, hidden_offset: Array) -> "RBMBase":
        """The ordinary model of centered parameters (this model read in the centered form of
        :meth:`plain_to_centered`)."""
        return self.with_layers(self.visible.shift(-self.couple_hidden(hidden_offset)),
                                self.hidden.shift(-self.couple_visible(visible_offset)), self.W)

    # -- energies ------------------------------------------------------------------------------
    def unbatched_energy(self, x: Array) -> Array:
        return self.visible.energy(x) - self.hidden.cgf(self.hidden_field(x))

    @property
    def support(self):  # type: ignore[override]
        """The visible layer's support."""
        return self.visible.support

    def free_energy(self, x: ArrayLike) -> Array:
        """F(x) = -log sum_h exp(-E(x, h)); ``(*batch, D) -> (*batch,)``."""
        return self.energy(x)

    # -- block conditionals --------------------------------------------------------------------
    def sample_hidden(self, key: PRNGKeyArray, x: Array) -> Any:
        """latent ~ p(latent | x); ``(*batch, D) ->`` the hidden layer's state, in x's dtype.
        No validation (jit inner)."""
        return self.hidden.sample(key, self.hidden_field(x), x.dtype)

    def sample_visible(self, key: PRNGKeyArray, latent: Any) -> Array:
        """x ~ p(x | latent); ``-> (*batch, D)`` in the latent's dtype. No validation (jit inner)."""
        return self.visible.sample(key, self.visible_field(latent), jax.tree.leaves(latent)[0].dtype)

    def conditional_visible_mean(self, latent: Any) -> Array:
        """E[x | latent]; ``-> (*batch, D)``. No validation (jit inner)."""
        return self.visible.mean(self.visible_field(latent))

    # -- exact log partition and exact samples -------------------------------------------------
    def _routes(self) -> dict[str, int]:
        """The enumerable layers and their numbers of states."""
        layers = {"hidden": self.hidden, "visible": self.visible}
        return {name: layer.num_states for name, layer in layers.items() if hasattr(layer, "num_states")}

    def _route(self, route: str | None) -> str:
        routes = self._routes()
        owner = type(self).__name__
        if not routes:
            raise ValueError(f"{owner}: neither layer is discrete, so there is nothing to enumerate for an exact "
                             "log Z or exact samples; estimate log Z with ebm_ppl.ais(...)")
        if route is None:
            return min(routes, key=lambda r: (routes[r], r != "hidden"))
        if route not in ("hidden", "visible"):
            allowed = " or ".join([", ".join(f"'{r}'" for r in routes), "None"])
            raise ValueError(f"{owner}: route must be {allowed}, got {route!r}")
        if route not in routes:
            other = next(iter(routes))
            raise ValueError(f"{owner}: route={route!r} is impossible, the {route} units are real-valued and "
                             f"cannot be enumerated; use route={other!r} (or None), which integrates them out "
                             "analytically")
        return route

    def _describe(self, route: str) -> str:
        return (f"{type(self).__name__} with n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
                f"enumerating the {route} layer")

    def log_partition(
        self, *, route: str | None = None, max_terms: int | None = None, chunk_size: int = 2**14
    ) -> Array:
        """Exact log Z by enumerating the layer with fewer states (or ``route="hidden"|"visible"``)
        and summing or integrating the other out in closed form: ``num_states`` terms, in chunks
        of ``chunk_size`` (bounded memory); past ``max_terms`` (default 2^26) a ValueError points
        to :func:`ebm_ppl.ais`."""
        route = self._route(route)
        enumeration.check_enumerable(self._routes()[route], max_terms, self._describe(route))
        return _log_z(self, route, enumeration.check_chunk_size(chunk_size))

    def _log_terms(self, route: str, index: Array) -> tuple[Array, Any]:
        """``(log weight, state)`` of the enumerated states ``index`` of ``route``'s layer."""
        dtype = self.W.dtype
        if route == "visible":
            x, log_mult = self.visible.state(index, dtype)
            return log_mult - jax.vmap(self.unbatched_energy)(x), x
        latent, log_mult = self.hidden.state(index, dtype)
        return log_mult - self.hidden.energy(latent) + self.visible.cgf(self.visible_field(latent)), latent

    def exact_samples(self, key: PRNGKeyArray, num: int) -> Array:
        """``num`` independent exact draws ``(num, D)``: a state of the smaller discrete layer from
        its marginal by enumeration (at most
        :data:`~ebm_ppl.potentials.enumeration.MAX_EXACT_STATES` states, in bounded memory), then
        x given it."""
        num = enumeration.check_num(num, f"{type(self).__name__}.exact_samples", self.n_visible)
        route = self._route(None)
        enumeration.check_enumerable(self._routes()[route], enumeration.MAX_EXACT_STATES,
                                     f"exact samples of a {self._describe(route)}", samples=True)
        return _exact_samples(self, route, key, num)

    # -- the coupling-free base model ----------------------------------------------------------
    def base_model(self, data: ArrayLike | None = None) -> "RBMBase":
        """The same family with W = 0, a zero-bias hidden layer and a visible layer fitted to
        ``data`` ``(N, D)`` when given (binary units: the base-rate model of Salakhutdinov &
        Murray 2008; Gaussian units: the data's means), else this model's visible layer. Its
        log Z is :meth:`factorized_log_partition`."""
        if data is not None:
            data = validate_input(data, self.event_shape, self.support, name="data", owner=f"{type(self).__name__}.base_model")
            if data.ndim != 2:
                raise ValueError(f"{type(self).__name__}.base_model: data must have shape (N, {self.n_visible}), "
                                 f"got {data.shape}")
        return self.with_layers(self.visible.base(data), self.hidden.without_bias(), jnp.zeros_like(self.W))

    def factorized_log_partition(self) -> Array:
        """Exact log Z of this model when W = 0 (the base model): ``cgf_v(0) + cgf_h(0)``. A
        concrete W with a nonzero entry raises a ValueError."""
        if not isinstance(self.W, jax.core.Tracer) and np.any(np.asarray(self.W) != 0):
            raise ValueError(f"{type(self).__name__}: the base model must have zero couplings (W is not zero); "
                             "use base_model() or pass base=None for the uniform or base-rate (data=) model")
        k = self.visible.feature_ndim  # W's shape is the visible features' and then the hidden ones'
        zero_v, zero_h = jnp.zeros(self.W.shape[:k], self.W.dtype), jnp.zeros(self.W.shape[k:], self.W.dtype)
        return self.visible.cgf(zero_v) + self.hidden.cgf(zero_h)


class BinaryHiddenRBM(RBMBase):
    """An RBM whose hidden layer is :class:`~ebm_ppl.potentials.layers.Binary` (abstract): hidden
    logits, the free energy from them, and the joint energy."""

    @property
    @abc.abstractmethod
    def hidden(self) -> Binary:
        """The binary hidden layer."""

    def hidden_logits(self, x: Array) -> Array:
        """Logits of p(h = 1 | x), ``c + features_v(x) W``; ``(*batch, D) -> (*batch, M)``. No validation."""
        return self.hidden.logits(self.hidden_field(x))

    def energy_from_hidden_logits(self, x: Array, logits: Array) -> Array:
        """F(x) from ``logits = hidden_logits(x)`` (which a Gibbs sweep computes anyway):
        ``E_v(x) - sum softplus(logits)``; ``(*batch, D), (*batch, M) -> (*batch,)``. No validation."""
        return self.visible.energy(x) - self.hidden.cgf_from_logits(logits)

    def hidden_probs(self, x: ArrayLike) -> Array:
        """p(h_j = 1 | x); ``(*batch, D) -> (*batch, M)``."""
        return jax.nn.sigmoid(self.hidden_logits(self._check(x)))

    def energy_joint(self, x: ArrayLike, h: ArrayLike) -> Array:
        """E(x, h); ``x: (*batch, D)``, ``h: (*batch, M)`` -> ``(*batch,)``."""
        x = self._check(x)
        h = self._check_hidden(h)
        coupling = jnp.sum(self.hidden_field(x) * h, axis=-1)
        return self.visible.energy(x) + self.hidden.energy(h) - coupling

    def _check_hidden(self, h: ArrayLike) -> Array:
        return self.hidden.check(h, "h", type(self).__name__)


@filter_jit
def _log_z(rbm: RBMBase, route: str, chunk_size: int) -> Array:
    def log_term(index):
        return rbm._log_terms(route, index)[0]

    return enumeration.logsumexp_over_indices(log_term, rbm._routes()[route], chunk_size)


@filter_jit
def _exact_samples(rbm: RBMBase, route: str, key: PRNGKeyArray, num: int) -> Array:
    key_state, key_x = jax.random.split(key)
    weights = enumeration.log_weights(lambda index: rbm._log_terms(route, index)[0], rbm._routes()[route])
    layer = rbm.visible if route == "visible" else rbm.hidden
    chosen, _ = layer.state(enumeration.sample_indices(key_state, weights, num), rbm.W.dtype)
    return chosen if route == "visible" else rbm.sample_visible(key_x, chosen)
