"""Bennett's acceptance ratio (BAR) between neighbouring rungs of a ladder, and log Z along it.

For two unnormalized densities ``exp(-E_0)`` and ``exp(-E_1)`` with draws from each, the forward
works ``w_F = E_1(x) - E_0(x)``, x ~ p_0, and reverse works ``w_R = E_0(x) - E_1(x)``, x ~ p_1,
give the free-energy difference ``dF = log Z_0 - log Z_1`` as the root of (Bennett 1976, equal
sample sizes)

    sum_F f(w_F - dF) = sum_R f(w_R + dF),    f(t) = 1 / (1 + e^t),

the minimum-variance estimator among those using both directions. The left side increases in dF
and the right decreases, so the root is found by Newton's method inside a bracket that every
step narrows (a step that would leave the bracket bisects it instead, so it cannot diverge or
overflow); it converges in a handful of steps where the works overlap, and the root is solved once
per PT-PCD update. Parallel tempering has draws at every rung, so ``log Z(1) = log Z(beta_0) - sum_i
dF_i`` along the ladder (:func:`ladder_log_partition`); this is how ``ep.training.pt_pcd`` reports
a live log Z during training, as RestrictedBoltzmannMachines.jl's PTT does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array

__all__ = ["bar_log_ratio", "ladder_log_partition"]


def bar_log_ratio(w_forward: Array, w_reverse: Array, max_iterations: int = 64) -> Array:
    """``log Z_1 - log Z_0`` by BAR from works ``w_forward`` ``(N,)`` and ``w_reverse`` ``(M,)``
    (``N`` and ``M`` may differ: the sample-size term ``log(N / M)`` is included); any leading
    batch axes are vmapped. Traced: safeguarded Newton steps, each keeping a bracket of the root
    and bisecting it where a Newton step would leave it, until a step moves the root by less than
    ``1e-6 (1 + |root|)`` (a handful of steps for overlapping works) or ``max_iterations``."""
    if w_forward.ndim > 1:
        return jax.vmap(lambda f, r: bar_log_ratio(f, r, max_iterations))(w_forward, w_reverse)
    shift = jnp.log(w_forward.shape[0] / w_reverse.shape[0])

    def excess(df):  # log sum_F f(w_F - df + shift) - log sum_R f(w_R + df - shift): increasing in df
        left = jax.nn.logsumexp(-jax.nn.softplus(w_forward - df + shift))
        right = jax.nn.logsumexp(-jax.nn.softplus(w_reverse + df - shift))
        return left - right

    works = jnp.concatenate([w_forward, w_reverse])
    span = jnp.max(jnp.abs(jnp.where(jnp.isfinite(works), works, 0.0))) + 50.0
    low, high = -span + shift, span + shift
    # start between the two Jensen bounds -<w_R> <= dF <= <w_F> (means of the finite works)
    mean = lambda w: jnp.mean(jnp.where(jnp.isfinite(w), w, 0.0))  # noqa: E731
    start = jnp.clip(0.5 * (mean(w_forward) - mean(w_reverse)), low, high)

    def newton(state):
        i, low, high, df, _ = state
        value, slope = jax.value_and_grad(excess)(df)
        low, high = jnp.where(value <= 0, df, low), jnp.where(value <= 0, high, df)
        step = df - value / slope
        inside = (step >= low) & (step <= high)  # False for a NaN step too
        new = jnp.where(inside, step, 0.5 * (low + high))
        return i + 1, low, high, new, jnp.abs(new - df) > 1e-6 * (1 + jnp.abs(df))

    def running(state):
        return (state[0] < max_iterations) & state[4]

    state = jax.lax.while_loop(running, newton, (jnp.zeros((), jnp.int32), low, high, start, jnp.array(True)))
    return -state[3]


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
