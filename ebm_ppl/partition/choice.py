"""Which annealing path a potential gets, and its base model (see :mod:`ebm_ppl.partition.paths`)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ebm_ppl.compiler import filter_jit
from ebm_ppl.partition.paths import AnnealingPath, DiscreteGeometricPath, GeometricPath, ParameterPath
from ebm_ppl.partition.rbm_path import fused_path
from ebm_ppl.potentials.base import Potential, Support, validate_input
from ebm_ppl.potentials.bernoulli import Bernoulli
from ebm_ppl.potentials.capabilities import (has_base_model, has_block_conditionals, has_exact_log_partition,
                                             has_exact_samples)
from ebm_ppl.potentials.factorized import Factorized
from ebm_ppl.potentials.gaussian import Gaussian
from ebm_ppl.potentials.unconstrained import Unconstrained, unconstrained

__all__ = ["make_path", "anneals_parameters", "factorized_base", "factorized_log_z"]


def anneals_parameters(target: Potential) -> bool:
    """Whether ``target`` anneals along a :class:`ParameterPath`: it has a coupling-free base
    model and exact Gibbs moves (block conditionals, or binary support for site Gibbs)."""
    return has_base_model(target) and (has_block_conditionals(target) or target.support == Support.BINARY)


def factorized_base(target: Potential, data: Array | None = None) -> Potential:
    """``target.base_model(data)``: the coupling-free model of ``target``'s family, fitted to
    ``data`` when given (the base-rate model of Salakhutdinov & Murray 2008)."""
    return target.base_model(data)


def factorized_log_z(base: Potential) -> Array:
    """Exact log Z of a coupling-free model, ``base.factorized_log_partition()``."""
    return base.factorized_log_partition()


@filter_jit
def _default_base(target: Potential, data: Array | None):
    """``target.base_model(data)`` and its log Z in one compiled call (a handful of small eager
    operations, each a dispatch and some a host sync, would cost more than the rest of a short
    ``ais`` call)."""
    base = target.base_model(data)
    return base, base.factorized_log_partition()


def _same_structure(base: Potential, target: Potential) -> bool:
    shapes = jax.tree.map(jnp.shape, eqx.filter(base, eqx.is_array))
    return type(base) is type(target) and shapes == jax.tree.map(jnp.shape, eqx.filter(target, eqx.is_array))


def make_path(target: Potential, *, base: Potential | None, data: ArrayLike | None, kernel: str | None,
              num_integration_steps: int = 5) -> AnnealingPath:
    """The annealing path for ``target``: a parameter path (fused for RBMs over layers) from
    ``base`` (default: ``target.base_model(data)``) where :func:`anneals_parameters`; else a
    geometric path from a Gaussian ``base`` (default: N(0, I), or fitted to ``data``) for
    continuous potentials (on the unconstrained space of a bounded support), or from independent
    coordinates (uniform, or fitted to ``data``) for discrete ones."""
    if data is not None:
        data = validate_input(data, target.event_shape, target.support, name="data", owner="ais")
        if data.ndim != len(target.event_shape) + 1:
            raise ValueError(f"ais: data must have shape (N, *event_shape), got {data.shape}")
    if anneals_parameters(target):
        if kernel not in (None, "gibbs"):
            raise ValueError(f"ais: {type(target).__name__} anneals with exact Gibbs moves; kernel={kernel!r} "
                             "does not apply")
        if base is None:
            base, base_log_z = _default_base(target, data)
        elif not _same_structure(base, target):
            raise ValueError(f"ais: base must be a {type(target).__name__} of the target's shapes")
        else:
            base_log_z = base.factorized_log_partition()
        return fused_path(base, target, base_log_z) or ParameterPath(base, target, base_log_z)
    if target.support.continuous:
        return _geometric(unconstrained(target), base, data, kernel, num_integration_steps)
    return _discrete(target, base, data, kernel)


def _geometric(target: Potential, base, data, kernel, num_integration_steps) -> GeometricPath:
    """The geometric path from a Gaussian base to a potential on R^D (a bounded support's
    unconstrained view: ``data`` is mapped there before the base is fitted to it)."""
    kernel = "mala" if kernel is None else kernel
    if kernel not in ("mala", "hmc"):
        raise ValueError(f"ais: kernel for a real potential must be 'mala' or 'hmc', got {kernel!r}")
    dim = math.prod(target.event_shape)
    if base is None:
        if data is not None:
            z = target.unconstrain(data) if isinstance(target, Unconstrained) else data
            flat = z.reshape(z.shape[0], -1)
            base = Gaussian(jnp.mean(flat, 0), scale_diag=jnp.std(flat, 0) + 1e-3)
        else:
            base = Gaussian.standard(dim)
    if not isinstance(base, Gaussian) or base.event_shape != (dim,):
        raise ValueError(f"ais: the base of a real potential must be an ep.Gaussian over {dim} dimensions")
    return GeometricPath(base, target, base.log_partition(), kernel, int(num_integration_steps))


def _discrete(target: Potential, base, data, kernel) -> DiscreteGeometricPath:
    """The geometric path from independent coordinates (uniform, fitted to ``data``, or a given
    ``base`` with exact samples and exact log Z) to a discrete potential: independent binary units
    (:class:`Bernoulli`) for binary potentials, :class:`Factorized` for spin and categorical ones."""
    support = target.support
    if kernel not in (None, "gibbs"):
        raise ValueError(f"ais: a {support} potential anneals with exact site-Gibbs moves; kernel={kernel!r} "
                         "does not apply")
    if base is None and support == Support.BINARY:
        base = Bernoulli.uniform(target.event_shape) if data is None else Bernoulli.fit(data)
    elif base is None:
        base = (Factorized.uniform(target.event_shape, support) if data is None
                else Factorized.fit(data, support))
    elif not (has_exact_samples(base) and has_exact_log_partition(base) and base.support == support
              and tuple(base.event_shape) == tuple(target.event_shape)):
        suggestion = "ep.potentials.Bernoulli" if support == Support.BINARY else "ep.potentials.Factorized"
        raise ValueError(f"ais: the base of {type(target).__name__} must be a {support} potential of event shape "
                         f"{target.event_shape} with exact samples and exact log Z (e.g. {suggestion})")
    return DiscreteGeometricPath(base, target, base.log_partition())
