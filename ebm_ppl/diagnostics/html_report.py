"""One self-contained HTML file about a sampling run: the diagnostics table and the plots to read it.

The numbers come from :func:`ebm_ppl.diagnostics.diagnose` (ArviZ's R-hat, ESS, MCSE and BFMI);
the chains' plots are ArviZ's (:mod:`ebm_ppl.diagnostics.arviz_figures`), the image views and
parallel tempering's ladder ours (:mod:`ebm_ppl.diagnostics.image_figures`,
:mod:`ebm_ppl.diagnostics.tempering_figures`); the page from :mod:`ebm_ppl.diagnostics.html`
(CSS and PNGs inline, so the file can be mailed or archived). Any ArviZ ``DataTree`` works: ours,
NumPyro's, PyMC's, BlackJAX draws through ``arviz.from_dict``.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any, Sequence

import arviz as az
import xarray as xr

from ebm_ppl import checks
from ebm_ppl.diagnostics import arviz_figures as plots
from ebm_ppl.diagnostics import html as pages
from ebm_ppl.diagnostics import image_figures as images
from ebm_ppl.diagnostics import schema
from ebm_ppl.diagnostics import tempering_figures as tempering
from ebm_ppl.diagnostics.evidence_section import evidence_runs, evidence_sections
from ebm_ppl.diagnostics.formatting import format_summary
from ebm_ppl.diagnostics.rows import is_constant
from ebm_ppl.diagnostics.tempering import MIN_SWAP_ACCEPTANCE
from ebm_ppl.diagnostics.summary import Diagnostics, diagnose_for

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
    min_bfmi: float = 0.3,
    evidence: Any = None,
) -> Path:
    """Write an HTML report of a run's convergence to ``path`` (atomically) and return the path.

    Args:
        data: the ``xarray.DataTree`` returned by :func:`ebm_ppl.inference.sample`, or any ArviZ
            ``DataTree`` with a ``posterior`` group (see :func:`diagnose`).
        path: the HTML file to write; its folder is created if missing. The file is written to a
            temporary file in the same folder and moved into place, so a reader never sees half
            a report and a failure leaves no temporary file behind.
        title: heading of the page; default names the potential and the kernel.
        image_shape: shape of one draw seen as an image, ``(height, width)`` or ``(height, width,
            channels)``; default: a 1-D event whose size is a perfect square >= 16 (64 -> 8x8) or a
            2-D event is shown as an image, anything else is not.
        max_rows: the main table lists every coordinate up to this many, else only the flagged
            ones (see :func:`diagnose`); the full table is folded below it.
        num_worst: how many of the worst-mixing coordinates get trace, rank, ESS and
            autocorrelation plots (next to ``lp``), and pair plots and densities when there are
            more than ``arviz_figures.MAX_PAIR_DIMENSIONS`` (8) coordinates.
        rhat_threshold: R-hat at or above this warns, passed to :func:`diagnose`.
        min_ess_per_chain: bulk/tail ESS below this times the chains warns, passed to :func:`diagnose`.
        min_bfmi: a chain with E-BFMI below this warns (HMC/NUTS), passed to :func:`diagnose`.
        evidence: adds an "Evidence" section: an ``AISEstimate`` of the model's log evidence
            (:func:`ebm_ppl.numpyro.log_evidence`), a ``(forward, reverse)`` pair of them, a
            :class:`~ebm_ppl.numpyro.BDMC` check, a :class:`~ebm_ppl.numpyro.Comparison`, or a
            dict of model names to any of these (the real-data forward estimates then get their
            Bayes factors); the estimates, sandwich gaps and AIS health plots.

    Returns:
        ``pathlib.Path`` of the written file.
    """
    if evidence is not None:
        evidence_runs(evidence)  # a wrong kind of value fails here, before the diagnostics' work
    diag = diagnose_for("report", data, max_rows=max_rows, rhat_threshold=rhat_threshold,
                        min_ess_per_chain=min_ess_per_chain, min_bfmi=min_bfmi)
    data, _ = schema.current(data)  # an old ebm_ppl run, read as diagnose read it (diag.notes says so)
    num_worst = checks.int_at_least(num_worst, "report: num_worst", 0)
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"report: {path} is a folder; give the HTML file's path, e.g. {path / 'report.html'}")
    image = images.image_layout(data, diag, image_shape)
    worst = [r["quantity"] for r in diag.worst if not is_constant(r)][:num_worst]
    focus = ([diag.lp["quantity"]] if diag.lp is not None else []) + worst
    pairs = plots.pair_quantities(data, diag, worst)

    section = pages.figure_section
    sections = [_verdict_section(diag), _table_section(diag)]
    if evidence is not None:
        sections += evidence_sections(evidence)
    sections += [
        section("Trace", "arviz_plots.plot_trace_dist of lp and the worst-mixing coordinates, each chain in its "
                "own colour, divergent transitions marked; a 0/1 coordinate shows each chain's running mean "
                "(plot_trace).", lambda: plots.trace(data, diag, focus)),
        section("Rank plots", "arviz_plots.plot_rank: each chain's rank ECDF minus the uniform one, with a "
                "simultaneous 99% envelope (Vehtari et al. 2021; Säilynoja et al. 2022); chains that mix stay "
                "inside it. Ties between equal values are broken at random.",
                lambda: plots.rank(data, diag, focus)),
        section("Effective sample size", f"Left to right: arviz_plots.plot_ess, local ESS (of small intervals) and "
                f"quantile ESS; arviz_plots.plot_ess_evolution, bulk and tail ESS on growing prefixes of the run. "
                f"Dashed: the threshold {diag.min_ess:g}.",
                lambda: plots.ess(data, diag, focus)),
        section("Autocorrelation", "arviz_plots.plot_autocorr of each chain.",
                lambda: plots.autocorr(data, diag, focus)),
        section("Energy and BFMI", f"arviz_plots.plot_energy: the marginal energy (Hamiltonian) distribution "
                f"against the energy transitions, and E-BFMI per chain (Betancourt 2016); below "
                f"{diag.min_bfmi:g} the momentum resampling explores the energy poorly.",
                lambda: plots.energy(data, diag)),
        section("Swap acceptance (parallel tempering)", "Mean over the draws of the Metropolis acceptance "
                "probability of swapping each pair of neighbouring rungs (i, i + 1), labelled with their betas "
                "(averaged over chains, whose ladders warm-up adapts separately), per chain and their mean. "
                "Warm-up's adaptation makes the pairs equal (Syed et al. 2021); a pair below the dashed "
                f"{MIN_SWAP_ACCEPTANCE:g} is a wall replicas cannot cross: add rungs there.",
                lambda: tempering.swap_acceptance_figure(diag.tempering)),
        section("Replica trajectories (parallel tempering)", "The rung each replica of chain 0 sits on, draw "
                "by draw: replicas travel, rungs stay. Every line should wander over the whole ladder; a round "
                "trip is a journey from the bottom rung to the top (beta = 1) and back.",
                lambda: tempering.replica_figure(data, diag.tempering)),
        section("Pair plot", "arviz_plots.plot_pair of " + ("every coordinate" if len(diag.coordinates) <=
                plots.MAX_PAIR_DIMENSIONS else "the worst-mixing coordinates") + "; divergent transitions "
                "highlighted.", lambda: plots.pair(data, diag, pairs)),
        section("Posterior densities", "arviz_plots.plot_dist: marginal densities, all chains pooled.",
                lambda: plots.densities(data, diag, pairs)),
        section("R-hat and ESS of every coordinate", "arviz_plots.plot_convergence_dist: the distribution "
                "(ECDF) of R-hat and of bulk and tail ESS over the coordinates that move; dashed: the "
                "thresholds.", lambda: plots.convergence(data, diag)),
        section("Sampler statistics", "arviz_plots.plot_trace of the kernel's per-draw statistics.",
                lambda: plots.sampler_stats(data)),
    ]
    if image is not None:
        var, shape = image
        sections.append(section("Samples as images", "The last draw of each chain.",
                                lambda: images.last_draws_figure(data, var, shape)))
        sections.append(section("Draws across time", "Rows: chains; columns: draws evenly spaced over the run.",
                                lambda: images.time_grid_figure(data, var, shape)))
        if len(shape) == 2 or shape[-1] == 1:
            sections.append(section(
                "Per-pixel diagnostics",
                "Mean over all draws, R-hat and bulk ESS of every pixel; grey pixels are constant (agreed).",
                lambda: images.pixel_maps_figure(data, diag, var, shape)))

    pages.write_page(path, pages.page(title or _default_title(diag), _about(diag), sections))
    return path


def _verdict_section(diag: Diagnostics) -> str:
    cls = "ok" if diag.ok else "warn"
    text = "All diagnostics pass." if diag.ok else diag.verdict()
    parts = [f'<div class="verdict {cls}">{pages.escape(text)}</div>', "<ul class=\"meta\">"]
    parts += [f"<li>Note: {pages.escape(note)}.</li>" for note in diag.notes]
    parts.append(f"<li>Thresholds (Stan's): {pages.escape(diag.thresholds())}.</li>")
    if diag.acceptance_rate is not None:
        rates = ", ".join(f"{a:.3f}" for a in diag.acceptance_rate)
        parts.append(f"<li>Acceptance rate per chain: {rates}</li>")
    if diag.num_divergent is not None:
        per = ", ".join(str(d) for d in diag.divergent_per_chain or ())
        parts.append(f"<li>Divergent transitions: {diag.num_divergent} (per chain: {per})</li>")
    if diag.bfmi is not None:
        parts.append("<li>E-BFMI per chain: " + ", ".join(f"{b:.3f}" for b in diag.bfmi) + "</li>")
    if diag.tempering is not None:
        parts.append(f"<li>{pages.escape(diag.tempering.line())}</li>")
    if diag.constant:
        names = diag.constant
        listed = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
        parts.append(f"<li>Constant (agreed: one value in every chain, R-hat and ESS undefined, not a "
                     f"warning): {pages.escape(listed)}</li>")
    parts.append("</ul>")
    return "<section>" + "".join(parts) + "</section>"


def _table_section(diag: Diagnostics) -> str:
    shown, only_flagged = diag.shown_rows()
    rows = [pages.diagnostics_row(diag.lp)] if diag.lp is not None else []
    if only_flagged:
        rows += [pages.spanning_row(format_summary(s)) for s in diag.variable_summaries()]
        if shown:
            rows.append(pages.spanning_row(f"flagged coordinates, worst first ({len(shown)} shown):"))
    rows += [pages.diagnostics_row(r) for r in shown]
    if only_flagged:
        rows.append(pages.spanning_row(diag.rest_line()))
    parts = ["<section><h2>Diagnostics</h2>",
             '<p class="note">lp: log density of each draw. R-hat: rank-normalised split R-hat; ESS: bulk and '
             "tail effective sample size; MCSE: Monte Carlo standard error of the mean (arviz.rhat, arviz.ess, "
             "arviz.mcse; Vehtari et al. 2021).</p>", pages.diagnostics_table(rows)]
    if only_flagged:
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
