"""What a potential can do, asked by name: the rest of the library never asks for a class.

A capability is an optional method (or class attribute) of a :class:`~ebm_ppl.Potential`; each
predicate here says whether ``potential`` has one. Samplers, estimators, trainers and the NumPyro
bridge ask these predicates, so a new family, or a user's own subclass, gets every code path its
methods allow by defining the methods, without registering anything else.

==========================  ==============================================  ======================
predicate                   methods                                         used by
==========================  ==============================================  ======================
has_exact_log_partition     ``log_partition(*, route, max_terms, ...)``     ``ep.log_partition``,
                                                                            fit's exact LL
has_exact_samples           ``exact_samples(key, num)``                     reverse AIS, tests
has_block_conditionals      ``sample_hidden(key, x)``,                      block Gibbs, CD/PCD,
                            ``sample_visible(key, latent)``                 AIS moves
has_hidden_logits           ``hidden_logits(x)`` (binary hidden units)      block Gibbs statistics
has_visible_mean            ``conditional_visible_mean(latent)``            reconstruction error
has_logit_energy            ``energy_from_hidden_logits(x, logits)``        block Gibbs energies
has_site_logits             ``site_logit(x, i)``                            site Gibbs
has_base_model              ``base_model(data=None)``,                      AIS's parameter path
                            ``factorized_log_partition()``
has_closed_form_gradient    ``contrastive_gradient(x_data, x_model)``       CD/PCD
has_temperature             ``tempered(beta)`` (joint energy times beta)    parallel tempering
has_layers                  ``visible``, ``hidden`` layers, ``W``           AIS's fused RBM path
has_centering               ``plain_to_centered(mu, lambda)``,              ``ep.training.centered``
                            ``centered_to_plain(mu, lambda)``, layers
==========================  ==============================================  ======================

Methods that depend on the energy (the logit energy and the closed-form gradient) count only
when they are defined by the class that defines :meth:`~ebm_ppl.Potential.unbatched_energy` or by
a subclass of it: a subclass that changes the energy alone falls back to the generic route
instead of inheriting a formula for another energy.
"""

from __future__ import annotations

from typing import Any

from ebm_ppl.potentials.layers import Layer

__all__ = [
    "has_exact_log_partition",
    "has_exact_samples",
    "has_block_conditionals",
    "has_temperature",
    "has_hidden_logits",
    "has_visible_mean",
    "has_logit_energy",
    "has_site_logits",
    "has_base_model",
    "has_closed_form_gradient",
    "has_layers",
    "has_centering",
    "default_frozen",
]


def _has(potential: Any, *methods: str) -> bool:
    return all(callable(getattr(potential, m, None)) for m in methods)


def _defining_class(obj: Any, name: str) -> type | None:
    """The first class in ``type(obj)``'s MRO whose body defines ``name``."""
    return next((k for k in type(obj).__mro__ if name in vars(k)), None)


def _defined_with_energy(potential: Any, method: str) -> bool:
    """Whether ``method`` exists and comes from the class that defines the energy or a subclass of it."""
    if not _has(potential, method):
        return False
    owner, energy_owner = _defining_class(potential, method), _defining_class(potential, "unbatched_energy")
    return owner is not None and energy_owner is not None and issubclass(owner, energy_owner)


def has_exact_log_partition(potential: Any) -> bool:
    """Whether ``potential.log_partition(...)`` computes log Z exactly (analytic or enumerated;
    it may still refuse a state space past its ``max_terms``)."""
    return _has(potential, "log_partition")


def has_exact_samples(potential: Any) -> bool:
    """Whether ``potential.exact_samples(key, num)`` draws independent exact samples."""
    return _has(potential, "exact_samples")


def has_block_conditionals(potential: Any) -> bool:
    """Whether ``potential`` offers exact block conditionals ``sample_hidden(key, x)`` and
    ``sample_visible(key, latent)`` (the RBM family): block Gibbs, CD/PCD and AIS moves."""
    return _has(potential, "sample_hidden", "sample_visible")


def has_hidden_logits(potential: Any) -> bool:
    """Whether ``potential.hidden_logits(x)`` gives the logits of binary hidden units given x."""
    return has_block_conditionals(potential) and _has(potential, "hidden_logits")


def has_visible_mean(potential: Any) -> bool:
    """Whether ``potential.conditional_visible_mean(latent)`` gives E[x | latent]."""
    return has_block_conditionals(potential) and _has(potential, "conditional_visible_mean")


def has_logit_energy(potential: Any) -> bool:
    """Whether ``potential.energy_from_hidden_logits(x, hidden_logits(x))`` is its energy (the
    method and the energy defined by the same class)."""
    return has_hidden_logits(potential) and _defined_with_energy(potential, "energy_from_hidden_logits")


def has_site_logits(potential: Any) -> bool:
    """Whether ``potential.site_logit(x, i)`` gives the logit of p(x_i = 1 | x_{-i}) directly."""
    return _has(potential, "site_logit")


def has_base_model(potential: Any) -> bool:
    """Whether ``potential.base_model(data=None)`` gives a model of the same family without
    couplings, with its log Z in closed form (``factorized_log_partition()``): AIS anneals the
    parameters from it."""
    return _has(potential, "base_model", "factorized_log_partition")


def has_closed_form_gradient(potential: Any) -> bool:
    """Whether ``potential.contrastive_gradient(x_data, x_model)`` gives the gradient of
    ``mean F(x_data) - mean F(x_model)`` in closed form (the method and the energy defined by the
    same class)."""
    return _defined_with_energy(potential, "contrastive_gradient")


def has_temperature(potential: Any) -> bool:
    """Whether ``potential.tempered(beta)`` gives the model at inverse temperature beta: joint
    energy ``beta E`` (for models with latent units, so its free energy is not ``beta F``) in the
    same family, with the same Gibbs moves (parallel tempering's default ladder)."""
    return _defined_with_energy(potential, "tempered") and bool(getattr(potential, "temperable", True))


def has_layers(potential: Any) -> bool:
    """Whether ``potential`` is an RBM over two layers (:mod:`ebm_ppl.potentials.layers`) whose
    couplings contract their features with ``W`` (``standard_couplings``; features of any shape,
    such as Potts sites x states), with ``with_layers`` to rebuild it."""
    return (isinstance(getattr(potential, "visible", None), Layer) and isinstance(getattr(potential, "hidden", None), Layer)
            and bool(getattr(potential, "standard_couplings", False))
            and _has(potential, "with_layers"))


def has_centering(potential: Any) -> bool:
    """Whether ``potential`` is an RBM over two layers whose couplings are the contractions of
    their features with ``W`` (``standard_couplings``), so that it has a centered form
    (``plain_to_centered`` / ``centered_to_plain``)."""
    return (isinstance(getattr(potential, "visible", None), Layer) and isinstance(getattr(potential, "hidden", None), Layer)
            and bool(getattr(potential, "standard_couplings", False))
            and _has(potential, "plain_to_centered", "centered_to_plain", "with_layers"))


def default_frozen(potential: Any) -> tuple[str, ...]:
    """The fields :func:`ebm_ppl.fit` keeps fixed unless told otherwise (the class attribute
    ``frozen_fields``; the Gaussian-Bernoulli RBM's ``sigma``)."""
    return tuple(getattr(type(potential), "frozen_fields", ()))
