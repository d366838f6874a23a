"""Figures of a sampling run's chains (trace, rank, ESS, autocorrelation, sampler statistics) and
of an AIS run's weights, as ``matplotlib.figure.Figure`` objects.

Figures are drawn with the Agg canvas: pyplot, its global figure list and the user's chosen
backend are left untouched. The plotted statistics come from ArviZ (ranks, autocorrelation, ESS
on growing prefixes).
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ebm_ppl.diagnostics.formatting import format_value
from ebm_ppl.diagnostics.summary import Diagnostics

__all__ = ["new_figure", "series", "is_binary", "sampler_stat_names", "trace_rank_figure", "ess_figure",
           "autocorr_figure", "sampler_figure", "ais_health_figure"]


def new_figure(nrows: int, ncols: int, width: float, height: float,
               dpi: float | None = None) -> tuple[Figure, np.ndarray]:
    """A ``width`` x ``height`` inch figure on the Agg canvas and its ``(nrows, ncols)`` axes."""
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def series(data, diag: Diagnostics, quantity: str) -> np.ndarray:
    """Draws of one quantity of ``diag``'s table as a float array ``(chain, draw)``."""
    group, var, index = diag.locations[quantity]
    values = np.asarray(data[group][var].transpose("chain", "draw", ...).values)
    return values[(slice(None), slice(None), *index)].astype(float)


def is_binary(values: np.ndarray) -> bool:
    """Whether every finite value is 0 or 1 (and there is one)."""
    finite = values[np.isfinite(values)]
    return finite.size > 0 and bool(np.all((finite == 0) | (finite == 1)))


def sampler_stat_names(data) -> list[str]:
    """The per-draw ``sample_stats`` other than the energy: acceptance and divergences first."""
    if "sample_stats" not in data.children:
        return []
    names = [n for n, v in data["sample_stats"].data_vars.items()
             if n != "energy" and {"chain", "draw"} <= set(v.dims) and v.ndim == 2]
    first = [n for n in ("acceptance_rate", "diverging") if n in names]
    return first + sorted(n for n in names if n not in first)


def _label_axes(ax, title: str, xlabel: str, ylabel: str | None = None) -> None:
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_xlabel(xlabel, fontsize=8)
    if ylabel is not None:
        ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)


def _title(diag: Diagnostics, quantity: str) -> str:
    row = next(r for r in diag.table if r["quantity"] == quantity)
    return (f"{quantity}   R-hat {format_value('rhat', row['rhat'])}   "
            f"ESS bulk {format_value('ess_bulk', row['ess_bulk'])} / tail {format_value('ess_tail', row['ess_tail'])}")


