"""Log-likelihoods from a log Z estimate, and the sandwich of forward and reverse AIS."""

from __future__ import annotations

import dataclasses
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ebm_ppl.partition.estimate import AISEstimate
from ebm_ppl.potentials.base import Potential, check_potential, is_concrete

__all__ = ["log_likelihood", "Sandwich", "sandwich", "check_log_z"]


def check_log_z(log_z: float | ArrayLike | AISEstimate, owner: str) -> Array:
    """``log_z`` (a real number, a 0-d array, traced or not, or an :class:`AISEstimate`) as a 0-d
    array. TypeError for anything else (a string, a list); ValueError for a complex, non-scalar or,
    when concrete, NaN or infinite value (an AIS run whose weights were all NaN has a NaN log_z)."""
    value = log_z.log_z if isinstance(log_z, AISEstimate) else log_z
    numeric = (numbers.Number, np.ndarray, np.generic, jax.Array)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numeric):
        raise TypeError(f"{owner}: log_z must be a number, a 0-d array or an AISEstimate, got "
                        f"{type(value).__name__} {value!r:.40}")
    value = jnp.asarray(value)
    if not (jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)):
        raise ValueError(f"{owner}: log_z must be a real number, got dtype {value.dtype}")
    if value.shape != ():
        raise ValueError(f"{owner}: log_z must be a scalar (one log normalizer), got shape {value.shape}")
    if is_concrete(value) and not bool(jnp.isfinite(value)):
        source = " (the AIS estimate is not finite: see its warning)" if isinstance(log_z, AISEstimate) else ""
        raise ValueError(f"{owner}: log_z is {float(value)}{source}; log Z must be finite")
    return value


def log_likelihood(potential: Potential, x: ArrayLike, log_z: float | AISEstimate) -> Array:
    """``log p(x) = -E(x) - log Z`` per example; ``(*batch, *event_shape) -> (*batch,)``.

    ``log_z`` is a finite scalar or an :class:`AISEstimate` (:func:`check_log_z`)."""
    potential = check_potential(potential, "log_likelihood")
    value = check_log_z(log_z, "log_likelihood")
    return -potential.energy(x) - value


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
    if not (isinstance(forward, AISEstimate) and isinstance(reverse, AISEstimate)):
        raise TypeError(f"sandwich takes two AISEstimates (from ais and reverse_ais), got "
                        f"{type(forward).__name__} and {type(reverse).__name__}")
    if forward.bound != "lower" or "upper" not in reverse.bound:
        raise ValueError("sandwich takes a forward estimate (ais) and a reverse one (reverse_ais)")
    ll_upper = ll_lower = None
    if x is not None:
        if potential is None:
            raise ValueError("sandwich: pass the potential together with x")
        mean_neg_energy = float(np.mean(-np.asarray(potential.energy(x))))
        ll_upper, ll_lower = mean_neg_energy - forward.log_z, mean_neg_energy - reverse.log_z
    return Sandwich(forward.log_z, reverse.log_z, forward.stderr, reverse.stderr, ll_upper, ll_lower)
