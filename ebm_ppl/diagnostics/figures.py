"""Our own matplotlib figures: the Agg figure helper and an AIS run's health plot.

The chains' plots (trace, rank, ESS, autocorrelation, energy, pairs, densities) are ArviZ's
(:mod:`ebm_ppl.diagnostics.arviz_figures`); what ArviZ has no plot for is drawn here and in
:mod:`ebm_ppl.diagnostics.image_figures` and :mod:`ebm_ppl.diagnostics.training_figures`. Figures
are drawn with the Agg canvas: pyplot, its global figure list and the user's chosen backend are
left untouched.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["new_figure", "is_binary", "ais_health_figure"]


def new_figure(nrows: int, ncols: int, width: float, height: float,
               dpi: float | None = None) -> tuple[Figure, np.ndarray]:
    """A ``width`` x ``height`` inch figure on the Agg canvas and its ``(nrows, ncols)`` axes."""
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def is_binary(values: np.ndarray) -> bool:
    """Whether every finite value is 0 or 1 (and there is one)."""
    finite = values[np.isfinite(values)]
    return finite.size > 0 and bool(np.all((finite == 0) | (finite == 1)))


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
