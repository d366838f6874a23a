"""``log_partition``: the exact log normalizing constant of any potential that has one."""

from __future__ import annotations

from typing import Any

from jaxtyping import Array

from ebm_ppl.potentials.base import Potential

__all__ = ["log_partition"]


def log_partition(potential: Potential, **options: Any) -> Array:
    """Exact log Z of ``potential``: analytic (Gaussian) or by chunked enumeration.

    Options are the family's (``route``, ``max_terms``, ``chunk_size``). A family without an
    exact log Z, or a state space past ``max_terms`` (default 2^26), raises a ValueError that
    points to :func:`ebm_ppl.ais`.
    """
    if not isinstance(potential, Potential):
        raise TypeError(f"log_partition expects an ebm_ppl.Potential (a model), got {type(potential).__name__} "
                        f"{potential!r:.60}")
    method = getattr(potential, "log_partition", None)
    if method is None:
        raise ValueError(
            f"{type(potential).__name__} has no exact log partition function; estimate it with "
            "ebm_ppl.ais(...)"
        )
    return method(**options)
