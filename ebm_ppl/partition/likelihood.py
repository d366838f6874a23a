"""Log-likelihoods from a log Z estimate, and the sandwich of forward and reverse AIS."""

from __future__ import annotations

import dataclasses

import numpy as np
from jaxtyping import Array, ArrayLike

from ebm_ppl.partition.estimate import AISEstimate
from ebm_ppl.potentials.base import Potential, check_potential

__all__ = ["log_likelihood", "Sandwich", "sandwich"]


def log_likelihood(potential: Potential, x: ArrayLike, log_z: float | AISEstimate) -> Array:
    """``log p(x) = -E(x) - log Z`` per example; ``(*batch, *event_shape) -> (*batch,)``."""
    value = log_z.log_z if isinstance(log_z, AISEstimate) else log_z
    return -check_potential(potential, "log_likelihood").energy(x) - value


@dataclasses.dataclass(frozen=True)
class Sandwich:
    """Lower and upper estimates of log Z and of the mean log-likelihood of some data.

    The forward (lower) estimate of log Z gives the upper estimate of the log-likelihood and vice
    versa. ``gap`` is ``log_z_upper - log_z_lower``; a negative gap beyond the error bars means
    at least one run was too short.
    """

    log_z_lower: float
    log_z_upper: float
    stderr_lower: float
    stderr_upper: float
    mean_log_likelihood_upper: float | None
    mean_log_likelihood_lower: float | None

    @property
    def gap(self) -> float:
        return self.log_z_upper - self.log_z_lower

    def __str__(self) -> str:
        text = (f"log Z in [{self.log_z_lower:.4f} ± {self.stderr_lower:.4f}, "
                f"{self.log_z_upper:.4f} ± {self.stderr_upper:.4f}] (gap {self.gap:.4f} nats)")
        if self.mean_log_likelihood_lower is not None:
            text += (f"; mean log-likelihood in [{self.mean_log_likelihood_lower:.4f}, "
                     f"{self.mean_log_likelihood_upper:.4f}]")
        return text


def sandwich(forward: AISEstimate, reverse: AISEstimate, potential: Potential | None = None,
             x: ArrayLike | None = None) -> Sandwich:
    """Combine a forward (lower) and a reverse (upper) estimate; with ``x``, bracket its mean LL."""
    if forward.bound != "lower" or "upper" not in reverse.bound:
        raise ValueError("sandwich takes a forward estimate (ais) and a reverse one (reverse_ais)")
    ll_upper = ll_lower = None
    if x is not None:
        if potential is None:
            raise ValueError("sandwich: pass the potential together with x")
        mean_neg_energy = float(np.mean(-np.asarray(potential.energy(x))))
        ll_upper, ll_lower = mean_neg_energy - forward.log_z, mean_neg_energy - reverse.log_z
    return Sandwich(forward.log_z, reverse.log_z, forward.stderr, reverse.stderr, ll_upper, ll_lower)
