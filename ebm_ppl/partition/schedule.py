"""Inverse-temperature schedules 0 = beta_0 < beta_1 < ... < beta_K = 1 for annealing."""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike

from ebm_ppl import checks

__all__ = ["default_schedule", "linear_schedule", "power_schedule", "equal_variance_schedule", "validate_schedule",
           "padded_schedule", "MIN_TEMPERATURES", "ADAPTIVE", "PILOT_TEMPERATURES", "PILOT_CHAINS", "MIN_BUCKET"]

#: The ``schedule`` value that asks ``ep.ais`` for :func:`equal_variance_schedule` from a pilot run.
ADAPTIVE = "adaptive"
#: The pilot run's temperatures (linear) and chains, at most (fewer if the run itself is smaller).
PILOT_TEMPERATURES = 128
PILOT_CHAINS = 64

#: The fewest temperatures :func:`default_schedule` spreads over its three pieces.
MIN_TEMPERATURES = 10
#: Schedules are padded to a power of two >= this (:func:`padded_schedule`).
MIN_BUCKET = 16


def default_schedule(num_temperatures: int) -> np.ndarray:
    """Piecewise-linear schedule, denser near beta = 1 (Salakhutdinov & Murray 2008, Sec. 4.2).

    Their 15,000 temperatures spend 1,000 on [0, 0.5], 4,000 on [0.5, 0.9] and 10,000 on
    [0.9, 1]; the same proportions are used for any ``num_temperatures`` (>= 10), since the free
    energy changes fastest near the target. Returns ``num_temperatures + 1`` values from 0 to 1.
    """
    k = checks.int_at_least(num_temperatures, "num_temperatures", MIN_TEMPERATURES)
    n1 = max(1, round(k / 15))
    n2 = max(1, round(4 * k / 15))
    n3 = k - n1 - n2
    return np.concatenate([
        np.linspace(0.0, 0.5, n1, endpoint=False),
        np.linspace(0.5, 0.9, n2, endpoint=False),
        np.linspace(0.9, 1.0, n3 + 1),
    ])


def linear_schedule(num_temperatures: int) -> np.ndarray:
    """``num_temperatures + 1`` evenly spaced values from 0 to 1."""
    return np.linspace(0.0, 1.0, checks.positive_int(num_temperatures, "num_temperatures") + 1)


def power_schedule(num_temperatures: int, power: float = 4.0) -> np.ndarray:
    """``beta_k = (k / K)^power`` for k = 0..K: dense near 0, where a likelihood-tempered path
    (prior to posterior) changes fastest (the log-likelihood of many observations is large)."""
    k = checks.positive_int(num_temperatures, "num_temperatures")
    return np.linspace(0.0, 1.0, k + 1) ** checks.positive_float(power, "power")


def equal_variance_schedule(pilot_betas: np.ndarray, increment_var: np.ndarray, num_temperatures: int) -> np.ndarray:
    """``num_temperatures + 1`` inverse temperatures from 0 to 1 at which every AIS step adds the
    same variance to the log-weights, from a pilot run's per-step increment variances.

    A step from beta to beta + d adds about ``d^2 Var_beta[U]`` (``U = d log f_beta / d beta``),
    so equal steps of the thermodynamic length ``Lambda(beta) = integral sqrt(Var_beta[U])``
    make the variances equal (and minimize their sum for a fixed number of steps: the schedule
    of constant "speed" along the path). The pilot's k-th step gives ``sqrt(increment_var[k])``
    of length between ``pilot_betas[k]`` and ``pilot_betas[k + 1]``; the new temperatures sit at
    equal steps of the piecewise-linear ``Lambda``. A floor of 1e-3 of the mean rate keeps
    ``Lambda`` strictly increasing where the pilot saw no variance.
    """
    k = checks.int_at_least(num_temperatures, "num_temperatures", 1)
    rate = np.sqrt(np.maximum(np.nan_to_num(np.asarray(increment_var, np.float64)), 0.0))
    rate = rate + 1e-3 * max(float(rate.mean()), 1e-12)
    length = np.concatenate([[0.0], np.cumsum(rate)])
    betas = np.interp(np.linspace(0.0, length[-1], k + 1), length, np.asarray(pilot_betas, np.float64))
    betas[0], betas[-1] = 0.0, 1.0
    return betas


def validate_schedule(schedule: ArrayLike) -> np.ndarray:
    """Check a user schedule: 1-d, finite, starts at 0, ends at 1, strictly increasing."""
    try:
        values = np.asarray(schedule)
    except ValueError as exc:  # ragged
        raise ValueError(f"schedule must be a 1-d array of numbers ({exc})") from None
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise ValueError(f"schedule must be a 1-d array of real numbers, got dtype {values.dtype}")
    betas = values.astype(np.float64)
    if betas.ndim != 1 or betas.size < 2:
        raise ValueError(f"schedule must be a 1-d array of at least 2 values, got shape {betas.shape}")
    if not np.all(np.isfinite(betas)):
        raise ValueError("schedule contains NaN or inf")
    if betas[0] != 0.0 or betas[-1] != 1.0:
        raise ValueError(f"schedule must start at 0 and end at 1, got {betas[0]:g} ... {betas[-1]:g}")
    if not np.all(np.diff(betas) > 0):
        i = int(np.argmin(np.diff(betas)))
        raise ValueError(f"schedule must be strictly increasing; beta[{i}]={betas[i]:g} >= beta[{i + 1}]={betas[i + 1]:g}")
    return betas


def padded_schedule(betas: np.ndarray) -> tuple[np.ndarray, int]:
    """``betas`` (K + 1 values) padded with its last value to ``bucket + 1`` values, bucket the
    next power of two >= max(K, :data:`MIN_BUCKET`); and K. Annealing loops run K steps: the
    padding is never used, it only keeps the array's shape (and so the compiled program) common
    to many K."""
    k = len(betas) - 1
    bucket = max(MIN_BUCKET, 1 << (k - 1).bit_length())
    return np.concatenate([betas, np.full(bucket - k, betas[-1])]), k
