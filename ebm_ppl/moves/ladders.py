"""Ladders of inverse temperatures and the replica-exchange swap, shared by parallel tempering
(:mod:`ebm_ppl.kernels.replica_exchange`) and PT-PCD (:mod:`ebm_ppl.training.tempered`); no BlackJAX.

A ladder is ``(R,)`` ascending inverse temperatures ending at beta = 1 (the target) of a tempered
family (:mod:`ebm_ppl.moves.tempering`). Neighbours ``(i, i + 1)`` swap their replicas with the
exact Metropolis probability ``min(1, exp(E_i(x_i) + E_{i+1}(x_{i+1}) - E_i(x_{i+1}) -
E_{i+1}(x_i)))`` (:func:`pair_log_acceptance`), on even pairs at even steps and odd pairs at odd
steps (:func:`swap_sources`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.moves.tempering import Tempering

__all__ = ["ladder", "ladder_values", "ladder_tuple", "check_ladder", "adapt_ladder", "pair_log_acceptance",
           "swap_sources", "exchange"]


def ladder(num_replicas: int, min_beta: float = 0.1, *, reference: bool = True, dtype=None) -> Array:
    """A geometric ladder ``(R,)`` ending at beta = 1: ``min_beta ** (k / (n - 1))`` for the
    ``n`` rungs above the reference, and beta = 0 first when ``reference`` (a tempered family
    with a proper beta = 0, such as the AIS base); ``reference=False`` starts at ``min_beta``."""
    num_replicas = checks.int_at_least(num_replicas, "ladder: num_replicas", 2)
    min_beta = checks.positive_float(min_beta, "ladder: min_beta")
    if min_beta >= 1:
        raise ValueError(f"ladder: min_beta must be below 1, got {min_beta}")
    dtype = jnp.result_type(float) if dtype is None else dtype
    return jnp.asarray(ladder_values(num_replicas, min_beta, reference), dtype)


def ladder_values(num_replicas: int, min_beta: float, reference: bool) -> tuple[float, ...]:
    """:func:`ladder`'s betas as Python floats (for static settings; arguments unchecked)."""
    n = num_replicas - 1 if reference else num_replicas
    upper = [min_beta ** (1.0 - k / (n - 1)) for k in range(n)] if n > 1 else [1.0]
    upper[-1] = 1.0
    return tuple([0.0] * reference + upper)


def ladder_tuple(value: Any, name: str) -> tuple[float, ...]:
    """A ladder given by a user as a tuple of Python floats (hashable, so a static setting under
    jit); ValueError naming ``name`` unless it is a 1-d sequence of real numbers. Its order and
    ends are checked against a tempered family by :func:`check_ladder`."""
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - any unconvertible object gets the same message
        array = np.asarray(None)
    if array.ndim != 1 or array.dtype == bool or not np.issubdtype(array.dtype, np.number) \
            or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a 1-d sequence of real numbers (the ladder), got {value!r}")
    return tuple(float(v) for v in array)


def check_ladder(betas: ArrayLike, family: Tempering) -> Array:
    """``betas`` as an array ``(R,)`` after checking it is a ladder: R >= 2, real, finite,
    strictly ascending, the last 1, the first >= 0 (> 0 where the family has no proper beta = 0).
    Traced values are checked for shape only."""
    if isinstance(betas, jax.core.Tracer):
        b = betas
    else:
        b = np.asarray(betas)
        if b.dtype == bool or not (np.issubdtype(b.dtype, np.integer) or np.issubdtype(b.dtype, np.floating)):
            raise ValueError(f"parallel tempering: betas must be real numbers, got dtype {b.dtype}")
    if b.ndim != 1 or b.shape[0] < 2:
        raise ValueError(f"parallel tempering: betas must be a ladder of shape (R,) with R >= 2, got shape {b.shape}")
    if not isinstance(b, jax.core.Tracer):
        if not np.all(np.isfinite(b)) or not np.all(np.diff(b) > 0):
            raise ValueError(f"parallel tempering: betas must be finite and strictly ascending, got {b.tolist()}")
        if float(b[-1]) != 1.0:
            raise ValueError(f"parallel tempering: the last beta must be 1 (the target), got {float(b[-1])}")
        if b[0] < 0 or (b[0] == 0 and not family.has_reference):
            need = ">= 0" if family.has_reference else "> 0 (beta = 0 is improper for this family)"
            raise ValueError(f"parallel tempering: the lowest beta must be {need}, got {float(b[0])}")
        b = jnp.asarray(b, jnp.result_type(float))
    return b


