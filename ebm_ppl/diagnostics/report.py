"""One self-contained HTML file about a sampling run: the diagnostics table and the plots to read it.

Everything is inline (CSS, PNGs as base64 data URIs), so the file can be mailed or archived. The
numbers come from :func:`ebm_ppl.diagnostics.diagnose` (ArviZ's R-hat, ESS and MCSE), and the
plotted statistics from ArviZ too (ranks, autocorrelation, ESS on growing prefixes). Plots are
drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas: pyplot, its global figure list
and the user's chosen backend are left untouched.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import arviz as az
import matplotlib
import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ebm_ppl.archive import atomic_write
from ebm_ppl.diagnostics.summary import COLUMNS, Diagnostics, diagnose, format_summary, format_value

__all__ = ["report"]

_DPI = 80
_MAX_IMAGE_CHAINS = 8  # rows of the image grids
_TIME_POINTS = 8  # columns of the "draws across time" grid


def report(
    data: xr.DataTree,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    image_shape: Sequence[int] | None = None,
    max_rows: int = 20,
    num_worst: int = 4,
    rhat_threshold: float = 1.01,
    min_ess_per_chain: float = 100,
) -> Path:
    """Write an HTML report of a run's convergence to ``path`` (atomically) and return the path.

    Args:
        data: the ``xarray.DataTree`` returned by :func:`ebm_ppl.inference.sample`.
        path: the HTML file to write; its folder is created if missing. The file is written to a
            temporary file in the same folder and moved into place, so a reader never sees half
            a report and a failure leaves no temporary file behind.
        title: heading of the page; default names the potential and the kernel.
        image_shape: shape of one draw seen as an image, ``(height, width)`` or ``(height, width,
            channels)``; default: a 1-D event whose size is a perfect square >= 16 (64 -> 8x8) or a
            2-D event is shown as an image, anything else is not.
        max_rows: coordinate rows in the main table (see :func:`diagnose`).
        num_worst: how many of the worst-mixing coordinates get trace, rank and autocorrelation
            plots (next to the energy).
        rhat_threshold: R-hat at or above this warns, passed to :func:`diagnose`.
        min_ess_per_chain: bulk/tail ESS below this times the chains warns, passed to :func:`diagnose`.

    Returns:
        ``pathlib.Path`` of the written file.
    """
    diag = diagnose(data, max_rows=max_rows, rhat_threshold=rhat_threshold,
                    min_ess_per_chain=min_ess_per_chain)
    if not isinstance(num_worst, (int, np.integer)) or num_worst < 0:
        raise ValueError(f"report: num_worst must be an integer >= 0, got {num_worst!r}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"report: {path} is a folder; give the HTML file's path, e.g. {path / 'report.html'}")
    image = _image_layout(data, diag, image_shape)

    focus = _focus(diag, num_worst)
    sections = [_verdict_section(diag), _table_section(diag)]
    sections.append(_figure_section(
        "Trace and rank plots",
        "Each chain in its own colour. Rank plots (Vehtari et al. 2021): histograms of each chain's "
        "ranks among all draws; for chains that mix they are flat around the dashed line (ties "
        "broken at random). Binary coordinates show each chain's running mean instead of the 0/1 "
        "trace.",
        lambda: _trace_rank_figure(data, diag, focus)))
    sections.append(_figure_section(
        "Effective sample size",
        f"Bulk and tail ESS (arviz.ess) per quantity, and on growing prefixes of the run for the "
        f"energy and the worst coordinate; dashed: the threshold {diag.min_ess:g}.",
        lambda: _ess_figure(data, diag, focus)))
    sections.append(_figure_section(
        "Autocorrelation", "Autocorrelation of each chain (arviz_stats autocorr) against lag.",
        lambda: _autocorr_figure(data, diag, focus)))
    if _sampler_stats(data):
        sections.append(_figure_section(
            "Sampler statistics",
            "Per-draw statistics of the kernel for each chain (left) and their mean per chain "
            "(right); divergent transitions, where the kernel reports them, at the bottom.",
            lambda: _sampler_figure(data)))
    if image is not None:
        var, shape = image
        sections.append(_figure_section(
            "Samples as images", "The last draw of each chain.",
            lambda: _last_draws_figure(data, var, shape)))
        sections.append(_figure_section(
            "Draws across time", "Rows: chains; columns: draws evenly spaced over the run.",
            lambda: _time_grid_figure(data, var, shape)))
        if len(shape) == 2 or shape[-1] == 1:
            sections.append(_figure_section(
                "Per-pixel diagnostics",
                "Mean over all draws, R-hat and bulk ESS of every pixel; grey pixels are stuck.",
                lambda: _pixel_maps_figure(data, diag, var, shape)))

    title = title or _default_title(diag)
    _write_atomic(path, _page(title, diag, sections))
    return path


# -- what to show -------------------------------------------------------------------------------------

def _focus(diag: Diagnostics, num_worst: int) -> list[str]:
    """Energy, then the ``num_worst`` worst coordinates that moved at all (stuck ones are listed
    in the table; a flat line has no rank or autocorrelation to show)."""
    quantities = [diag.energy["quantity"]] if diag.energy is not None else []
    moving = [r["quantity"] for r in diag.worst if "stuck" not in r["note"]]
    return quantities + moving[:num_worst]


def _series(data, diag: Diagnostics, quantity: str) -> np.ndarray:
    """Draws of one quantity as a float array ``(chain, draw)``."""
    group, var, index = diag.locations[quantity]
    da = data[group][var]
    values = np.asarray(da.transpose("chain", "draw", ...).values)
    return values[(slice(None), slice(None), *index)].astype(float)


def _is_binary(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return finite.size > 0 and bool(np.all((finite == 0) | (finite == 1)))


def _sampler_stats(data) -> list[str]:
    if "sample_stats" not in data.children:
        return []
    names = [n for n, v in data["sample_stats"].data_vars.items()
             if n != "energy" and {"chain", "draw"} <= set(v.dims) and v.ndim == 2]
    first = [n for n in ("acceptance_rate", "diverging") if n in names]
    return first + sorted(n for n in names if n not in first)


def _image_layout(data, diag: Diagnostics, image_shape) -> tuple[str, tuple[int, ...]] | None:
    """(posterior variable, image shape) when draws are images, else None."""
    variables = [v for g, v, _ in diag.locations.values() if g == "posterior"]
    if not variables:
        return None
    var = "x" if "x" in variables else variables[0]
    event_shape = tuple(int(s) for s in data["posterior"][var].shape[2:])
    size = math.prod(event_shape)
    if image_shape is not None:
        shape = tuple(int(s) for s in image_shape)
        if len(shape) not in (2, 3) or any(s < 1 for s in shape):
            raise ValueError(f"report: image_shape must be (height, width) or (height, width, channels), "
                             f"got {tuple(image_shape)}")
        if len(shape) == 3 and shape[-1] not in (1, 3, 4):
            raise ValueError(f"report: image_shape channels must be 1, 3 or 4, got {shape[-1]}")
        if math.prod(shape) != size:
            raise ValueError(f"report: image_shape {shape} has {math.prod(shape)} pixels but each draw of "
                             f"{var!r} has {size} values (event shape {event_shape})")
        return var, shape
    if len(event_shape) == 1:
        side = math.isqrt(size)
        return (var, (side, side)) if side * side == size and side >= 4 else None
    if len(event_shape) == 2 and min(event_shape) >= 4:
        return var, event_shape
    if len(event_shape) == 3 and event_shape[-1] in (1, 3, 4) and min(event_shape[:2]) >= 4:
        return var, event_shape
    return None


# -- figures ------------------------------------------------------------------------------------------

def _figure(nrows: int, ncols: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _title(diag: Diagnostics, quantity: str) -> str:
    row = next(r for r in diag.table if r["quantity"] == quantity)
    return (f"{quantity}   R-hat {format_value('rhat', row['rhat'])}   "
            f"ESS bulk {format_value('ess_bulk', row['ess_bulk'])} / tail {format_value('ess_tail', row['ess_tail'])}")


def _trace_rank_figure(data, diag: Diagnostics, focus: list[str]) -> Figure | None:
    if not focus:
        return None
    fig, axes = _figure(len(focus), 2, 11, 2.3 * len(focus))
    diverging = _divergent_mask(data)
    for (ax_trace, ax_rank), quantity in zip(axes, focus):
        values = _series(data, diag, quantity)
        num_chains, num_draws = values.shape
        draws = np.arange(num_draws)
        binary = _is_binary(values)
        for c in range(num_chains):
            y = np.cumsum(values[c]) / (draws + 1) if binary else values[c]
            ax_trace.plot(draws, y, lw=0.7, alpha=0.85, color=f"C{c % 10}", label=f"chain {c}")
        if diverging is not None and diag.locations[quantity][0] == "sample_stats" and diverging.any():
            c_idx, d_idx = np.nonzero(diverging)
            ax_trace.scatter(d_idx, values[c_idx, d_idx], marker="|", color="red", s=40, zorder=3,
                             label="divergent")
        ax_trace.set_title(_title(diag, quantity), fontsize=9, loc="left")
        ax_trace.set_xlabel("draw", fontsize=8)
        ax_trace.set_ylabel("running mean" if binary else quantity, fontsize=8)
        ax_trace.tick_params(labelsize=7)

        ranks = _ranks(values)
        num_bins = int(min(20, max(4, num_draws // 10)))
        bins = np.linspace(0.5, values.size + 0.5, num_bins + 1)
        for c in range(num_chains):
            ax_rank.hist(ranks[c], bins=bins, histtype="step", color=f"C{c % 10}", lw=1.0)
        ax_rank.axhline(num_draws / num_bins, color="black", ls="--", lw=0.8)
        ax_rank.set_title(f"rank plot: {quantity}", fontsize=9, loc="left")
        ax_rank.set_xlabel("rank among all draws", fontsize=8)
        ax_rank.tick_params(labelsize=7)
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


def _ess_figure(data, diag: Diagnostics, focus: list[str]) -> Figure:
    fig, axes = _figure(1, 2, 11, 3.2)
    ax, ax_evo = axes[0]
    coords = diag.coordinates
    index = np.arange(len(coords))
    bulk = np.array([r["ess_bulk"] for r in coords], dtype=float)
    tail = np.array([r["ess_tail"] for r in coords], dtype=float)
    marker = 3 if len(coords) > 200 else 5
    ax.plot(index, bulk, "o", ms=marker, label="bulk", color="C0")
    ax.plot(index, tail, "^", ms=marker, label="tail", color="C1", alpha=0.8)
    if diag.energy is not None:
        for value, style in ((diag.energy["ess_bulk"], "-"), (diag.energy["ess_tail"], ":")):
            if math.isfinite(value):
                ax.axhline(value, color="C2", ls=style, lw=1.0)
        ax.plot([], [], color="C2", label="energy (bulk -, tail :)")
    ax.axhline(diag.min_ess, color="red", ls="--", lw=1.0, label=f"threshold {diag.min_ess:g}")
    ax.set_xlabel("coordinate (flattened index)", fontsize=8)
    ax.set_ylabel("ESS", fontsize=8)
    ax.set_title("ESS per coordinate", fontsize=9, loc="left")
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)

    # ESS on growing prefixes of the run (the quantity ArviZ's plot_ess_evolution shows)
    chosen = focus[:2]
    if chosen:
        ds = xr.Dataset({f"q{i}": (("chain", "draw"), _series(data, diag, q)) for i, q in enumerate(chosen)})
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
    ax_evo.set_xlabel("total draws (all chains)", fontsize=8)
    ax_evo.set_ylabel("ESS", fontsize=8)
    ax_evo.set_title("ESS evolution", fontsize=9, loc="left")
    ax_evo.tick_params(labelsize=7)
    ax_evo.legend(fontsize=7)
    return fig


def _autocorr_figure(data, diag: Diagnostics, focus: list[str]) -> Figure | None:
    if not focus:
        return None
    ncols = min(len(focus), 3)
    nrows = math.ceil(len(focus) / ncols)
    fig, axes = _figure(nrows, ncols, 11, 2.6 * nrows)
    max_lag = int(min(100, diag.num_draws - 1))
    for ax, quantity in zip(axes.flat, focus):
        values = _series(data, diag, quantity)
        with np.errstate(divide="ignore", invalid="ignore"):
            acf = np.asarray(xr.DataArray(values, dims=("chain", "draw")).azstats.autocorr(dim="draw")
                             .transpose("chain", "draw").values)
        lags = np.arange(max_lag + 1)
        for c in range(acf.shape[0]):
            ax.plot(lags, acf[c, : max_lag + 1], lw=0.9, color=f"C{c % 10}")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(quantity, fontsize=9, loc="left")
        ax.set_xlabel("lag", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(focus):]:
        ax.set_visible(False)
    return fig


def _divergent_mask(data) -> np.ndarray | None:
    if "sample_stats" not in data.children or "diverging" not in data["sample_stats"].data_vars:
        return None
    return np.asarray(data["sample_stats"]["diverging"].transpose("chain", "draw").values).astype(bool)


def _sampler_figure(data) -> Figure:
    names = [n for n in _sampler_stats(data) if n != "diverging"]
    diverging = _divergent_mask(data)
    nrows = len(names) + (diverging is not None)
    fig, axes = _figure(nrows, 2, 11, 2.0 * nrows)
    stats = data["sample_stats"]
    for (ax, ax_bar), name in zip(axes, names):
        values = np.asarray(stats[name].transpose("chain", "draw").values).astype(float)
        for c in range(values.shape[0]):
            ax.plot(values[c], lw=0.6, alpha=0.8, color=f"C{c % 10}")
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_xlabel("draw", fontsize=8)
        ax.tick_params(labelsize=7)
        means = np.nanmean(values, axis=1)
        ax_bar.bar(np.arange(len(means)), means, color=[f"C{c % 10}" for c in range(len(means))])
        _chain_ticks(ax_bar, len(means))
        ax_bar.set_title(f"mean {name} per chain", fontsize=9, loc="left")
        ax_bar.set_xlabel("chain", fontsize=8)
        ax_bar.tick_params(labelsize=7)
    if diverging is not None:
        ax, ax_bar = axes[-1]
        num_chains, num_draws = diverging.shape
        ax.eventplot([np.nonzero(diverging[c])[0] for c in range(num_chains)],
                     colors=[f"C{c % 10}" for c in range(num_chains)], lineoffsets=np.arange(num_chains),
                     linelengths=0.8)
        ax.set_xlim(-0.5, num_draws - 0.5)
        ax.set_ylim(-0.7, num_chains - 0.3)
        ax.set_title(f"divergent transitions: {int(diverging.sum())}", fontsize=9, loc="left")
        ax.set_xlabel("draw", fontsize=8)
        ax.set_ylabel("chain", fontsize=8)
        ax.tick_params(labelsize=7)
        counts = diverging.sum(axis=1)
        ax_bar.bar(np.arange(num_chains), counts, color=[f"C{c % 10}" for c in range(num_chains)])
        _chain_ticks(ax_bar, num_chains)
        ax_bar.set_title("divergences per chain", fontsize=9, loc="left")
        ax_bar.set_xlabel("chain", fontsize=8)
        ax_bar.tick_params(labelsize=7)
    return fig


def _chain_ticks(ax, num_chains: int) -> None:
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlim(-0.6, num_chains - 0.4)


def _images(data, var: str, shape: tuple[int, ...]) -> tuple[np.ndarray, dict[str, Any]]:
    """All draws as ``(chain, draw, *shape)`` and the imshow settings shared by every panel."""
    da = data["posterior"][var]
    values = np.asarray(da.transpose("chain", "draw", ...).values).astype(float)
    values = values.reshape(*values.shape[:2], *shape)
    if len(shape) == 3 and shape[-1] == 1:
        values = values[..., 0]
    finite = values[np.isfinite(values)]
    if _is_binary(values):
        style = {"cmap": "gray_r", "vmin": 0.0, "vmax": 1.0}
    elif len(shape) == 3 and shape[-1] in (3, 4):
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        values = (values - low) / (high - low) if high > low else np.zeros_like(values)
        style = {}
    else:
        low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        style = {"cmap": "gray", "vmin": float(low), "vmax": float(high) if high > low else float(low) + 1}
    return values, style


def _image_axes(nrows: int, ncols: int, shape) -> tuple[Figure, np.ndarray]:
    aspect = shape[0] / shape[1]
    side = min(1.4, 11 / max(ncols, 1))
    fig, axes = _figure(nrows, ncols, side * ncols, side * aspect * nrows + 0.4)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def _last_draws_figure(data, var: str, shape) -> Figure:
    values, style = _images(data, var, shape)
    num_chains = values.shape[0]
    ncols = min(num_chains, 8)
    nrows = math.ceil(num_chains / ncols)
    fig, axes = _image_axes(nrows, ncols, shape)
    for c, ax in enumerate(axes.flat):
        if c < num_chains:
            ax.imshow(values[c, -1], interpolation="nearest", **style)
            ax.set_title(f"chain {c}", fontsize=8)
        else:
            ax.set_visible(False)
    return fig


def _time_grid_figure(data, var: str, shape) -> Figure:
    values, style = _images(data, var, shape)
    num_chains, num_draws = values.shape[:2]
    chains = min(num_chains, _MAX_IMAGE_CHAINS)
    times = np.unique(np.linspace(0, num_draws - 1, min(_TIME_POINTS, num_draws)).astype(int))
    fig, axes = _image_axes(chains, len(times), shape)
    for c in range(chains):
        for j, t in enumerate(times):
            ax = axes[c, j]
            ax.imshow(values[c, t], interpolation="nearest", **style)
            if c == 0:
                ax.set_title(f"draw {t}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"chain {c}", fontsize=8)
    return fig


def _pixel_maps_figure(data, diag: Diagnostics, var: str, shape) -> Figure:
    rows = [r for r in diag.coordinates if diag.locations[r["quantity"]][1] == var]
    values, style = _images(data, var, shape)
    shape2d = shape[:2]
    mean = np.nanmean(values, axis=(0, 1)).reshape(shape2d)
    rhat = np.array([r["rhat"] for r in rows], dtype=float).reshape(shape2d)
    ess = np.array([r["ess_bulk"] for r in rows], dtype=float).reshape(shape2d)
    fig, axes = _figure(1, 3, 11, 3.4)
    panels = ((mean, "mean", style.get("cmap", "gray"), style.get("vmin"), style.get("vmax")),
              (rhat, "R-hat", "magma", 1.0, max(float(np.nanmax(rhat)) if np.isfinite(rhat).any() else 1.0,
                                                  diag.rhat_threshold)),
              (ess, "bulk ESS", "viridis", 0.0, None))
    for ax, (img, name, cmap, vmin, vmax) in zip(axes[0], panels):
        cmap = matplotlib.colormaps[cmap].with_extremes(bad="0.75")
        im = ax.imshow(np.ma.masked_invalid(img), interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


# -- HTML ---------------------------------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em auto;
       max-width: 1100px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #555; font-size: 0.9em; }
.verdict { padding: 0.6em 1em; border-radius: 4px; font-weight: 600; margin: 1em 0; }
.verdict.ok { background: #e6f4ea; color: #1e6b34; border: 1px solid #a8d5b5; }
.verdict.warn { background: #fdecea; color: #8a1c12; border: 1px solid #f0b4ad; }
table.diagnostics { border-collapse: collapse; font-size: 0.85em; font-variant-numeric: tabular-nums; }
table.diagnostics th, table.diagnostics td { padding: 0.2em 0.6em; border-bottom: 1px solid #eee; }
table.diagnostics th { background: #f4f4f4; text-align: right; }
table.diagnostics td { text-align: right; }
table.diagnostics td.text, table.diagnostics th.text { text-align: left; }
table.diagnostics tr.warn td { background: #fff4f2; }
table.diagnostics tr.summary td { text-align: left; font-style: italic; background: #f8f8fb; }
figure { margin: 0.8em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, p.note { color: #555; font-size: 0.88em; }
details { margin-top: 0.8em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
"""


