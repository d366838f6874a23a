"""Conversions between ebm_ppl potentials, NumPyro and BlackJAX, with the signs pinned.

=====================  =====================  =========================================
what                   sign                   used by
=====================  =====================  =========================================
``potential_fn(p)``    ``E(x)``               ``numpyro.infer.NUTS(potential_fn=...)``
``logdensity_fn(p)``   ``-E(x)``              every BlackJAX kernel
``model_logdensity``   ``log p(z)``           BlackJAX on a NumPyro model (unconstrained z)
=====================  =====================  =========================================
"""

from __future__ import annotations

from typing import Any, Callable

from jaxtyping import Array, PRNGKeyArray
from numpyro.infer.util import initialize_model

from ebm_ppl.potentials.base import Potential, check_potential

__all__ = ["potential_fn", "logdensity_fn", "model_logdensity"]


def potential_fn(potential: Potential) -> Callable[[Array], Array]:
    """``x -> E(x)``: NumPyro's ``potential_fn`` is the negative log density, i.e. the energy."""
    return check_potential(potential, "potential_fn").energy


def logdensity_fn(potential: Potential) -> Callable[[Array], Array]:
    """``x -> -E(x)``: BlackJAX's ``logdensity_fn`` is the log density up to a constant."""
    return check_potential(potential, "logdensity_fn").logdensity


def model_logdensity(
    key: PRNGKeyArray, model: Callable, *model_args: Any, **model_kwargs: Any
) -> tuple[Callable[[Any], Array], Any, Callable[[Any], Any]]:
    """A NumPyro model as a BlackJAX target on its unconstrained space.

    Returns ``(logdensity_fn, initial_position, constrain_fn)``: ``logdensity_fn(z) =
    -potential_energy(z)`` (the Jacobians of NumPyro's transforms included), a valid starting
    point ``z``, and ``constrain_fn(z)`` mapping unconstrained samples back to the model's sites.
    """
    init, potential, postprocess, _ = initialize_model(key, model, model_args=model_args,
                                                       model_kwargs=model_kwargs)

    def logdensity(z):
        return -potential(z)

    return logdensity, init.z, postprocess
