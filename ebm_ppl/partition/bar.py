"""Bennett's acceptance ratio (BAR) between neighbouring rungs of a ladder, and log Z along it.

For two unnormalized densities ``exp(-E_0)`` and ``exp(-E_1)`` with draws from each, the forward
works ``w_F = E_1(x) - E_0(x)``, x ~ p_0, and reverse works ``w_R = E_0(x) - E_1(x)``, x ~ p_1,
give the free-energy difference ``dF = log Z_0 - log Z_1`` as the root of (Bennett 1976, equal
sample sizes)

    sum_F f(w_F - dF) = sum_R f(w_R + dF),    f(t) = 1 / (1 + e^t),

the minimum-variance estimator among those using both directions. The left side increases in dF
and the right decreases, so the root is found by bisection (robust where a Newton step would
overflow). Parallel tempering has draws at every rung, so ``log Z(1) = log Z(beta_0) - sum_i
dF_i`` along the ladder (:func:`ladder_log_partition`); this is how ``ep.training.pt_pcd`` reports
a live log Z during training, as RestrictedBoltzmannMachines.jl's PTT does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array

__all__ = ["bar_log_ratio", "ladder_log_partition"]


def bar_log_ratio(w_forward: Array, w_reverse: Array, num_iterations: int = 64) -> Array:
    """``log Z_1 - log Z_0`` by BAR from works ``w_forward`` ``(N,)`` and ``w_reverse`` ``(M,)``
    (``N`` and ``M`` may differ: the sample-size term ``log(N / M)`` is included); any leading
    batch axes are vmapped. Traced, ``num_iterations`` bisection steps."""
    if w_forward.ndim > 1:
        return jax.vmap(lambda f, r: bar_log_ratio(f, r, num_iterations))(w_forward, w_reverse)
    shift = jnp.log(w_forward.shape[0] / w_reverse.shape[0])

    def excess(df):  # log sum_F f(w_F - df + shift) - log sum_R f(w_R + df - shift): increasing in df
        left = jax.nn.logsumexp(-jax.nn.softplus(w_forward - df + shift))
        right = jax.nn.logsumexp(-jax.nn.softplus(w_reverse + df - shift))
        return left - right

    finite = jnp.concatenate([w_forward, w_reverse])
    span = jnp.max(jnp.abs(jnp.where(jnp.isfinite(finite), finite, 0.0))) + 50.0
    low, high = -span + shift, span + shift

    def bisect(_, bounds):
        low, high = bounds
        mid = 0.5 * (low + high)
        above = excess(mid) > 0
        return jnp.where(above, low, mid), jnp.where(above, mid, high)

    low, high = jax.lax.fori_loop(0, num_iterations, bisect, (low, high))
    return -0.5 * (low + high)


def ladder_log_partition(energies: Array, reference_log_z: Array) -> tuple[Array, Array]:
    """log Z at the top of a ladder from draws at every rung.

    Args:
        energies: ``(N, R, 3)``: for draw n of rung r its energies at the rung below, its own and
            the rung above (as :func:`ebm_ppl.moves.ladders.pair_log_acceptance`
            returns them per chain).
        reference_log_z: log Z of the bottom rung.

    Returns:
        ``(log Z of the top rung, the BAR log ratios of the R - 1 pairs)``.
    """
    forward = energies[:, :-1, 2] - energies[:, :-1, 1]  # rung i's draws: E_{i+1} - E_i
    reverse = energies[:, 1:, 0] - energies[:, 1:, 1]  # rung i+1's draws: E_i - E_{i+1}
    ratios = bar_log_ratio(forward.T, reverse.T)
    return reference_log_z + jnp.sum(ratios), ratios
