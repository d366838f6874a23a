"""The report's "Evidence" section: log-evidence estimates, Bayes factors and AIS health plots.

Accepts what :func:`ebm_ppl.numpyro.log_evidence`, :func:`ebm_ppl.numpyro.bdmc` and
:func:`ebm_ppl.numpyro.compare` return (or :func:`ebm_ppl.ais`'s estimates of any log Z).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

from ebm_ppl.diagnostics import html as pages
from ebm_ppl.diagnostics.figures import ais_health_figure
from ebm_ppl.partition.comparison import Comparison, compare
from ebm_ppl.partition.estimate import AISEstimate

__all__ = ["evidence_sections", "evidence_runs", "Run"]

MAX_FIGURES = 6  # health plots for at most this many models (the table lists them all)


class Run(NamedTuple):
    """One model's estimates: forward and/or reverse; ``simulated`` for a BDMC check (the evidence
    of data simulated from the model, never compared with the real data's)."""

    name: str
    forward: AISEstimate | None
    reverse: AISEstimate | None
    simulated: bool = False


def evidence_runs(evidence: Any) -> tuple[list[Run], Comparison | None]:
    """``([Run, ...], comparison or None)`` from an ``AISEstimate``, a ``(forward, reverse)`` pair
    of estimates on the same data, a ``BDMC`` result (anything with ``forward`` and ``reverse``
    estimates and the simulated ``data``), a :class:`~ebm_ppl.partition.comparison.Comparison`, or
    a dict of names to any of the first three. The Bayes factors compare the real-data forward
    estimates of a dict (BDMC checks are left out of them)."""
    if isinstance(evidence, Comparison):
        return [_run(n, e) for n, e in zip(evidence.names, evidence.estimates)], evidence
    if isinstance(evidence, Mapping):
        if not evidence:
            raise ValueError("report: evidence is an empty dict")
        runs = [_run(str(n), e) for n, e in evidence.items()]
        forwards = {r.name: r.forward for r in runs if r.forward is not None and not r.simulated}
        return runs, (compare(forwards) if len(forwards) >= 2 else None)
    return [_run("model", evidence)], None


def _run(name: str, value: Any) -> Run:
    if isinstance(value, AISEstimate):
        return Run(name, value, None) if value.bound == "lower" else Run(name, None, value)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, AISEstimate) for v in value):
        forward, reverse = value
        if forward.bound != "lower" or reverse.bound == "lower":
            raise ValueError(f"report: the pair for {name!r} must be (forward, reverse) estimates, got bounds "
                             f"({forward.bound!r}, {reverse.bound!r})")
        return Run(name, forward, reverse)
    forward, reverse = getattr(value, "forward", None), getattr(value, "reverse", None)
    if isinstance(forward, AISEstimate) and isinstance(reverse, AISEstimate):
        return Run(name, forward, reverse, simulated=getattr(value, "data", None) is not None)
    raise TypeError(f"report: evidence must be an AISEstimate, a (forward, reverse) pair, a BDMC result, a "
                    f"Comparison, or a dict of names to those, got {type(value).__name__} for {name!r}")


def _estimate_row(name: str, direction: str, est: AISEstimate) -> str:
    cells = [pages.escape(name), direction, f"{est.log_z:.4f}", f"{est.stderr:.4f}", pages.escape(est.bound),
             f"{est.ess:.1f} / {est.num_chains}", str(est.num_temperatures), f"{est.wall_time:.2f}"]
    weak = not est.ess >= 0.1 * est.num_chains or not math.isfinite(est.log_z)
    return pages.row(cells, text=(0, 1, 4), cls="warn" if weak else "ok")


def evidence_sections(evidence: Any) -> list[str]:
    """The HTML sections: the estimates (and the sandwich gaps), the Bayes factors, one AIS
    health figure per model."""
    runs, comparison = evidence_runs(evidence)
    rows = []
    for run in runs:
        name = f"{run.name} (simulated data)" if run.simulated else run.name
        if run.forward is not None:
            rows.append(_estimate_row(name, "forward (prior → posterior)", run.forward))
        if run.reverse is not None:
            rows.append(_estimate_row(name, "reverse (posterior → prior)", run.reverse))
    header = ["model", "direction", "log p(y)", "± s.e.", "bound", "weight ESS / chains", "temperatures", "seconds"]
    parts = ["<section><h2>Evidence</h2>",
             '<p class="note">Annealed importance sampling along the likelihood-tempered path. Forward runs start '
             "from exact prior draws: their estimate is below log p(y) in expectation. Reverse runs from exact "
             "posterior draws are above it; from MCMC draws only approximately. A weight ESS under 10% of the "
             "chains (flagged) means the error bar is not to be trusted: lengthen the schedule.</p>",
             pages.table(header, rows, text=(0, 1, 4))]
    gaps = [(r.name, r.reverse.log_z - r.forward.log_z, math.hypot(r.reverse.stderr, r.forward.stderr), r.simulated)
            for r in runs if r.forward is not None and r.reverse is not None]
    if gaps:
        parts.append("<ul class=\"meta\">" + "".join(
            f"<li>{pages.escape(n)}: sandwich gap {g:.4f} ± {se:.4f} nats (reverse minus forward"
            + ("; on data simulated from the model, a check of the schedule" if sim else "")
            + ")</li>" for n, g, se, sim in gaps) + "</ul>")
    if comparison is not None:
        best = comparison.names[0]
        p, p_se = comparison.probabilities, comparison.probability_stderr
        cmp_rows = []
        for i, name in enumerate(comparison.names):
            bf, se = comparison.log_bayes_factor(name, best)
            cmp_rows.append(pages.row([pages.escape(name), f"{bf:.4f}", f"{se:.4f}", f"{p[i]:.4f}", f"{p_se[i]:.4f}"]))
        parts.append(f"<h3>Bayes factors (against {pages.escape(best)}) and posterior model probabilities</h3>")
        parts.append(pages.table(["model", "log BF", "± s.e.", "P(model | y)", "± s.e."], cmp_rows))
    parts.append("</section>")
    sections = ["".join(parts)]
    for name, fwd, rev, _ in runs[:MAX_FIGURES]:
        if fwd is None:
            continue
        sections.append(pages.figure_section(
            f"AIS health: {name}", "Left: variance over chains of the accumulated log-weights along the schedule "
            "(a steep climb: too few temperatures there). Right: the log evidence each chain alone implies.",
            lambda fwd=fwd, rev=rev, name=name: ais_health_figure(fwd, rev, None, f"log p(y) of {name}")))
    return sections
