"""``log_partition``: the exact log normalizing constant of any potential that has one."""

from __future__ import annotations

import math
from typing import Any

import jax
from jaxtyping import Array

from ebm_ppl.compiler import filter_jit
from ebm_ppl.potentials import enumeration
from ebm_ppl.potentials.base import Potential, check_potential, is_concrete
from ebm_ppl.potentials.capabilities import has_exact_log_partition

__all__ = ["log_partition"]


def log_partition(potential: Potential, **options: Any) -> Array:
    """Exact log Z of ``potential``: its own ``log_partition`` (analytic, or chunked enumeration
    of its smaller layer), else, for any discrete potential (binary, spin, categorical), chunked
    enumeration of its ``q^D`` states (q values per coordinate, D the event's size).

    Options are the family's (``route``, ``max_terms``, ``chunk_size``); the enumeration of a
    discrete potential takes ``max_terms`` (default 2^26) and ``chunk_size``. A potential without
    an exact log Z, or a state space past ``max_terms``, raises a ValueError that points to
    :func:`ebm_ppl.ais`.
    """
    potential = check_potential(potential, "log_partition")
    if has_exact_log_partition(potential):
        return _checked(potential.log_partition(**options), potential)
    if not potential.support.continuous:
        unknown = sorted(set(options) - {"max_terms", "chunk_size"})
        if unknown:
            raise ValueError(f"log_partition: {type(potential).__name__} is enumerated over its states; it takes "
                             f"max_terms and chunk_size, not {', '.join(unknown)}")
        size, values = math.prod(potential.event_shape), potential.support.values
        enumeration.check_enumerable(len(values) ** size, options.get("max_terms"),
                                     f"{type(potential).__name__} with {size} {potential.support} units")
        chunk_size = enumeration.check_chunk_size(options.get("chunk_size", 2**14))
        return _checked(_enumerated_log_z(potential, chunk_size), potential)
    raise ValueError(
        f"{type(potential).__name__} has no exact log partition function (support {potential.support}); "
        "estimate it with ebm_ppl.ais(...)"
    )


def _checked(log_z: Array, potential: Potential) -> Array:
    """``log_z``, refused when concrete and not finite (a traced one passes unchecked)."""
    if is_concrete(log_z) and not math.isfinite(value := float(log_z)):
        what = {"nan": "NaN: the energy (or a parameter) is NaN at some states",
                "inf": "+inf: the energy is -inf at some state, so p(x) cannot be normalized",
                "-inf": "-inf: the energy is +inf (or overflows) at every state"}[str(value)]
        raise ValueError(f"log_partition: the exact log Z of {type(potential).__name__} is {what}")
    return log_z


@filter_jit
def _enumerated_log_z(potential: Potential, chunk_size: int) -> Array:
    size, values = math.prod(potential.event_shape), potential.support.values

    def log_term(index):
        x = enumeration.index_to_states(index, values, size).reshape(-1, *potential.event_shape)
        return -jax.vmap(potential.unbatched_energy)(x)

    return enumeration.logsumexp_over_indices(log_term, len(values) ** size, chunk_size)
