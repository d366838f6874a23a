"""Inverse-temperature schedules 0 = beta_0 < beta_1 < ... < beta_K = 1 for annealing."""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike

from ebm_ppl import checks

__all__ = ["default_schedule", "linear_schedule", "validate_schedule", "MIN_TEMPERATURES"]

#: The fewest temperatures :func:`default_schedule` spreads over its three pieces.
MIN_TEMPERATURES = 10


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