def _figure_section(heading: str, caption: str, make: Callable[[], Figure | None]) -> str:
    try:
        fig = make()
        if fig is None:
            return ""
        body = (f'<figure><img alt="{html.escape(heading)}" src="data:image/png;base64,{_png(fig)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    except Exception as error:  # one bad plot should not cost the whole report
        warnings.warn(f"report: could not draw {heading!r}: {error!r}", RuntimeWarning, stacklevel=3)
        body = f'<p class="note">Could not draw this plot: {html.escape(repr(error))}</p>'
    return f"<section><h2>{html.escape(heading)}</h2>{body}</section>"


def _verdict_section(diag: Diagnostics) -> str:
    cls = "ok" if diag.ok else "warn"
    text = "All diagnostics pass." if diag.ok else diag.verdict()
    parts = [f'<div class="verdict {cls}">{html.escape(text)}</div>', "<ul class=\"meta\">"]
    per_chain = diag.min_ess / max(diag.num_chains, 1)
    parts.append(f"<li>Thresholds: R-hat &lt; {diag.rhat_threshold:g}; bulk and tail ESS &ge; "
                 f"{diag.min_ess:g} ({per_chain:g} per chain).</li>")
    if diag.acceptance_rate is not None:
        rates = ", ".join(f"{a:.3f}" for a in diag.acceptance_rate)
        parts.append(f"<li>Acceptance rate per chain: {rates}</li>")
    if diag.num_divergent is not None:
        per = ", ".join(str(d) for d in diag.divergent_per_chain or ())
        parts.append(f"<li>Divergent transitions: {diag.num_divergent} (per chain: {per})</li>")
    if diag.stuck:
        names = diag.stuck
        listed = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
        parts.append(f"<li>Stuck (never changed value): {html.escape(listed)}</li>")
    parts.append("</ul>")
    return "<section>" + "".join(parts) + "</section>"


def _row_html(row: dict[str, Any]) -> str:
    cells = []
    for column in COLUMNS:
        cls = ' class="text"' if column in ("quantity", "flag", "note") else ""
        cells.append(f"<td{cls}>{html.escape(format_value(column, row[column]))}</td>")
    cls = "warn" if row["flag"] != "ok" else "ok"
    return f'<tr class="{cls}">' + "".join(cells) + "</tr>"


def _table(rows_html: list[str]) -> str:
    head = "".join(f'<th class="text">{c}</th>' if c in ("quantity", "flag", "note") else f"<th>{c}</th>"
                   for c in COLUMNS)
    return f'<table class="diagnostics"><thead><tr>{head}</tr></thead><tbody>{"".join(rows_html)}</tbody></table>'


def _table_section(diag: Diagnostics) -> str:
    shown, truncated = diag.shown_rows()
    rows = [_row_html(diag.energy)] if diag.energy is not None else []
    if truncated:
        for s in diag.variable_summaries():
            rows.append(f'<tr class="summary"><td colspan="{len(COLUMNS)}">{html.escape(format_summary(s))}</td></tr>')
        rows.append(f'<tr class="summary"><td colspan="{len(COLUMNS)}">worst {len(shown)} of '
                    f"{len(diag.coordinates)} coordinates:</td></tr>")
    rows += [_row_html(r) for r in shown]
    parts = ["<section><h2>Diagnostics</h2>",
             '<p class="note">R-hat: rank-normalised split R-hat; ESS: bulk and tail effective sample '
             "size; MCSE: Monte Carlo standard error of the mean (arviz.rhat, arviz.ess, arviz.mcse; "
             "Vehtari et al. 2021).</p>", _table(rows)]
    if truncated:
        parts.append(f"<details><summary>All {len(diag.table)} quantities</summary>"
                     f"{_table([_row_html(r) for r in diag.table])}</details>")
    parts.append("</section>")
    return "".join(parts)


def _default_title(diag: Diagnostics) -> str:
    what = " / ".join(v for v in (diag.potential, diag.kernel) if v)
    return "Sampling diagnostics" + (f": {what}" if what else "")


def _page(title: str, diag: Diagnostics, sections: list[str]) -> str:
    from ebm_ppl import __version__

    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    about = [f"{diag.num_chains} chains &times; {diag.num_draws} draws"]
    if diag.kernel:
        about.append(f"kernel {html.escape(diag.kernel)}")
    if diag.potential:
        about.append(f"potential {html.escape(diag.potential)}")
    about.append(f"ebm_ppl {html.escape(__version__)}, ArviZ {html.escape(az.__version__)}")
    about.append(created)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n<p class=\"meta\">{' &middot; '.join(about)}</p>\n"
            + "\n".join(s for s in sections if s)
            + "\n</body>\n</html>\n")


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, creating its folder if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
