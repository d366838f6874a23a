"""Tempered families: a potential at every inverse temperature beta in [0, 1], beta = 1 the target.

Parallel tempering (:mod:`ebm_ppl.kernels.replica_exchange`) moves one replica per rung of a
ladder of betas and swaps neighbours; AIS (:mod:`ebm_ppl.partition.paths`) anneals along the same
families. Four kinds, by the reference the ladder starts from:

* :class:`TemperatureTempering` (``reference="temperature"``, the default where it applies):
  ``potential.tempered(beta)``, the model of the same family whose *joint* energy is ``beta
  E(x, h)`` (every parameter times beta for the Boltzmann machine, the classification RBM and
  RBMs over binary, spin, Potts, Gaussian, ReLU and dReLU layers). For an RBM its marginal of the
  visible units is ``exp(-F_beta(v))``, ``F_beta(v) = -beta b.v - sum_j softplus(beta (c_j +
  (v W)_j))`` for binary units, not ``exp(-beta F(v))``: swaps use exactly that free energy.
  beta = 0 is the uniform distribution where every unit is discrete (else the ladder starts above 0).
* :class:`ParameterTempering` (``reference="base"``): ``theta_beta = (1 - beta) theta_0 + beta
  theta`` between a coupling-free base model (``potential.base_model()``, beta = 0) and the
  target (the AIS path of :mod:`ebm_ppl.partition.paths`), so every rung is a model of the
  target's family with its own exact Gibbs moves; swaps use the interpolated model's free energy.
  The base keeps the target's visible biases, which suits AIS but leaves modes that those biases
  disfavour unreachable at low beta: for parallel tempering prefer ``"temperature"``.
* :class:`GeometricTempering`: ``E_beta = (1 - beta) E_0 + beta E`` from a factorized ``E_0``
  with exact samples (:class:`~ebm_ppl.potentials.bernoulli.Bernoulli` /
  :class:`~ebm_ppl.potentials.factorized.Factorized`, e.g. fitted to data).
* :class:`PowerTempering` (``reference="power"``): ``E_beta = beta E`` of the (free) energy, moved
  by site Gibbs or MALA. The default for potentials without a ``tempered`` form or a base model;
  on R^D beta = 0 is improper, so the ladder starts at a fixed lowest beta > 0.

Where beta = 0 is proper the bottom rung has no couplings: one Gibbs sweep there is an exact
draw, which is what lets a replica forget its mode.
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ebm_ppl.moves.site import site_logit
from ebm_ppl.ops import scale_energy
from ebm_ppl.potentials.base import Potential, Support
from ebm_ppl.potentials.bernoulli import Bernoulli
from ebm_ppl.potentials.capabilities import has_base_model, has_block_conditionals, has_temperature
from ebm_ppl.potentials.factorized import Factorized
from ebm_ppl.potentials.layers import Layer

__all__ = ["Tempering", "TemperatureTempering", "TemperedRBM", "ParameterTempering", "GeometricTempering", "PowerTempering", "Mixture", "Scaled",
           "interpolate", "tempering", "REFERENCES"]

#: The references a ladder can start from (see the module docstring).
REFERENCES = ("temperature", "base", "power")


def interpolate(base: Potential, target: Potential, beta: Array) -> Potential:
    """The model ``theta_beta = (1 - beta) theta_base + beta theta_target`` of the target's family
    (``base`` of the same family and shapes)."""
    base_params, static = eqx.partition(base, eqx.is_array)
    target_params = eqx.filter(target, eqx.is_array)
    mixed = jax.tree.map(lambda a, b: (1 - beta) * a + beta * b, base_params, target_params)
    return eqx.combine(mixed, static)


class Mixture(Potential):
    """The geometric mixture ``E_beta = (1 - beta) E_base + beta E_target`` of two potentials on
    the same support (a rung of :class:`GeometricTempering`); not registered."""

    name: ClassVar[str] = "geometric_mixture"

    base: Potential
    target: Potential
    beta: Array

    @property
    def support(self) -> Support:  # type: ignore[override]
        return self.target.support

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.target.event_shape

    def unbatched_energy(self, x: Array) -> Array:
        """At beta = 0 the base's energy alone, also where the target's is infinite (a hard constraint)."""
        return (scale_energy(1 - self.beta, self.base.unbatched_energy(x))
                + scale_energy(self.beta, self.target.unbatched_energy(x)))

    def site_logit(self, x: Array, i: Array) -> Array:
        """Mixed from the components' site logits (their own, or two energy evaluations each)."""
        return (scale_energy(1 - self.beta, site_logit(self.base, x, i))
                + scale_energy(self.beta, site_logit(self.target, x, i)))


