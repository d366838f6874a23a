"""The report's plots, drawn by ArviZ (``arviz_plots``, matplotlib backend).

Trace, rank, ESS (local, quantile and evolution), autocorrelation, energy/BFMI, pair plots with
divergences, posterior densities, sampler statistics and the distribution of R-hat and ESS over
all coordinates are ArviZ's own plots of the run. This module only chooses what to show and
prepares it: one scalar variable per chosen quantity (``lp``, ``x[5]``, ...), the running mean of a
0/1 coordinate for its trace, and ties broken at random for the rank plots of discrete values
(ArviZ's ranks break ties by position, which would rank whole chains of a 0/1 pixel apart).

``arviz_plots`` draws through pyplot; each figure is taken out of pyplot's list once drawn and
put on an Agg canvas, so the user's figures and interactive state are left as they were.
"""

from __future__ import annotations

from typing import Callable, Sequence

import arviz as az
import arviz_plots as azp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from arviz_plots.plots.combine import combine_plots
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ebm_ppl.diagnostics import schema
from ebm_ppl.diagnostics.figures import is_binary
from ebm_ppl.diagnostics.rows import is_constant
from ebm_ppl.diagnostics.summary import Diagnostics

__all__ = ["MAX_PAIR_DIMENSIONS", "draw", "focus_data", "series", "pair_quantities", "trace",
           "rank", "ess", "autocorr", "energy", "pair", "densities", "sampler_stats", "convergence"]

#: Pair plots and densities show every coordinate up to this many, else the worst-mixing ones.
MAX_PAIR_DIMENSIONS = 8


def draw(make: Callable[[], azp.PlotCollection]) -> Figure:
    """The matplotlib figure of ``make()`` (an ``arviz_plots`` call), detached from pyplot."""
    before = set(plt.get_fignums())
    try:
        with plt.ioff(), np.errstate(divide="ignore", invalid="ignore"):  # statistics of constant draws
            fig = make().viz["figure"].item()
    finally:
        for number in set(plt.get_fignums()) - before:
            plt.close(number)
    FigureCanvasAgg(fig)
    return fig


def series(data: xr.DataTree, diag: Diagnostics, quantity: str) -> np.ndarray:
    """Draws of one quantity of ``diag``'s table as a float array ``(chain, draw)``."""
    group, var, index = diag.locations[quantity]
    values = np.asarray(data[group][var].transpose("chain", "draw", ...).values)
    return values[(slice(None), slice(None), *index)].astype(float)


def _break_ties(values: np.ndarray) -> np.ndarray:
    """``values`` plus a fixed-seed jitter below half the gap between distinct values, where
    there are ties: the order is kept and ties are ranked at random."""
    distinct = np.unique(values[np.isfinite(values)])
    if distinct.size == values.size:
        return values
    gap = float(np.min(np.diff(distinct))) if distinct.size > 1 else 1.0
    return values + np.random.default_rng(0).uniform(0.0, 0.5 * gap, size=values.shape)


def focus_data(data: xr.DataTree, diag: Diagnostics, quantities: Sequence[str], *,
               prepare: Callable[[str, np.ndarray], tuple[str, np.ndarray]] | None = None) -> xr.DataTree:
    """A DataTree whose ``posterior`` holds one ``(chain, draw)`` variable per quantity, named by
    its label (``prepare(label, values) -> (name, values)`` may change both), and whose
    ``sample_stats`` keeps ``diverging`` where the run has it (for ArviZ's divergence marks)."""
    posterior = {}
    for quantity in quantities:
        name, values = quantity, series(data, diag, quantity)
        if prepare is not None:
            name, values = prepare(name, values)
        posterior[name.replace("/", "\u2215")] = values  # "/" separates a DataTree's paths
    groups = {"posterior": posterior}
    stats = schema.stats(data)
    if stats is not None and "diverging" in stats:
        groups["sample_stats"] = {"diverging": stats["diverging"].transpose("chain", "draw").values.astype(bool)}
    return az.from_dict(groups)


def _running_mean(name: str, values: np.ndarray) -> tuple[str, np.ndarray]:
    if not is_binary(values):
        return name, values
    return f"{name} running mean", np.cumsum(values, axis=1) / np.arange(1, values.shape[1] + 1)


def trace(data, diag: Diagnostics, quantities: Sequence[str]) -> Figure | None:
    """``plot_trace_dist`` of the quantities (divergences marked); with 0/1 coordinates,
    ``plot_trace`` of their running means (a 0/1 trace shows nothing)."""
    if not quantities:
        return None
    binary = any(is_binary(series(data, diag, q)) for q in quantities)
    focus = focus_data(data, diag, quantities, prepare=_running_mean if binary else None)
    return draw(lambda: azp.plot_trace(focus) if binary else azp.plot_trace_dist(focus))


