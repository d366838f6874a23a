"""One self-contained HTML file about a sampling run: the diagnostics table and the plots to read it.

The numbers come from :func:`ebm_ppl.diagnostics.diagnose` (ArviZ's R-hat, ESS and MCSE); the
figures from :mod:`ebm_ppl.diagnostics.figures` and :mod:`ebm_ppl.diagnostics.image_figures`; the
page from :mod:`ebm_ppl.diagnostics.html` (CSS and PNGs inline, so the file can be mailed or
archived).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Sequence

import arviz as az
import xarray as xr

from ebm_ppl import checks
from ebm_ppl.diagnostics import figures
from ebm_ppl.diagnostics import html as pages
from ebm_ppl.diagnostics import image_figures as images
from ebm_ppl.diagnostics.formatting import format_summary
from ebm_ppl.diagnostics.summary import Diagnostics, diagnose

__all__ = ["report"]


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
    num_worst = checks.int_at_least(num_worst, "report: num_worst", 0)
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"report: {path} is a folder; give the HTML file's path, e.g. {path / 'report.html'}")
    image = images.image_layout(data, diag, image_shape)

    focus = _focus(diag, num_worst)
    section = pages.figure_section
    sections = [_verdict_section(diag), _table_section(diag)]
    sections.append(section(
        "Trace and rank plots",
        "Each chain in its own colour. Rank plots (Vehtari et al. 2021): histograms of each chain's "
        "ranks among all draws; for chains that mix they are flat around the dashed line (ties "
        "broken at random). Binary coordinates show each chain's running mean instead of the 0/1 "
        "trace.",
        lambda: figures.trace_rank_figure(data, diag, focus)))
    sections.append(section(
        "Effective sample size",
        f"Bulk and tail ESS (arviz.ess) per quantity, and on growing prefixes of the run for the "
        f"energy and the worst coordinate; dashed: the threshold {diag.min_ess:g}.",
        lambda: figures.ess_figure(data, diag, focus)))
    sections.append(section(
        "Autocorrelation", "Autocorrelation of each chain (arviz_stats autocorr) against lag.",
        lambda: figures.autocorr_figure(data, diag, focus)))
    if figures.sampler_stat_names(data):
        sections.append(section(
            "Sampler statistics",
            "Per-draw statistics of the kernel for each chain (left) and their mean per chain "
            "(right); divergent transitions, where the kernel reports them, at the bottom.",
            lambda: figures.sampler_figure(data)))
    if image is not None:
        var, shape = image
        sections.append(section("Samples as images", "The last draw of each chain.",
                                lambda: images.last_draws_figure(data, var, shape)))
        sections.append(section("Draws across time", "Rows: chains; columns: draws evenly spaced over the run.",
                                lambda: images.time_grid_figure(data, var, shape)))
        if len(shape) == 2 or shape[-1] == 1:
            sections.append(section(
                "Per-pixel diagnostics",
                "Mean over all draws, R-hat and bulk ESS of every pixel; grey pixels are stuck.",
                lambda: images.pixel_maps_figure(data, diag, var, shape)))

    pages.write_page(path, pages.page(title or _default_title(diag), _about(diag), sections))
    return path


def _focus(diag: Diagnostics, num_worst: int) -> list[str]:
    """Energy, then the ``num_worst`` worst coordinates that moved at all (stuck ones are listed
    in the table; a flat line has no rank or autocorrelation to show)."""
    quantities = [diag.energy["quantity"]] if diag.energy is not None else []
    moving = [r["quantity"] for r in diag.worst if "stuck" not in r["note"]]
    return quantities + moving[:num_worst]


def _verdict_section(diag: Diagnostics) -> str:
    cls = "ok" if diag.ok else "warn"
    text = "All diagnostics pass." if diag.ok else diag.verdict()
    parts = [f'<div class="verdict {cls}">{pages.escape(text)}</div>', "<ul class=\"meta\">"]
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
        parts.append(f"<li>Stuck (never changed value): {pages.escape(listed)}</li>")
    parts.append("</ul>")
    return "<section>" + "".join(parts) + "</section>"


def _table_section(diag: Diagnostics) -> str:
    shown, truncated = diag.shown_rows()
    rows = [pages.diagnostics_row(diag.energy)] if diag.energy is not None else []
    if truncated:
        rows += [pages.spanning_row(format_summary(s)) for s in diag.variable_summaries()]
        rows.append(pages.spanning_row(f"worst {len(shown)} of {len(diag.coordinates)} coordinates:"))
    rows += [pages.diagnostics_row(r) for r in shown]
    parts = ["<section><h2>Diagnostics</h2>",
             '<p class="note">R-hat: rank-normalised split R-hat; ESS: bulk and tail effective sample '
             "size; MCSE: Monte Carlo standard error of the mean (arviz.rhat, arviz.ess, arviz.mcse; "
             "Vehtari et al. 2021).</p>", pages.diagnostics_table(rows)]
    if truncated:
        parts.append(f"<details><summary>All {len(diag.table)} quantities</summary>"
                     f"{pages.diagnostics_table([pages.diagnostics_row(r) for r in diag.table])}</details>")
    parts.append("</section>")
    return "".join(parts)


def _default_title(diag: Diagnostics) -> str:
    what = " / ".join(v for v in (diag.potential, diag.kernel) if v)
    return "Sampling diagnostics" + (f": {what}" if what else "")


def _about(diag: Diagnostics) -> str:
    """The line under the heading: chains and draws, kernel, potential, versions, time (HTML)."""
    from ebm_ppl import __version__  # the package imports this module while it initialises

    about = [f"{diag.num_chains} chains &times; {diag.num_draws} draws"]
    if diag.kernel:
        about.append(f"kernel {pages.escape(diag.kernel)}")
    if diag.potential:
        about.append(f"potential {pages.escape(diag.potential)}")
    about.append(f"ebm_ppl {pages.escape(__version__)}, ArviZ {pages.escape(az.__version__)}")
    about.append(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    return " &middot; ".join(about)
