"""The report's figures of a parallel-tempering run: swap acceptance per pair, replica trajectories.

ArviZ has no plot for a ladder of replicas, so these two are ours, drawn on the Agg canvas
(:func:`ebm_ppl.diagnostics.figures.new_figure`) from the statistics
:mod:`ebm_ppl.diagnostics.tempering` reads; both are None for runs of other kernels.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ebm_ppl.diagnostics import schema
from ebm_ppl.diagnostics.figures import new_figure
from ebm_ppl.diagnostics.tempering import TemperingHealth

__all__ = ["swap_acceptance_figure", "replica_figure"]

#: Up to this many chains are named in the legend, and replicas get a panel each.
_MAX_SHOWN = 8


def swap_acceptance_figure(health: TemperingHealth | None) -> Figure | None:
    """The mean swap acceptance of each neighbour pair: one line per chain and their mean, the
    pairs labelled with their betas (averaged over chains), the warning level dashed."""
    if health is None:
        return None
    rates, trips = np.asarray(health.swap_acceptance), health.round_trips
    pairs = np.arange(rates.shape[1])
    fig, axes = new_figure(1, 1, 10, 3.8, dpi=100)
    ax = axes[0, 0]
    chains = [f"chain {c}" for c in range(rates.shape[0])] if rates.shape[0] <= _MAX_SHOWN else "_chains"
    ax.plot(pairs, rates.T, marker="o", linewidth=1, alpha=0.6, label=chains)
    ax.plot(pairs, rates.mean(axis=0), color="k", marker="s", linewidth=2.5, label="mean over chains")
    ax.axhline(health.min_swap_acceptance, color="C3", linestyle="--", linewidth=1,
               label=f"{health.min_swap_acceptance:g}: replicas cannot cross")
    labels = [health.pair_label(i).replace(" (", "\n(") for i in pairs]
    ax.set_xticks(pairs, labels, fontsize="small", rotation=0 if len(pairs) <= 8 else 45)
    ax.set(ylim=(0, 1.02), ylabel="mean swap acceptance",
           title=f"swap acceptance per neighbour pair ({health.num_replicas} replicas)" + ("" if trips is None else
                 f"; round trips per chain during the draws: {' '.join(map(str, trips))}"))
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def replica_figure(data: xr.DataTree, health: TemperingHealth | None) -> Figure | None:
    """Chain 0's replicas over the draws: the rung each replica sits on (``replica`` inverted),
    one panel per replica (at most 8, evenly chosen); on a healthy ladder every line travels
    from the bottom rung to the top and back."""
    stats = schema.stats(data)
    if health is None or stats is None or "replica" not in stats or stats["replica"].ndim != 3:
        return None
    replica = np.asarray(stats["replica"].transpose("chain", "draw", ...).values[0], dtype=int)  # (draw, rung)
    rung_of = np.argsort(replica, axis=-1)  # the inverse permutation: rung_of[t, k] is replica k's rung
    top = rung_of.shape[1] - 1
    shown = np.unique(np.linspace(0, top, min(top + 1, _MAX_SHOWN)).round().astype(int))
    ends = ["bottom", "top"] if health.betas is None else [f"β {health.betas[0][0]:.3g}", "β 1"]
    fig, axes = new_figure(len(shown), 1, 10, 0.8 + 0.55 * len(shown), dpi=100)
    for ax, k in zip(axes[:, 0], shown):
        ax.plot(rung_of[:, k], drawstyle="steps-post", linewidth=0.8, color=f"C{k % 10}")
        ax.set_yticks([0, top], ends, fontsize="x-small")
        ax.set_ylabel(f"replica {k}", rotation=0, ha="right", va="center", fontsize="small")
        ax.set_xlim(0, rung_of.shape[0] - 1)
        ax.label_outer()
    about = [f"{len(shown)} of {top + 1} replicas"] if len(shown) <= top else []
    about += [] if health.round_trips is None else [f"{health.round_trips[0]} round trips during the draws"]
    ax.set_xlabel("draw")
    axes[0, 0].set_title("replica trajectories of chain 0: the rung each replica sits on"
                         + (f" ({'; '.join(about)})" if about else ""))
    return fig