class Scaled(Potential):
    """``E_beta = beta E`` (a rung of :class:`PowerTempering`); not registered."""

    name: ClassVar[str] = "scaled"

    potential: Potential
    beta: Array

    @property
    def support(self) -> Support:  # type: ignore[override]
        return self.potential.support

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.potential.event_shape

    def unbatched_energy(self, x: Array) -> Array:
        return scale_energy(self.beta, self.potential.unbatched_energy(x))

    def site_logit(self, x: Array, i: Array) -> Array:
        return scale_energy(self.beta, site_logit(self.potential, x, i))


class TemperedRBM(Potential):
    """``rbm.tempered(beta)`` as a view that keeps ``rbm``'s W: the layers tempered, the fields
    ``beta features W`` computed from the shared W (the same conditionals and free energy
    ``F_beta(x) = E_v,beta(x) - cgf_h,beta(beta features(x) W)``); not registered, not saved."""

    name: ClassVar[str] = "tempered_rbm"

    rbm: Potential
    beta: Array

    @property
    def support(self) -> Support:  # type: ignore[override]
        return self.rbm.support

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.rbm.event_shape

    def unbatched_energy(self, x: Array) -> Array:
        return self.rbm.visible.tempered(self.beta).energy(x) - \
            self.rbm.hidden.tempered(self.beta).cgf(self.beta * self.rbm.hidden_field(x))

    def free_energy(self, x: ArrayLike) -> Array:
        """F_beta(x) = -log sum_h exp(-beta E(x, h)); ``(*batch, D) -> (*batch,)``."""
        return self.energy(x)

    def sample_hidden(self, key, x: Array):
        """latent ~ p_beta(latent | x); as the RBM's ``sample_hidden``."""
        return self.rbm.hidden.tempered(self.beta).sample(key, self.beta * self.rbm.hidden_field(x), x.dtype)

    def sample_visible(self, key, latent) -> Array:
        """x ~ p_beta(x | latent); as the RBM's ``sample_visible``."""
        dtype = jax.tree.leaves(latent)[0].dtype
        return self.rbm.visible.tempered(self.beta).sample(key, self.beta * self.rbm.visible_field(latent), dtype)


class Tempering(eqx.Module):
    """A family ``beta -> at(beta)`` of potentials with ``at(1)`` the target.

    Subclasses define :meth:`at`; :meth:`energies` (the energies of one point at several betas,
    what a swap needs) defaults to evaluating each rung and is overridden where the energy is
    linear in beta.
    """

    target: eqx.AbstractVar[Potential]  # declared first: subclasses are built with keywords

    @property
    def has_reference(self) -> bool:
        """Whether beta = 0 is a proper, coupling-free distribution (else the ladder starts above 0)."""
        return True

    @abc.abstractmethod
    def at(self, beta: Array) -> Potential:
        """The potential at inverse temperature ``beta`` (a scalar, may be traced)."""

    def reference_log_partition(self) -> Array | None:
        """Exact log Z at beta = 0 (None where it is not proper or not known in closed form)."""
        return None

    def energies(self, x: Array, betas: Array) -> Array:
        """``E_beta(x)`` of one point ``x`` (``event_shape``) at each of ``betas`` ``(k,)``; ``-> (k,)``."""
        return jax.vmap(lambda beta: self.at(beta).unbatched_energy(x))(betas)


class TemperatureTempering(Tempering):
    """``target.tempered(beta)``: the same family with joint energy ``beta E``. For RBMs over
    layers the rungs are :class:`TemperedRBM` views, which share the target's W: their fields are
    beta times the target's, so the many rungs and chains of a run multiply by one weight matrix
    (and the energies of one point at several betas share one product)."""

    target: Potential

    def at(self, beta: Array) -> Potential:
        if getattr(self.target, "temperable", False):  # an RBM over layers with standard couplings
            return TemperedRBM(self.target, beta)
        return self.target.tempered(beta)

    def reference_log_partition(self) -> Array | None:
        """The uniform model's log Z, from the family's coupling-free log Z (all units discrete)."""
        zero = self.target.tempered(jnp.zeros(()))
        if not self.has_reference or not has_base_model(zero):
            return None
        return zero.factorized_log_partition()

    @property
    def has_reference(self) -> bool:
        """Proper at beta = 0 when every unit (visible and latent) is discrete."""
        hidden = getattr(self.target, "hidden", None)
        return not self.target.support.continuous and not (isinstance(hidden, Layer) and hidden.support.continuous)


