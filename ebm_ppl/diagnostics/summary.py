"""Convergence diagnostics of a sampling run: ArviZ's R-hat, ESS, MCSE and BFMI, with verdicts.

The quantities are the log density of each draw (``sample_stats.lp``, Stan's ``lp__``) and every
coordinate of every posterior variable (one row per pixel of an image); their numbers come from
ArviZ (:mod:`ebm_ppl.diagnostics.rows`). The run-level checks are Stan's: no divergent
transitions, and for HMC/NUTS (whose ``sample_stats.energy`` is the Hamiltonian) an E-BFMI of at
least 0.3 in every chain (``arviz.bfmi``; Betancourt 2016); and for parallel tempering (whose
``sample_stats`` has ``swap_acceptance``) a mean swap acceptance of at least 0.05 for every pair
of neighbouring rungs in every chain (:mod:`ebm_ppl.diagnostics.tempering`). Any ArviZ
``DataTree`` is read the same way: ours, ``arviz.from_numpyro``'s, PyMC's, or BlackJAX draws
through ``arviz.from_dict``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import arviz as az
import numpy as np
import xarray as xr

from ebm_ppl import checks
from ebm_ppl.diagnostics import rows as table_rows
from ebm_ppl.diagnostics import schema
from ebm_ppl.diagnostics.formatting import COLUMNS, TEXT_COLUMNS, format_row, format_summary
from ebm_ppl.diagnostics.tempering import TemperingHealth, tempering_health

__all__ = ["diagnose", "Diagnostics", "COLUMNS"]


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of one run; see :func:`diagnose`.

    Attributes:
        table: one dict per quantity, ``lp`` first (when the data have it), then every
            coordinate in order, with keys ``COLUMNS``: ``quantity`` (``"lp"``, ``"x[3]"``,
            ``"x[1,2]"``), ``mean``, ``sd``, ``mcse_mean``, ``ess_bulk``, ``ess_tail``, ``rhat``
            (floats, NaN where undefined), ``flag`` (``"ok"`` or ``"warn"``) and ``note`` (why it
            warns; ``"constant (agreed)"`` for a quantity with one value in every chain).
        num_chains: chains in the run.
        num_draws: draws per chain.
        worst: the coordinate rows (``lp`` excluded) from worst to best mixing: flagged rows by
            highest R-hat then lowest ESS (min of bulk and tail), then the ok rows in the same
            order, then the constant (agreed) ones.
        acceptance_rate: mean acceptance rate of each chain, or None when the kernel has none.
        num_divergent: divergent transitions over all chains, or None when the kernel does not
            report divergences.
        divergent_per_chain: the same per chain, or None.
        bfmi: E-BFMI of each chain (``arviz.bfmi`` of the Hamiltonian ``sample_stats.energy``),
            or None where the data have no ``energy`` (samplers without momentum).
        tempering: swap acceptance per pair and round trips of a parallel-tempering run
            (:class:`~ebm_ppl.diagnostics.tempering.TemperingHealth`), or None for other kernels.
        ok: no row is flagged, no divergence, no chain's BFMI below ``min_bfmi``, and no pair of
            a tempering ladder below ``tempering.min_swap_acceptance`` in any chain.
        rhat_threshold: rows with R-hat at or above this warn.
        min_ess: rows with bulk or tail ESS below this (``min_ess_per_chain * num_chains``) warn.
        min_bfmi: chains with BFMI below this warn.
        max_rows: how many coordinate rows ``str()`` shows.
        kernel: the run's kernel, when the data carry it.
        potential: the run's potential name, when the data carry it.
        notes: what was converted on reading (an old ebm_ppl file's ``energy``), else empty.
    """

    table: list[dict[str, Any]]
    num_chains: int
    num_draws: int
    worst: list[dict[str, Any]]
    acceptance_rate: tuple[float, ...] | None
    num_divergent: int | None
    divergent_per_chain: tuple[int, ...] | None
    ok: bool
    rhat_threshold: float
    min_ess: float
    bfmi: tuple[float, ...] | None = None
    min_bfmi: float = 0.3
    max_rows: int = 20
    kernel: str | None = None
    potential: str | None = None
    notes: tuple[str, ...] = ()
    tempering: TemperingHealth | None = None
    # quantity -> (group, variable, index into the event dims); used by the report's plots.
    locations: dict[str, tuple[str, str, tuple[int, ...]]] = field(default_factory=dict, repr=False,
                                                                    compare=False)

    # -- views ------------------------------------------------------------------------------------

    @property
    def lp(self) -> dict[str, Any] | None:
        """The row of the log density ``sample_stats.lp``, or None when the data have none."""
        return next((row for row in self.table if self.locations.get(row["quantity"], ("",))[0]
                     == "sample_stats"), None)

    @property
    def coordinates(self) -> list[dict[str, Any]]:
        """The rows of the posterior coordinates, in order."""
        return [row for row in self.table if self.locations.get(row["quantity"], ("",))[0] == "posterior"]

    @property
    def flagged(self) -> list[dict[str, Any]]:
        """All rows that warn."""
        return [row for row in self.table if row["flag"] != "ok"]

    @property
    def constant(self) -> list[str]:
        """Quantities with one value in every draw of every chain ("constant (agreed)": R-hat and
        ESS undefined, not a warning)."""
        return [row["quantity"] for row in self.table if table_rows.is_constant(row)]

    @property
    def low_bfmi_chains(self) -> list[int]:
        """The chains whose BFMI is below ``min_bfmi`` (or undefined)."""
        return [c for c, b in enumerate(self.bfmi or ()) if not b >= self.min_bfmi]

    def variable_summaries(self) -> list[dict[str, Any]]:
        """One summary per posterior variable: its coordinate count, max R-hat, min bulk and tail
        ESS (over coordinates where they are defined), and how many coordinates warn / are
        constant (agreed)."""
        out = []
        for var in dict.fromkeys(loc[1] for loc in self.locations.values() if loc[0] == "posterior"):
            rows = [r for r in self.coordinates if self.locations[r["quantity"]][1] == var]
            out.append({
                "variable": var,
                "size": len(rows),
                "max_rhat": _nan_reduce(np.nanmax, [r["rhat"] for r in rows]),
                "min_ess_bulk": _nan_reduce(np.nanmin, [r["ess_bulk"] for r in rows]),
                "min_ess_tail": _nan_reduce(np.nanmin, [r["ess_tail"] for r in rows]),
                "num_flagged": sum(r["flag"] != "ok" for r in rows),
                "num_constant": sum(table_rows.is_constant(r) for r in rows),
            })
        return out

    def thresholds(self) -> str:
        """Stan's thresholds as this run applies them, in one line."""
        per_chain = self.min_ess / max(self.num_chains, 1)
        text = (f"R-hat < {self.rhat_threshold:g}; bulk and tail ESS >= {self.min_ess:g} ({per_chain:g} per "
                f"chain); no divergent transitions; E-BFMI >= {self.min_bfmi:g} (HMC/NUTS)")
        if self.tempering is not None:
            text += f"; swap acceptance >= {self.tempering.min_swap_acceptance:g} per pair (parallel tempering)"
        return text

    # -- output -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (NaN becomes None)."""
        return {
            "num_chains": self.num_chains,
            "num_draws": self.num_draws,
            "kernel": self.kernel,
            "potential": self.potential,
            "ok": self.ok,
            "verdict": self.verdict(),
            "thresholds": {"rhat": self.rhat_threshold, "min_ess": self.min_ess, "min_bfmi": self.min_bfmi},
            "acceptance_rate": None if self.acceptance_rate is None else list(self.acceptance_rate),
            "num_divergent": self.num_divergent,
            "divergent_per_chain": None if self.divergent_per_chain is None else list(self.divergent_per_chain),
            "bfmi": None if self.bfmi is None else [_json_value(b) for b in self.bfmi],
            "notes": list(self.notes),
            "tempering": None if self.tempering is None else self.tempering.to_dict(),
            "table": [{k: _json_value(v) for k, v in row.items()} for row in self.table],
            "worst": [row["quantity"] for row in self.worst],
            "constant": self.constant,
            "variables": [{k: _json_value(v) for k, v in s.items()} for s in self.variable_summaries()],
        }

    def shown_rows(self) -> tuple[list[dict[str, Any]], bool]:
        """The coordinate rows ``str()`` shows, and whether they are only the flagged ones: every
        row when there are at most ``max_rows`` coordinates, else the (at most ``max_rows``)
        worst flagged rows."""
        coords = self.coordinates
        if len(coords) <= self.max_rows:
            return coords, False
        return [r for r in self.worst if r["flag"] != "ok"][: self.max_rows], True

    def rest_line(self) -> str:
        """What ``str()`` says about the coordinates it does not list (empty: it lists them all)."""
        shown, only_flagged = self.shown_rows()
        if not only_flagged:
            return ""
        coords = self.coordinates
        flagged = sum(r["flag"] != "ok" for r in coords)
        constant = sum(table_rows.is_constant(r) for r in coords)
        parts = [f"{len(coords) - flagged} of {len(coords)} coordinates ok"
                 + (f" ({constant} constant (agreed))" if constant else "")]
        if flagged > len(shown):
            parts.append(f"{flagged - len(shown)} more flagged not listed")
        return "; ".join(parts)

    def __str__(self) -> str:
        header = f"MCMC diagnostics: {self.num_chains} chains x {self.num_draws} draws"
        about = ", ".join(f"{k} {v}" for k, v in (("kernel", self.kernel), ("potential", self.potential)) if v)
        lines = [header + (f" ({about})" if about else "")]
        lines += [f"note: {note}" for note in self.notes]
        shown, only_flagged = self.shown_rows()
        head = [self.lp] if self.lp is not None else []
        cells = [list(COLUMNS)] + [format_row(row) for row in head + shown]
        widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]

        def render(c):
            return "  ".join(v.ljust(w) if name in TEXT_COLUMNS else v.rjust(w)
                             for name, v, w in zip(COLUMNS, c, widths)).rstrip()

        lines.append(render(cells[0]))
        lines.append("-" * len(lines[-1]))
        lines.extend(render(c) for c in cells[1:1 + len(head)])
        if only_flagged:
            lines.extend(format_summary(s) for s in self.variable_summaries())
            if shown:
                lines.append(f"flagged coordinates, worst first ({len(shown)} shown):")
        lines.extend(render(c) for c in cells[1 + len(head):])
        if only_flagged:
            lines.append(self.rest_line())
        if self.acceptance_rate is not None:
            lines.append("acceptance rate per chain: " + " ".join(f"{a:.3f}" for a in self.acceptance_rate))
        if self.num_divergent is not None:
            per_chain = " ".join(str(d) for d in self.divergent_per_chain or ())
            lines.append(f"divergences: {self.num_divergent} (per chain: {per_chain})")
        if self.bfmi is not None:
            lines.append("E-BFMI per chain: " + " ".join(f"{b:.3f}" for b in self.bfmi))
        if self.tempering is not None:
            lines.append(self.tempering.line())
        lines.append(f"thresholds: {self.thresholds()}")
        lines.append("verdict: " + self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        """``"ok"`` or a one-line account of what warns."""
        if self.ok:
            return "ok"
        parts = []
        if self.flagged:
            parts.append(f"{len(self.flagged)} of {len(self.table)} quantities flagged")
        if self.num_divergent:
            parts.append(f"{self.num_divergent} divergent transitions")
        low = self.low_bfmi_chains
        if low:
            parts.append(f"E-BFMI < {self.min_bfmi:g} in chain{'s' if len(low) > 1 else ''} "
                         + ", ".join(map(str, low)))
        if self.tempering is not None and self.tempering.warning():
            parts.append(self.tempering.warning())
        return "WARN: " + "; ".join(parts)


def diagnose(data: xr.DataTree, *, max_rows: int = 20, rhat_threshold: float = 1.01,
             min_ess_per_chain: float = 100, min_bfmi: float = 0.3) -> Diagnostics:
    """R-hat, bulk/tail ESS and MCSE of ``lp`` and of every coordinate of a run, BFMI, and flags.

    Args:
        data: an ArviZ ``xarray.DataTree`` with a ``posterior`` group of draws shaped ``(chain,
            draw, *event)``, and optionally ``sample_stats`` in ArviZ's names (``lp``,
            ``energy`` = the Hamiltonian, ``diverging``, ``acceptance_rate``, ...): the result of
            :func:`ebm_ppl.sample`, ``arviz.from_numpyro``, PyMC, or ``arviz.from_dict``. An old
            ebm_ppl run (``energy`` = E(x)) is read as ``lp = -energy``, with a note.
        max_rows: the printed table lists every coordinate when there are at most this many,
            else only the (at most ``max_rows``) flagged ones with a count of the rest.
        rhat_threshold: a row warns when its rank-normalised split R-hat is ``>=`` this (1.01,
            Vehtari et al. 2021).
        min_ess_per_chain: a row warns when its bulk or tail ESS is below this many per chain
            (100 per chain, Vehtari et al. 2021: 400 for Stan's four chains).
        min_bfmi: a chain warns when its E-BFMI is below this (0.3, Betancourt 2016; as Stan).

    A parallel-tempering run (``sample_stats.swap_acceptance``) also gets its swap acceptance per
    pair of neighbouring rungs and its round trips (:attr:`Diagnostics.tempering`); a pair whose
    mean acceptance is below 0.05 in some chain warns (replicas cannot cross it).

    Returns:
        :class:`Diagnostics`. A coordinate with one value in every draw of every chain (a pixel
        that is never on) is ``"constant (agreed)"``: R-hat and ESS NaN (undefined), not a
        warning. One frozen in some chains, or at different values in different chains, warns
        through its R-hat and ESS; draws with NaN or inf warn as ``"non-finite draws"``.
    """
    return diagnose_for("diagnose", data, max_rows=max_rows, rhat_threshold=rhat_threshold,
                        min_ess_per_chain=min_ess_per_chain, min_bfmi=min_bfmi)


def diagnose_for(owner: str, data: xr.DataTree, *, max_rows: int, rhat_threshold: float, min_ess_per_chain: float,
                 min_bfmi: float) -> Diagnostics:
    """:func:`diagnose` for the public function ``owner`` (``report``), whose name its errors carry."""
    if not isinstance(data, xr.DataTree):
        raise TypeError(f"{owner} expects an ArviZ xarray.DataTree (ebm_ppl.sample, arviz.from_numpyro, "
                        f"arviz.from_dict, ...), got {type(data).__name__}")
    if "posterior" not in data.children:
        raise ValueError(f"{owner}: the data have no 'posterior' group; pass the result of ebm_ppl.sample or "
                         "arviz.from_numpyro(mcmc)")
    max_rows = checks.positive_int(max_rows, f"{owner}: max_rows")
    if checks.number(rhat_threshold, f"{owner}: rhat_threshold") < 1:
        raise ValueError(f"{owner}: rhat_threshold must be a number >= 1, got {rhat_threshold!r}")
    rhat_threshold = float(rhat_threshold)
    min_ess_per_chain = checks.non_negative_float(min_ess_per_chain, f"{owner}: min_ess_per_chain")
    min_bfmi = checks.non_negative_float(min_bfmi, f"{owner}: min_bfmi")
    data, notes = schema.current(data)

    _check_posterior(data["posterior"].to_dataset(), owner)
    posterior = table_rows.numeric(data["posterior"].to_dataset())
    num_chains, num_draws = int(posterior.sizes["chain"]), int(posterior.sizes["draw"])
    if num_draws < 4:
        raise ValueError(f"{owner}: split R-hat needs at least 4 draws per chain, got {num_draws}")
    stats = schema.stats(data)
    if stats is not None and "diverging" in stats:
        values = np.asarray(stats["diverging"].values)
        if values.dtype != bool and not np.all((values == 0) | (values == 1)):
            raise ValueError(f"{owner}: sample_stats.diverging must be booleans (or 0/1), one per draw; it holds "
                             f"values such as {np.unique(values[(values != 0) & (values != 1)])[:3].tolist()}")
    min_ess = float(min_ess_per_chain) * num_chains

    rows, locations = [], {}
    if stats is not None and "lp" in stats:
        rows += table_rows.rows(table_rows.numeric(stats[["lp"]]), "sample_stats", rhat_threshold, min_ess,
                                locations)
    coord_rows = table_rows.rows(posterior, "posterior", rhat_threshold, min_ess, locations)
    rows += coord_rows

    acceptance = _per_chain(stats, "acceptance_rate", float, "mean")
    per_chain_div = _per_chain(stats, "diverging", int, "sum")
    num_div = None if per_chain_div is None else int(sum(per_chain_div))
    bfmi = _bfmi(data, stats)
    attrs = dict(data["posterior"].attrs)
    low_bfmi = bfmi is not None and not all(b >= min_bfmi for b in bfmi)
    tempering = tempering_health(stats)
    low_swaps = tempering is not None and bool(tempering.low_pairs)
    ok = all(r["flag"] == "ok" for r in rows) and not num_div and not low_bfmi and not low_swaps
    return Diagnostics(
        table=rows,
        num_chains=num_chains,
        num_draws=num_draws,
        worst=sorted(coord_rows, key=table_rows.badness),
        acceptance_rate=acceptance,
        num_divergent=num_div,
        divergent_per_chain=per_chain_div,
        ok=bool(ok),
        rhat_threshold=float(rhat_threshold),
        min_ess=min_ess,
        bfmi=bfmi,
        min_bfmi=float(min_bfmi),
        max_rows=int(max_rows),
        kernel=_str_or_none(attrs.get("kernel")),
        potential=_str_or_none(attrs.get("potential")),
        notes=notes,
        tempering=tempering,
        locations=locations,
    )


# -- small helpers ------------------------------------------------------------------------------------

def _check_posterior(posterior: xr.Dataset, owner: str) -> None:
    """Draws the table can read: some real variable with ``chain`` and ``draw`` dimensions, and
    no complex one."""
    complex_vars = [name for name, var in posterior.data_vars.items() if np.issubdtype(var.dtype, np.complexfloating)]
    if complex_vars:
        raise ValueError(f"{owner}: the posterior variable(s) {complex_vars} are complex; R-hat and ESS need real "
                         "draws: pass their real and imaginary parts (or modulus and phase) as separate variables")
    numeric = {name: var.dims for name, var in posterior.data_vars.items()
               if var.dtype == bool or np.issubdtype(var.dtype, np.number)}
    if not numeric:
        raise ValueError(f"{owner}: the posterior group holds no numeric variables")
    if not any(set(schema.SAMPLE_DIMS) <= set(dims) for dims in numeric.values()):
        shown = ", ".join(f"{name} {tuple(dims)}" for name, dims in list(numeric.items())[:3])
        raise ValueError(f"{owner}: no posterior variable has both 'chain' and 'draw' dimensions (found {shown}); "
                         "ArviZ's schema holds draws as (chain, draw, *shape): e.g. arviz.from_dict("
                         "{'posterior': {name: draws[None]}}) for one chain")


def _per_chain(stats: xr.Dataset | None, name: str, kind, how: str) -> tuple | None:
    """Per chain, the mean (or sum) of sample statistic ``name``; None where there is none."""
    if stats is None or name not in stats or "chain" not in stats[name].dims:
        return None
    var = stats[name].astype(float)
    reduced = getattr(var, how)(dim=[d for d in var.dims if d != "chain"])
    return tuple(kind(v) for v in np.atleast_1d(reduced.values))


def _bfmi(data: xr.DataTree, stats: xr.Dataset | None) -> tuple[float, ...] | None:
    """``arviz.bfmi`` of the Hamiltonian per chain, or None where there is no ``energy``."""
    if stats is None or "energy" not in stats or set(stats["energy"].dims) != set(schema.SAMPLE_DIMS):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        values = az.bfmi(data)["energy"].transpose("chain").values
    return tuple(float(v) for v in np.atleast_1d(values))


def _nan_reduce(fn, values):
    values = np.asarray(values, dtype=float)
    return float(fn(values)) if np.isfinite(values).any() else math.nan


def _json_value(v):
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _str_or_none(v):
    return None if v is None else str(v)