def trace_rank_figure(data, diag: Diagnostics, focus: list[str]) -> Figure | None:
    """Per quantity of ``focus``: the trace of each chain (running mean for 0/1 values) and the
    rank histogram of each chain (Vehtari et al. 2021); None when ``focus`` is empty."""
    if not focus:
        return None
    fig, axes = new_figure(len(focus), 2, 11, 2.3 * len(focus))
    diverging = _divergent_mask(data)
    for (ax_trace, ax_rank), quantity in zip(axes, focus):
        values = series(data, diag, quantity)
        num_chains, num_draws = values.shape
        draws = np.arange(num_draws)
        binary = is_binary(values)
        for c in range(num_chains):
            y = np.cumsum(values[c]) / (draws + 1) if binary else values[c]
            ax_trace.plot(draws, y, lw=0.7, alpha=0.85, color=f"C{c % 10}", label=f"chain {c}")
        if diverging is not None and diag.locations[quantity][0] == "sample_stats" and diverging.any():
            c_idx, d_idx = np.nonzero(diverging)
            ax_trace.scatter(d_idx, values[c_idx, d_idx], marker="|", color="red", s=40, zorder=3,
                             label="divergent")
        _label_axes(ax_trace, _title(diag, quantity), "draw", "running mean" if binary else quantity)

        ranks = _ranks(values)
        num_bins = int(min(20, max(4, num_draws // 10)))
        bins = np.linspace(0.5, values.size + 0.5, num_bins + 1)
        for c in range(num_chains):
            ax_rank.hist(ranks[c], bins=bins, histtype="step", color=f"C{c % 10}", lw=1.0)
        ax_rank.axhline(num_draws / num_bins, color="black", ls="--", lw=0.8)
        _label_axes(ax_rank, f"rank plot: {quantity}", "rank among all draws")
    if len(focus) and diag.num_chains <= 10:
        axes[0, 0].legend(fontsize=7, ncols=min(diag.num_chains + 1, 6), loc="upper right")
    return fig


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of all draws ``(chain, draw)`` pooled (arviz_stats compute_ranks). Ties (binary or
    other discrete values) are first broken at random, with a fixed seed, by a jitter smaller than
    half the gap between distinct values: ArviZ breaks them by sort order, which for a 0/1 pixel
    would put whole chains at the bottom of the ranking."""
    distinct = np.unique(values[np.isfinite(values)])
    if distinct.size < values.size:
        gap = float(np.min(np.diff(distinct))) if distinct.size > 1 else 1.0
        jitter = np.random.default_rng(0).uniform(0.0, 0.5 * gap, size=values.shape)
        values = values + jitter
    da = xr.DataArray(values, dims=("chain", "draw"))
    return np.asarray(da.azstats.compute_ranks(dim=("chain", "draw")).transpose("chain", "draw").values)


def ess_figure(data, diag: Diagnostics, focus: list[str]) -> Figure:
    """Left: bulk and tail ESS per coordinate (and the energy's); right: ESS on growing prefixes of
    the run for the first two quantities of ``focus``. Dashed red: the threshold."""
    fig, axes = new_figure(1, 2, 11, 3.2)
    ax, ax_evo = axes[0]
    coords = diag.coordinates
    index = np.arange(len(coords))
    marker = 3 if len(coords) > 200 else 5
    ax.plot(index, np.array([r["ess_bulk"] for r in coords], dtype=float), "o", ms=marker, label="bulk", color="C0")
    ax.plot(index, np.array([r["ess_tail"] for r in coords], dtype=float), "^", ms=marker, label="tail", color="C1",
            alpha=0.8)
    if diag.energy is not None:
        for value, style in ((diag.energy["ess_bulk"], "-"), (diag.energy["ess_tail"], ":")):
            if math.isfinite(value):
                ax.axhline(value, color="C2", ls=style, lw=1.0)
        ax.plot([], [], color="C2", label="energy (bulk -, tail :)")
    ax.axhline(diag.min_ess, color="red", ls="--", lw=1.0, label=f"threshold {diag.min_ess:g}")
    _label_axes(ax, "ESS per coordinate", "coordinate (flattened index)", "ESS")
    ax.legend(fontsize=7)

    chosen = focus[:2]  # ESS on growing prefixes (the quantity ArviZ's plot_ess_evolution shows)
    if chosen:
        ds = xr.Dataset({f"q{i}": (("chain", "draw"), series(data, diag, q)) for i, q in enumerate(chosen)})
        sizes = np.unique(np.linspace(min(max(10, diag.num_draws // 10), diag.num_draws),
                                      diag.num_draws, 12).astype(int))
        curves = {(i, m): [] for i in range(len(chosen)) for m in ("bulk", "tail")}
        with np.errstate(divide="ignore", invalid="ignore"):
            for n in sizes:
                part = ds.isel(draw=slice(0, int(n)))
                for m in ("bulk", "tail"):
                    result = az.ess(part, method=m)
                    for i in range(len(chosen)):
                        curves[(i, m)].append(float(result[f"q{i}"]))
        total = sizes * diag.num_chains
        for i, q in enumerate(chosen):
            ax_evo.plot(total, curves[(i, "bulk")], "o-", ms=3, color=f"C{i}", label=f"{q} bulk")
            ax_evo.plot(total, curves[(i, "tail")], "^--", ms=3, color=f"C{i}", label=f"{q} tail")
        ax_evo.plot(total, total, color="grey", lw=0.6, label="ESS = draws")
    ax_evo.axhline(diag.min_ess, color="red", ls="--", lw=1.0)
    _label_axes(ax_evo, "ESS evolution", "total draws (all chains)", "ESS")
    ax_evo.legend(fontsize=7)
    return fig


def autocorr_figure(data, diag: Diagnostics, focus: list[str]) -> Figure | None:
    """Autocorrelation of each chain against lag (up to 100), one panel per quantity of ``focus``."""
    if not focus:
        return None
    ncols = min(len(focus), 3)
    nrows = math.ceil(len(focus) / ncols)
    fig, axes = new_figure(nrows, ncols, 11, 2.6 * nrows)
    max_lag = int(min(100, diag.num_draws - 1))
    for ax, quantity in zip(axes.flat, focus):
        values = series(data, diag, quantity)
        with np.errstate(divide="ignore", invalid="ignore"):
            acf = np.asarray(xr.DataArray(values, dims=("chain", "draw")).azstats.autocorr(dim="draw")
                             .transpose("chain", "draw").values)
        lags = np.arange(max_lag + 1)
        for c in range(acf.shape[0]):
            ax.plot(lags, acf[c, : max_lag + 1], lw=0.9, color=f"C{c % 10}")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_ylim(-1.05, 1.05)
        _label_axes(ax, quantity, "lag")
    for ax in list(axes.flat)[len(focus):]:
        ax.set_visible(False)
    return fig


def _divergent_mask(data) -> np.ndarray | None:
    if "sample_stats" not in data.children or "diverging" not in data["sample_stats"].data_vars:
        return None
    return np.asarray(data["sample_stats"]["diverging"].transpose("chain", "draw").values).astype(bool)


def _per_chain_bars(ax, values: np.ndarray, title: str) -> None:
    ax.bar(np.arange(len(values)), values, color=[f"C{c % 10}" for c in range(len(values))])
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlim(-0.6, len(values) - 0.4)
    _label_axes(ax, title, "chain")


def sampler_figure(data) -> Figure:
    """Per sampler statistic: its trace per chain (left) and its mean per chain (right); the
    divergent transitions per chain at the bottom where the kernel reports them."""
    names = [n for n in sampler_stat_names(data) if n != "diverging"]
    diverging = _divergent_mask(data)
    nrows = len(names) + (diverging is not None)
    fig, axes = new_figure(nrows, 2, 11, 2.0 * nrows)
    stats = data["sample_stats"]
    for (ax, ax_bar), name in zip(axes, names):
        values = np.asarray(stats[name].transpose("chain", "draw").values).astype(float)
        for c in range(values.shape[0]):
            ax.plot(values[c], lw=0.6, alpha=0.8, color=f"C{c % 10}")
        _label_axes(ax, name, "draw")
        _per_chain_bars(ax_bar, np.nanmean(values, axis=1), f"mean {name} per chain")
    if diverging is not None:
        ax, ax_bar = axes[-1]
        num_chains, num_draws = diverging.shape
        ax.eventplot([np.nonzero(diverging[c])[0] for c in range(num_chains)],
                     colors=[f"C{c % 10}" for c in range(num_chains)], lineoffsets=np.arange(num_chains),
                     linelengths=0.8)
        ax.set_xlim(-0.5, num_draws - 0.5)
        ax.set_ylim(-0.7, num_chains - 0.3)
        _label_axes(ax, f"divergent transitions: {int(diverging.sum())}", "draw", "chain")
        _per_chain_bars(ax_bar, diverging.sum(axis=1), "divergences per chain")
    return fig


def ais_health_figure(forward, reverse, exact: float | None, title: str) -> Figure:
    """Health of an AIS run (``ebm_ppl.partition.AISEstimate`` ``forward`` and optional ``reverse``).

    Left: variance over chains of the accumulated log-weights along the schedule (where it climbs
    steeply the schedule is too coarse). Right: histogram of the per-chain log-weights, shown as
    the log Z each chain alone implies (log Z_0 + log w forward, log Z_0 - log w reverse), with the
    estimates and ``exact`` (None: unknown).
    """
    fig, axes = new_figure(1, 2, 11, 4.2, dpi=100)
    left, right = axes[0]
    # log_weight_var[k] is the variance after the move to schedule[k + 1] (reverse: along the
    # reversed schedule); every run starts with all log-weights 0, so variance 0 at its first beta.
    schedule = np.asarray(forward.schedule)
    left.plot(schedule, np.concatenate([[0.0], forward.log_weight_var]), color="C0", label="forward (β 0 → 1)")
    if reverse is not None:
        left.plot(np.asarray(reverse.schedule)[::-1], np.concatenate([[0.0], reverse.log_weight_var]),
                  color="C1", label="reverse (β 1 → 0)")
    left.set_xlabel(f"inverse temperature β (schedule of {forward.num_temperatures} temperatures)")
    left.set_ylabel("variance of log w over chains")
    left.set_title("log-weight variance (a steep climb: the schedule is too coarse there)", fontsize="medium")
    left.legend(loc="upper left", fontsize="small")

    per_chain = [("forward", forward.base_log_z + forward.log_weights, "C0")]
    if reverse is not None:
        per_chain.append(("reverse", reverse.base_log_z - reverse.log_weights, "C1"))
    values = np.concatenate([v for _, v, _ in per_chain])
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    pad = max(1e-6, 0.05 * (hi - lo))
    bins = np.linspace(lo - pad, hi + pad, 31)
    for label, v, color in per_chain:
        right.hist(v[np.isfinite(v)], bins=bins, alpha=0.5, color=color, label=f"{label} chains")
    right.axvline(forward.log_z, color="C0", linestyle="--", label=f"forward {forward.log_z:.4f}")
    if reverse is not None:
        right.axvline(reverse.log_z, color="C1", linestyle="--", label=f"reverse {reverse.log_z:.4f}")
    if exact is not None:
        right.axvline(exact, color="k", linestyle=":", label=f"exact {exact:.4f}")
    right.set_xlabel("log Z implied by one chain (log Z₀ ± log w)")
    right.set_ylabel("chains")
    right.set_title(f"log-weights of {forward.num_chains} chains (weight ESS {forward.ess:.1f}"
                    + (f" / {reverse.ess:.1f}" if reverse is not None else "") + ")", fontsize="medium")
    right.ticklabel_format(axis="x", useOffset=False)
    right.legend(loc="upper right", fontsize="small")
    fig.suptitle(title)
    return fig
