"""A potential on a bounded support, seen on the unconstrained space R^D.

With the support's bijection ``T: R^D -> support`` (:meth:`~ebm_ppl.potentials.supports.Support.transform`,
NumPyro's ``biject_to``), ``z = T^{-1}(x)`` has the density ``p(T(z)) |det J_T(z)|``, so

    E_z(z) = E(T(z)) - log |det J_T(z)|

has the same normalizer Z. Gradient samplers (MALA, HMC, NUTS) and AIS's geometric path run on
``E_z`` and map their draws back with ``T``; the log-Jacobian is counted once, here.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array

from ebm_ppl.potentials.base import Potential, Support

__all__ = ["Unconstrained", "unconstrained"]


class Unconstrained(Potential):
    """``potential`` (on a bounded support) over z in R^D: ``E_z(z) = E(T(z)) - log |det J_T(z)|``.

    Attributes:
        potential: the potential on its bounded support.
    """

    name: ClassVar[str] = "unconstrained"  # a view, not a registered family
    support: ClassVar[Support] = Support.REAL

    potential: Potential

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.potential.event_shape

    def unbatched_energy(self, z: Array) -> Array:
        transform = self.potential.support.transform()
        x = transform(z)
        return self.potential.unbatched_energy(x) - jnp.sum(transform.log_abs_det_jacobian(z, x))

    def constrain(self, z: Array) -> Array:
        """``T(z)``: points of the unconstrained space mapped onto the support; any shape."""
        return self.potential.support.transform()(z)

    def unconstrain(self, x: Array) -> Array:
        """``T^{-1}(x)`` for points of the support (points on a bound moved just inside it,
        :meth:`~ebm_ppl.potentials.supports.Box.interior`); any shape."""
        support = self.potential.support
        return support.transform().inv(support.interior(x))

    def initial_positions(self, key, num: int) -> Array:
        """The potential's default starts, mapped to R^D."""
        return self.unconstrain(self.potential.initial_positions(key, num))


def unconstrained(potential: Potential) -> Potential:
    """``potential`` itself on R^D or a discrete support; its :class:`Unconstrained` view on a
    bounded continuous support."""
    return Unconstrained(potential) if potential.support.bounded else potential
