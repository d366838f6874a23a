"""Parallel tempering's health, from the ``sample_stats`` of a run: swap acceptance and round trips.

``ep.sample(..., "parallel_tempering")`` stores per draw ``swap_acceptance`` ``(chain, draw,
pair)``, the Metropolis acceptance probability of swapping the replicas of rungs i and i + 1 (every
pair, attempted or not); ``round_trips`` ``(chain, draw)``, the bottom -> top -> bottom journeys
completed since warm-up began; ``replica`` ``(chain, draw, rung)``, which replica sits on each
rung; and ``beta`` ``(chain, draw, rung)``, the ladder (adapted per chain in warm-up, then fixed).

A pair whose mean acceptance in a chain is below :data:`MIN_SWAP_ACCEPTANCE` is a wall: replicas
almost never cross it, so states from the hot end of the ladder never reach beta = 1: the round
trip rate of non-reversible PT, ``1 / (2 + 2 sum_i r_i / (1 - r_i))`` for the pairs' rejection
rates ``r_i`` (Syed et al. 2022), goes to 0 as any ``r_i`` goes to 1.
The means are of acceptance *probabilities* (Rao-Blackwellized), not of 0/1 swap outcomes, so a
short run does not flag a pair by bad luck.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["MIN_SWAP_ACCEPTANCE", "TemperingHealth", "tempering_health"]

#: A pair of neighbouring rungs whose mean swap acceptance in a chain is below this warns.
MIN_SWAP_ACCEPTANCE = 0.05


@dataclass(frozen=True)
class TemperingHealth:
    """Swap rates and round trips of a parallel-tempering run (see :func:`tempering_health`).

    Attributes:
        swap_acceptance: per chain, per neighbour pair (i, i + 1), the mean acceptance probability
            over the draws; ``(chain, pair)`` as nested tuples.
        betas: per chain, the ladder at the last draw ``(chain, rung)``; None where the data have
            no ``beta``.
        round_trips: per chain, the round trips completed during the draws (the count at the last
            draw minus the one at the first; warm-up's are not counted); None without ``round_trips``.
        min_swap_acceptance: pairs below this in some chain warn.
    """

    swap_acceptance: tuple[tuple[float, ...], ...]
    betas: tuple[tuple[float, ...], ...] | None
    round_trips: tuple[int, ...] | None
    min_swap_acceptance: float = MIN_SWAP_ACCEPTANCE

    @property
    def num_replicas(self) -> int:
        return len(self.swap_acceptance[0]) + 1

    @property
    def mean_acceptance(self) -> np.ndarray:
        """``(pair,)`` the mean swap acceptance of each pair over chains and draws."""
        return np.asarray(self.swap_acceptance).mean(axis=0)

    @property
    def ladder(self) -> np.ndarray | None:
        """``(rung,)`` the ladder averaged over chains (each chain adapts its own), or None."""
        return None if self.betas is None else np.asarray(self.betas).mean(axis=0)

    @property
    def low_pairs(self) -> list[int]:
        """The pairs whose mean acceptance is below ``min_swap_acceptance`` in at least one chain."""
        low = np.asarray(self.swap_acceptance) < self.min_swap_acceptance
        return [int(i) for i in np.flatnonzero(low.any(axis=0))]

    def pair_label(self, pair: int, chain: int | None = None) -> str:
        """``"pair 2 (β 0.31–0.5)"``: the pair and its rungs on ``chain``'s ladder (None: the
        ladder averaged over chains)."""
        ladder = self.ladder if chain is None or self.betas is None else self.betas[chain]
        if ladder is None:
            return f"pair {pair}"
        return f"pair {pair} (β {ladder[pair]:.3g}–{ladder[pair + 1]:.3g})"

    def line(self) -> str:
        """One line for the text summary and the report."""
        rates = np.asarray(self.swap_acceptance)
        chain, pair = np.unravel_index(int(np.argmin(rates)), rates.shape)
        text = (f"parallel tempering: {self.num_replicas} replicas, swap acceptance min {rates[chain, pair]:.3f} "
                f"at {self.pair_label(int(pair), int(chain))} in chain {chain}, mean per pair "
                + " ".join(f"{a:.2f}" for a in self.mean_acceptance))
        if self.round_trips is not None:
            text += ", round trips per chain " + " ".join(map(str, self.round_trips))
        return text

    def warning(self) -> str | None:
        """What the verdict says about the pairs below ``min_swap_acceptance`` (None: none is)."""
        low = self.low_pairs
        if not low:
            return None
        pairs = ", ".join(self.pair_label(i) for i in low)
        return (f"parallel tempering: swap acceptance < {self.min_swap_acceptance:g} at {pairs}, which replicas "
                "cannot cross (add rungs there or let warm-up adapt the ladder)")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {"num_replicas": self.num_replicas, "swap_acceptance": [list(r) for r in self.swap_acceptance],
                "betas": None if self.betas is None else [list(b) for b in self.betas],
                "round_trips": None if self.round_trips is None else list(self.round_trips),
                "low_pairs": self.low_pairs, "min_swap_acceptance": self.min_swap_acceptance}


def _per_chain(var: xr.DataArray) -> np.ndarray:
    return np.asarray(var.transpose("chain", "draw", ...).values, dtype=float)


def tempering_health(stats: xr.Dataset | None,
                     min_swap_acceptance: float = MIN_SWAP_ACCEPTANCE) -> TemperingHealth | None:
    """The health of a parallel-tempering run from its ``sample_stats``; None where they have no
    ``swap_acceptance`` of shape ``(chain, draw, pair)`` (not a parallel-tempering run)."""
    if stats is None or "swap_acceptance" not in stats:
        return None
    var = stats["swap_acceptance"]
    if var.ndim != 3 or not {"chain", "draw"} <= set(var.dims) or var.sizes["draw"] == 0:
        return None
    with np.errstate(invalid="ignore"):
        rates = np.nan_to_num(_per_chain(var).mean(axis=1), nan=0.0)  # NaN proposals are rejections
    betas = None
    if "beta" in stats and stats["beta"].ndim == 3:
        betas = tuple(tuple(float(b) for b in chain) for chain in _per_chain(stats["beta"])[:, -1])
    trips = None
    if "round_trips" in stats and set(stats["round_trips"].dims) == {"chain", "draw"}:
        counts = _per_chain(stats["round_trips"])
        trips = tuple(int(n) for n in counts[:, -1] - counts[:, 0])
    return TemperingHealth(tuple(tuple(float(a) for a in chain) for chain in rates), betas, trips,
                           float(min_swap_acceptance))