class ParameterTempering(Tempering):
    """Parameters interpolated between a coupling-free ``base`` (beta = 0) and ``target``."""

    base: Potential
    target: Potential

    def at(self, beta: Array) -> Potential:
        return interpolate(self.base, self.target, beta)

    def reference_log_partition(self) -> Array:
        return self.base.factorized_log_partition()


class _LinearTempering(Tempering):
    """A family whose energy is ``(1 - beta) E_0 + beta E`` (``E_0`` may be zero)."""

    def reference_energy(self, x: Array) -> Array:
        return jnp.zeros((), x.dtype)

    def energies(self, x: Array, betas: Array) -> Array:
        """Two energy evaluations for any number of betas."""
        e0, e1 = self.reference_energy(x), self.target.unbatched_energy(x)
        return (1 - betas) * e0 + betas * e1


class GeometricTempering(_LinearTempering):
    """``E_beta = (1 - beta) E_base + beta E`` from a factorized ``base`` with exact samples."""

    base: Potential
    target: Potential

    def at(self, beta: Array) -> Mixture:
        return Mixture(self.base, self.target, beta)

    def reference_energy(self, x: Array) -> Array:
        return self.base.unbatched_energy(x)

    def reference_log_partition(self) -> Array:
        return self.base.log_partition()


class PowerTempering(_LinearTempering):
    """``E_beta = beta E``: beta = 0 is improper on R^D, so ladders start at a lowest beta > 0."""

    target: Potential

    def at(self, beta: Array) -> Scaled:
        return Scaled(self.target, beta)

    @property
    def has_reference(self) -> bool:
        """Proper at beta = 0 (uniform) on a discrete support only."""
        return not self.target.support.continuous

    def reference_log_partition(self) -> Array | None:
        """``D log q``: the uniform distribution over q values per coordinate (discrete supports)."""
        if not self.has_reference:
            return None
        size = math.prod(self.target.event_shape)
        return jnp.asarray(size * math.log(len(self.target.support.values)), jnp.result_type(float))


def tempering(potential: Potential, reference: str | None = None) -> Tempering:
    """The tempered family of ``potential`` from ``reference`` (see the module docstring).

    None picks ``"temperature"`` where the potential has a tempered form
    (:func:`~ebm_ppl.potentials.capabilities.has_temperature`), else ``"base"`` where it has a base
    model and Gibbs moves (the Gaussian-Bernoulli and subspace RBMs), else ``"power"``.
    """
    if reference not in (None, *REFERENCES):
        raise ValueError(f"parallel tempering: reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    family = type(potential).__name__
    gibbs = has_block_conditionals(potential) or potential.support == Support.BINARY
    if reference in (None, "temperature") and has_temperature(potential):
        return TemperatureTempering(potential)
    if reference == "temperature":
        if has_block_conditionals(potential):
            raise ValueError(f"parallel tempering: {family} has no tempered form (joint energy times beta); use "
                             "reference='base' (the AIS path) or 'power' (beta F(x), moved by site Gibbs or MALA)")
        return PowerTempering(potential)  # a fully visible potential: beta E(x) is its temperature
    if reference in (None, "base") and has_base_model(potential) and gibbs:
        return ParameterTempering(base=potential.base_model(), target=potential)
    if reference == "base":
        if potential.support == Support.BINARY:
            return GeometricTempering(base=Bernoulli.uniform(potential.event_shape), target=potential)
        if not potential.support.continuous:
            return GeometricTempering(base=Factorized.uniform(potential.event_shape, potential.support), target=potential)
        raise ValueError(f"parallel tempering: {family} has no base model with Gibbs moves, and beta = 0 of a "
                         "continuous potential is improper; use reference='power' (a ladder from a lowest beta > 0)")
    return PowerTempering(potential)