def rank(data, diag: Diagnostics, quantities: Sequence[str]) -> Figure | None:
    """``plot_rank`` (rank ECDF differences with simultaneous envelopes), ties broken at random."""
    if not quantities:
        return None
    focus = focus_data(data, diag, quantities, prepare=lambda n, v: (n, _break_ties(v)))
    return draw(lambda: azp.plot_rank(focus))


def ess(data, diag: Diagnostics, quantities: Sequence[str]) -> Figure | None:
    """Local and quantile ESS and ESS evolution (``plot_ess``, ``plot_ess_evolution``) side by
    side, the threshold ``diag.min_ess`` dashed."""
    if not quantities:
        return None
    focus = focus_data(data, diag, quantities)
    plots = [(azp.plot_ess, {"kind": "local", "min_ess": diag.min_ess}),
             (azp.plot_ess, {"kind": "quantile", "min_ess": diag.min_ess}),
             (azp.plot_ess_evolution, {"min_ess": diag.min_ess})]
    return draw(lambda: combine_plots(focus, plots, plot_names=["local", "quantile", "evolution"]))


def autocorr(data, diag: Diagnostics, quantities: Sequence[str]) -> Figure | None:
    """``plot_autocorr`` of each chain."""
    if not quantities:
        return None
    focus = focus_data(data, diag, quantities)
    return draw(lambda: azp.plot_autocorr(focus, max_lag=min(100, diag.num_draws - 1)))


def energy(data, diag: Diagnostics) -> Figure | None:
    """``plot_energy``: marginal and transition energy distributions and BFMI per chain (HMC/NUTS
    runs, whose ``sample_stats.energy`` is the Hamiltonian); None without one."""
    if diag.bfmi is None:
        return None
    return draw(lambda: azp.plot_energy(data, threshold=diag.min_bfmi))


def pair_quantities(data, diag: Diagnostics, worst: Sequence[str]) -> list[str]:
    """The coordinates a pair plot and the densities show: every one up to
    :data:`MAX_PAIR_DIMENSIONS` coordinates, else ``worst``; constant and 0/1 ones left out."""
    rows = diag.coordinates if len(diag.coordinates) <= MAX_PAIR_DIMENSIONS else [
        r for r in diag.coordinates if r["quantity"] in worst]
    return [r["quantity"] for r in rows
            if not is_constant(r) and not is_binary(series(data, diag, r["quantity"]))]


def pair(data, diag: Diagnostics, quantities: Sequence[str]) -> Figure | None:
    """``plot_pair`` of the quantities, divergent transitions marked; None for fewer than two."""
    if len(quantities) < 2:
        return None
    focus = focus_data(data, diag, quantities)
    with az.rc_context({"plot.max_subplots": len(quantities) ** 2}):  # ArviZ's default cap is 40 panels
        side = min(1.6, 11 / len(quantities))
        return draw(lambda: azp.plot_pair(
            focus, marginal=True, visuals={"divergence": True, "scatter": {"size": 4}},
            figure_kwargs={"figsize": (side * len(quantities), side * len(quantities))}))


def densities(data, diag: Diagnostics, quantities: Sequence[str]) -> Figure | None:
    """``plot_dist``: the marginal posterior density of each quantity (all chains pooled)."""
    if not quantities:
        return None
    return draw(lambda: azp.plot_dist(focus_data(data, diag, quantities)))


def sampler_stats(data) -> Figure | None:
    """``plot_trace`` of the per-draw sampler statistics (acceptance rate, step size, tree depth,
    ...; :func:`ebm_ppl.diagnostics.schema.sampler_stat_names`); None without any."""
    names = schema.sampler_stat_names(data)
    if not names:
        return None
    ds = schema.stats(data)[names]
    return draw(lambda: azp.plot_trace(az.from_dict({"posterior": {n: ds[n].transpose("chain", "draw").values
                                                                for n in names}})))


def convergence(data, diag: Diagnostics) -> Figure | None:
    """``plot_convergence_dist``: the ECDFs of R-hat and bulk and tail ESS over every coordinate
    that moves (reference lines at 1.01 and 100 per chain); for runs with more coordinates than a
    pair plot shows."""
    moving = [r for r in diag.coordinates if not is_constant(r)]
    if len(diag.coordinates) <= MAX_PAIR_DIMENSIONS or len(moving) < 2:
        return None
    values = np.stack([series(data, diag, r["quantity"]) for r in moving], axis=-1)
    tree = az.from_dict({"posterior": {"coordinates": values}}, dims={"coordinates": ["coordinate"]})
    return draw(lambda: azp.plot_convergence_dist(tree, diagnostics=["rhat", "ess_bulk", "ess_tail"]))
