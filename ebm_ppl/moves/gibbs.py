"""Exact Gibbs sweeps of many chains at once: block Gibbs where the potential has block
conditionals, systematic-scan site Gibbs for other discrete potentials (binary, spin, categorical).

This is the move CD/PCD (negatives) and AIS's parameter path (transitions) make; ``ep.sample``
runs the same kernels one chain at a time through the kernel table.
"""

from __future__ import annotations

import jax
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.moves.site import site_sweep
from ebm_ppl.potentials.base import Potential
from ebm_ppl.potentials.capabilities import has_block_conditionals

__all__ = ["gibbs_sweep", "gibbs_sweeps", "check_gibbs", "has_gibbs_moves"]


def has_gibbs_moves(potential: Potential) -> bool:
    """Whether ``potential`` has exact Gibbs moves: block conditionals, or a discrete support
    (binary, spin, categorical) for site Gibbs."""
    return has_block_conditionals(potential) or not potential.support.continuous


def check_gibbs(potential: Potential, owner: str, hint: str = "", name: str | None = None) -> None:
    """Refuse, naming ``owner`` and the model (``name``, default ``potential``'s class), a
    potential without Gibbs moves (:func:`has_gibbs_moves`)."""
    if not has_gibbs_moves(potential):
        raise ValueError(f"{owner} need Gibbs moves (block conditionals or a discrete support); "
                         f"{name or type(potential).__name__} (support {potential.support}) has neither{hint}")


def gibbs_sweep(key: PRNGKeyArray, potential: Potential, xs: Array) -> Array:
    """One exact Gibbs sweep of every row of ``xs`` ``(N, *event)``; returns the new rows.

    Block Gibbs draws the whole batch at once (one draw per layer); site Gibbs visits the
    coordinates of each row in order with a key per row.
    """
    if has_block_conditionals(potential):
        key_h, key_x = jax.random.split(key)
        return potential.sample_visible(key_x, potential.sample_hidden(key_h, xs))
    return jax.vmap(lambda k, x: site_sweep(k, potential, x))(jax.random.split(key, xs.shape[0]), xs)


def gibbs_sweeps(key: PRNGKeyArray, potential: Potential, xs: Array, k: int) -> Array:
    """``k`` Gibbs sweeps (:func:`gibbs_sweep`) of every row of ``xs`` ``(N, *event)``, in a
    ``lax.scan``. Raises a ValueError for a potential without Gibbs moves."""
    check_gibbs(potential, "Gibbs sweeps")
    k = checks.non_negative_int(k, "gibbs_sweeps: k")

    def body(xs, key):
        return gibbs_sweep(key, potential, xs), None

    # the loop carries what a sweep returns: float32 states of a float64 Gaussian layer come back float64
    xs = xs.astype(jax.eval_shape(body, xs, key)[0].dtype)
    xs, _ = jax.lax.scan(body, xs, jax.random.split(key, k))
    return xs