def adapt_ladder(betas: Array, swap_acceptance: Array, floor: float = 1e-3) -> Array:
    """A ladder with the same ends on which every neighbour pair has the same rejection rate,
    from the mean acceptance probabilities ``(R - 1,)`` measured on ``betas`` ``(R,)``.

    Syed, Bouchard-Côté, Deligiannidis & Doucet 2022 (JRSS B; arXiv 2019): the rejection rates ``r_i`` sum to the communication barrier
    ``Lambda(beta)``, piecewise linear between the rungs; the new rungs sit at equal steps of
    ``Lambda``. ``floor`` keeps ``Lambda`` strictly increasing where a pair never rejects."""
    rejection = jnp.clip(1.0 - swap_acceptance, floor, 1.0)
    barrier = jnp.concatenate([jnp.zeros((1,), betas.dtype), jnp.cumsum(rejection).astype(betas.dtype)])
    levels = jnp.linspace(0.0, 1.0, betas.shape[0], dtype=betas.dtype) * barrier[-1]
    new = jnp.interp(levels, barrier, betas)
    return new.at[0].set(betas[0]).at[-1].set(betas[-1])


def pair_log_acceptance(family: Tempering, positions: Array, betas: Array) -> tuple[Array, Array]:
    """The log Metropolis ratio of swapping the replicas ``positions`` ``(R, *event)`` of each
    neighbour pair of rungs ``betas`` ``(R,)``: ``(log ratio (R - 1,), energies (R, 3))``; row r of
    ``energies`` holds ``x_r``'s energy at the rung below r, at r and above r (clipped at the ends)."""
    num = betas.shape[0]
    rungs = jnp.arange(num)
    around = betas[jnp.stack([jnp.maximum(rungs - 1, 0), rungs, jnp.minimum(rungs + 1, num - 1)], axis=1)]
    energies = jax.vmap(family.energies)(positions, around)  # (R, 3): at the rung below, its own, above
    own = energies[:, 1]
    log_a = own[:-1] + own[1:] - energies[1:, 0] - energies[:-1, 2]
    return jnp.where(jnp.isnan(log_a), -jnp.inf, log_a), energies


def swap_sources(key: PRNGKeyArray, log_acceptance: Array, step: Array) -> tuple[Array, Array]:
    """The even-odd swap move from the pairs' log Metropolis ratios ``(R - 1,)``: pairs (i, i + 1)
    with i of ``step``'s parity are proposed and each accepted with its probability. Returns
    ``(source (R,), swapped (R - 1,))``: rung r takes the replica of rung ``source[r]``."""
    num = log_acceptance.shape[0] + 1
    attempt = jnp.arange(num - 1) % 2 == step % 2
    uniforms = jax.random.uniform(key, (num - 1,), log_acceptance.dtype)
    swapped = attempt & (jnp.log(uniforms) < log_acceptance)
    # disjoint pairs: rung i takes i + 1's replica if pair i swapped, i - 1's if pair i - 1 did
    up, down = jnp.pad(swapped, (0, 1)), jnp.pad(swapped, (1, 0))
    return jnp.arange(num) + up.astype(jnp.int32) - down.astype(jnp.int32), swapped


def exchange(values: Any, swapped: Array) -> Any:
    """Every leaf of ``values`` (rung axis first, ``(R, *batch, ...)``) with the neighbours of each
    swapped pair exchanged: ``swapped`` ``(R - 1, *batch)`` from :func:`swap_sources` (disjoint
    pairs). The same as indexing by its ``source``, by selects instead of a gather: for PT-PCD's
    (rungs, chains) arrays a batched gather is slow on CPU (a 64x20 epoch with 8 rungs x 100
    chains: 4.4 -> 3.6 ms, Intel Xeon). Parallel tempering's kernel, vmapped over chains from
    outside, gathers its few rungs as fast either way."""
    up = jnp.concatenate([swapped, jnp.zeros_like(swapped[:1])])  # rung r takes r + 1's
    down = jnp.concatenate([jnp.zeros_like(swapped[:1]), swapped])  # rung r takes r - 1's

    def one(a):
        shape = up.shape + (1,) * (a.ndim - up.ndim)
        above = jnp.concatenate([a[1:], a[-1:]])
        below = jnp.concatenate([a[:1], a[:-1]])
        return jnp.where(up.reshape(shape), above, jnp.where(down.reshape(shape), below, a))

    return jax.tree.map(one, values)
