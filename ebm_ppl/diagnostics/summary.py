"""Convergence diagnostics of a sampling run: ArviZ's R-hat, ESS and MCSE, one row per quantity.

The quantities are the energy ``E(x)`` of each draw (``sample_stats.energy``) and every coordinate
of every posterior variable (``posterior.x``: one row per pixel of an image). All statistics come
from ArviZ (``arviz.rhat``: rank-normalised split R-hat; ``arviz.ess``: bulk and tail ESS;
``arviz.mcse``: MCSE of the mean; Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021); this
module only arranges them, flags them against the thresholds recommended there (R-hat < 1.01,
ESS >= 100 per chain) and prints them so that a 784-pixel image stays readable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import arviz as az
import numpy as np
import xarray as xr

from ebm_ppl import checks
from ebm_ppl.diagnostics.formatting import COLUMNS, TEXT_COLUMNS, format_row, format_summary

__all__ = ["diagnose", "Diagnostics", "COLUMNS"]

_NUMERIC = ("mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "rhat")
_STUCK = "stuck (constant)"
_SAMPLE_DIMS = ("chain", "draw")


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of one run; see :func:`diagnose`.

    Attributes:
        table: one dict per quantity, energy first, then every coordinate in order, with keys
            ``COLUMNS``: ``quantity`` (``"energy"``, ``"x[3]"``, ``"x[1,2]"``), ``mean``, ``sd``,
            ``mcse_mean``, ``ess_bulk``, ``ess_tail``, ``rhat`` (floats, NaN where undefined),
            ``flag`` (``"ok"`` or ``"warn"``) and ``note`` (why it warns, ``""`` when ok).
        num_chains: chains in the run.
        num_draws: draws per chain.
        worst: the coordinate rows (energy excluded) from worst to best mixing: flagged rows by
            highest R-hat then lowest ESS (min of bulk and tail), then stuck (constant)
            coordinates, then the rows that are ok in the same order.
        acceptance_rate: mean acceptance rate of each chain, or None when the kernel has none.
        num_divergent: number of divergent transitions over all chains, or None when the kernel
            does not report divergences.
        divergent_per_chain: the same per chain, or None.
        ok: no row is flagged and there was no divergence.
        rhat_threshold: rows with R-hat at or above this warn.
        min_ess: rows with bulk or tail ESS below this (``min_ess_per_chain * num_chains``) warn.
        max_rows: how many coordinate rows ``str()`` shows before summarising.
        kernel: the run's kernel, when the data carry it.
        potential: the run's potential name, when the data carry it.
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
    max_rows: int = 20
    kernel: str | None = None
    potential: str | None = None
    # quantity -> (group, variable, index into the event dims); used by the report's plots.
    locations: dict[str, tuple[str, str, tuple[int, ...]]] = field(default_factory=dict, repr=False,
                                                                    compare=False)

    # -- views ------------------------------------------------------------------------------------

    @property
    def energy(self) -> dict[str, Any] | None:
        """The energy row, or None when the data have no ``sample_stats.energy``."""
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
    def stuck(self) -> list[str]:
        """Quantities that never changed value (R-hat and ESS undefined)."""
        return [row["quantity"] for row in self.table if _STUCK in row["note"]]

    def variable_summaries(self) -> list[dict[str, Any]]:
        """One summary per posterior variable: its coordinate count, max R-hat, min bulk and tail
        ESS (over coordinates where they are defined), and how many coordinates warn / are stuck."""
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
                "num_stuck": sum(_STUCK in r["note"] for r in rows),
            })
        return out

    # -- output -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (NaN becomes None)."""
        return {
            "num_chains": self.num_chains,
            "num_draws": self.num_draws,
            "kernel": self.kernel,
            "potential": self.potential,
            "ok": self.ok,
            "thresholds": {"rhat": self.rhat_threshold, "min_ess": self.min_ess},
            "acceptance_rate": None if self.acceptance_rate is None else list(self.acceptance_rate),
            "num_divergent": self.num_divergent,
            "divergent_per_chain": None if self.divergent_per_chain is None else list(self.divergent_per_chain),
            "table": [{k: _json_value(v) for k, v in row.items()} for row in self.table],
            "worst": [row["quantity"] for row in self.worst],
            "variables": [{k: _json_value(v) for k, v in s.items()} for s in self.variable_summaries()],
        }

    def shown_rows(self) -> tuple[list[dict[str, Any]], bool]:
        """The coordinate rows ``str()`` shows and whether they are a truncated worst-first list."""
        coords = self.coordinates
        if len(coords) <= self.max_rows:
            return coords, False
        return self.worst[: self.max_rows], True

    def __str__(self) -> str:
        header = f"MCMC diagnostics: {self.num_chains} chains x {self.num_draws} draws"
        about = ", ".join(f"{k} {v}" for k, v in (("kernel", self.kernel), ("potential", self.potential)) if v)
        lines = [header + (f" ({about})" if about else "")]
        shown, truncated = self.shown_rows()
        rows = ([self.energy] if self.energy is not None else []) + shown
        cells = [list(COLUMNS)] + [format_row(row) for row in rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]

        def render(c):
            return "  ".join(v.ljust(w) if name in TEXT_COLUMNS else v.rjust(w)
                             for name, v, w in zip(COLUMNS, c, widths)).rstrip()

        lines.append(render(cells[0]))
        lines.append("-" * len(lines[-1]))
        energy_lines = 1 if self.energy is not None else 0
        lines.extend(render(c) for c in cells[1:1 + energy_lines])
        if truncated:
            for s in self.variable_summaries():
                lines.append(format_summary(s))
            lines.append(f"worst {len(shown)} of {len(self.coordinates)} coordinates:")
        lines.extend(render(c) for c in cells[1 + energy_lines:])
        if self.stuck and truncated:
            names = self.stuck
            listed = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
            lines.append(f"stuck (never changed value): {listed}")
        if self.acceptance_rate is not None:
            lines.append("acceptance rate per chain: " + " ".join(f"{a:.3f}" for a in self.acceptance_rate))
        if self.num_divergent is not None:
            per_chain = " ".join(str(d) for d in self.divergent_per_chain or ())
            lines.append(f"divergences: {self.num_divergent} (per chain: {per_chain})")
        per_chain_ess = self.min_ess / max(self.num_chains, 1)
        lines.append(f"thresholds: R-hat < {self.rhat_threshold:g}, bulk and tail ESS >= {self.min_ess:g} "
                     f"({per_chain_ess:g} per chain)")
        lines.append("verdict: " + self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        """``"ok"`` or a one-line account of what warns."""
        if self.ok:
            return "ok"
        parts = []
        flagged = self.flagged
        if flagged:
            stuck = len(self.stuck)
            parts.append(f"{len(flagged)} of {len(self.table)} quantities flagged"
                         + (f" ({stuck} stuck)" if stuck else ""))
        if self.num_divergent:
            parts.append(f"{self.num_divergent} divergent transitions")
        return "WARN: " + "; ".join(parts)


def diagnose(data: xr.DataTree, *, max_rows: int = 20, rhat_threshold: float = 1.01,
             min_ess_per_chain: float = 100) -> Diagnostics:
    """R-hat, bulk/tail ESS and MCSE of the energy and of every coordinate of a run, with flags.

    Args:
        data: an ``xarray.DataTree`` as returned by :func:`ebm_ppl.inference.sample` (group
            ``posterior`` with draws of shape ``(chain, draw, *event)``, optionally
            ``sample_stats`` with ``energy`` of shape ``(chain, draw)`` and kernel statistics).
        max_rows: how many coordinate rows ``str()`` shows; with more coordinates it prints the
            energy row, one summary line per variable and the ``max_rows`` worst coordinates.
        rhat_threshold: a row warns when its rank-normalised split R-hat is ``>=`` this (1.01,
            Vehtari et al. 2021).
        min_ess_per_chain: a row warns when its bulk or tail ESS is below this many per chain
            (100 per chain, Vehtari et al. 2021).

    Returns:
        :class:`Diagnostics`. Coordinates that never change value (a pixel that never flips) get
        R-hat and ESS NaN (they are undefined; ArviZ would give NaN R-hat and an ESS equal to the
        number of draws) and warn as ``"stuck (constant)"``; draws with NaN or inf warn as
        ``"non-finite draws"``.
    """
    if not isinstance(data, xr.DataTree):
        raise TypeError(f"diagnose expects the xarray.DataTree returned by ebm_ppl.inference.sample "
                        f"(or arviz.from_dict), got {type(data).__name__}")
    if "posterior" not in data.children:
        raise ValueError("diagnose: the data have no 'posterior' group; pass the result of sample()")
    max_rows = checks.positive_int(max_rows, "diagnose: max_rows")
    if checks.number(rhat_threshold, "diagnose: rhat_threshold") < 1:
        raise ValueError(f"diagnose: rhat_threshold must be a number >= 1, got {rhat_threshold!r}")
    rhat_threshold = float(rhat_threshold)
    min_ess_per_chain = checks.non_negative_float(min_ess_per_chain, "diagnose: min_ess_per_chain")

    posterior = _numeric(data["posterior"].to_dataset(), "posterior")
    if not posterior.data_vars:
        raise ValueError("diagnose: the posterior group holds no numeric variables")
    num_chains, num_draws = int(posterior.sizes["chain"]), int(posterior.sizes["draw"])
    if num_draws < 4:
        raise ValueError(f"diagnose: split R-hat needs at least 4 draws per chain, got {num_draws}")
    stats = _stats_group(data, "sample_stats")
    min_ess = float(min_ess_per_chain) * num_chains

    rows, locations = [], {}
    if stats is not None and "energy" in stats:
        energy = _numeric(stats[["energy"]], "sample_stats")
        rows += _rows(energy, "sample_stats", rhat_threshold, min_ess, locations)
    coord_rows = _rows(posterior, "posterior", rhat_threshold, min_ess, locations)
    rows += coord_rows

    acceptance = per_chain_div = num_div = None
    if stats is not None and "acceptance_rate" in stats:
        acc = stats["acceptance_rate"].astype(float).mean(dim=[d for d in stats["acceptance_rate"].dims if d != "chain"])
        acceptance = tuple(float(a) for a in np.atleast_1d(acc.values))
    if stats is not None and "diverging" in stats:
        div = stats["diverging"].astype(bool).sum(dim=[d for d in stats["diverging"].dims if d != "chain"])
        per_chain_div = tuple(int(d) for d in np.atleast_1d(div.values))
        num_div = int(sum(per_chain_div))

    attrs = dict(data["posterior"].attrs)
    ok = all(r["flag"] == "ok" for r in rows) and not num_div
    return Diagnostics(
        table=rows,
        num_chains=num_chains,
        num_draws=num_draws,
        worst=sorted(coord_rows, key=_badness),
        acceptance_rate=acceptance,
        num_divergent=num_div,
        divergent_per_chain=per_chain_div,
        ok=bool(ok),
        rhat_threshold=float(rhat_threshold),
        min_ess=min_ess,
        max_rows=int(max_rows),
        kernel=_str_or_none(attrs.get("kernel")),
        potential=_str_or_none(attrs.get("potential")),
        locations=locations,
    )


# -- computation ------------------------------------------------------------------------------------

def _stats_group(data, name):
    return data[name].to_dataset() if name in data.children else None


def _numeric(ds: xr.Dataset, group: str) -> xr.Dataset:
    """Variables with chain and draw dims, booleans as floats (a spin or a pixel)."""
    keep = {}
    for name, var in ds.data_vars.items():
        if var.dims[:2] != _SAMPLE_DIMS:
            if set(_SAMPLE_DIMS) <= set(var.dims):
                var = var.transpose(*_SAMPLE_DIMS, ...)
            else:
                continue
        if var.dtype == bool:
            var = var.astype(float)
        if np.issubdtype(var.dtype, np.number):
            keep[name] = var
    return xr.Dataset(keep)


def _rows(ds: xr.Dataset, group: str, rhat_threshold: float, min_ess: float, locations) -> list[dict]:
    """One row per scalar coordinate of every variable in ``ds``, statistics from ArviZ."""
    with np.errstate(divide="ignore", invalid="ignore"):  # constant coordinates: 0/0 inside R-hat
        results = {
            "mean": az.mean(ds, dim=list(_SAMPLE_DIMS), round_to="none"),
            "sd": az.std(ds, dim=list(_SAMPLE_DIMS), round_to="none"),
            "mcse_mean": az.mcse(ds, method="mean"),
            "ess_bulk": az.ess(ds, method="bulk"),
            "ess_tail": az.ess(ds, method="tail"),
            "rhat": az.rhat(ds),
        }
    rows = []
    for name, var in ds.data_vars.items():
        values = np.asarray(var.values)
        event_dims = var.dims[2:]
        event_shape = values.shape[2:]
        finite = np.isfinite(values).all(axis=(0, 1))
        filled = np.where(np.isfinite(values), values, 0.0)
        spread = np.ptp(filled, axis=(0, 1))
        frozen_chains = (np.ptp(filled, axis=1) == 0).sum(axis=0)  # chains where it never moved
        columns = {k: np.broadcast_to(np.asarray(r[name].transpose(*event_dims).values, dtype=float),
                                      event_shape) for k, r in results.items()}
        for index in np.ndindex(*event_shape):
            label = _label(name, var, event_dims, index)
            if label in locations:  # a posterior variable named like a sample statistic
                label = f"{group}.{label}"
            row = {"quantity": label}
            row.update({k: float(columns[k][index]) for k in _NUMERIC})
            notes = []
            if not finite[index]:
                notes.append("non-finite draws")
            elif spread[index] == 0:
                notes.append(_STUCK)
                row.update(ess_bulk=math.nan, ess_tail=math.nan, rhat=math.nan)
            else:
                if not math.isfinite(row["rhat"]):
                    notes.append("R-hat undefined")
                elif row["rhat"] >= rhat_threshold:
                    notes.append(f"R-hat >= {rhat_threshold:g}")
                if not row["ess_bulk"] >= min_ess:
                    notes.append(f"bulk ESS < {min_ess:g}")
                if not row["ess_tail"] >= min_ess:
                    notes.append(f"tail ESS < {min_ess:g}")
                if notes and frozen_chains[index]:
                    notes.append(f"constant in {frozen_chains[index]} of {values.shape[0]} chains")
            row["flag"] = "warn" if notes else "ok"
            row["note"] = ", ".join(notes)
            rows.append(row)
            locations[label] = (group, name, tuple(int(i) for i in index))
    return rows


def _label(name: str, var: xr.DataArray, dims, index) -> str:
    if not dims:
        return name
    parts = []
    for dim, i in zip(dims, index):
        coord = var.coords.get(dim)
        value = coord.values[i] if coord is not None else i
        parts.append(str(value.item() if isinstance(value, np.generic) else value))
    return f"{name}[{','.join(parts)}]"


def _badness(row):
    """Sort key, worst first: flagged (not stuck) rows, then stuck rows, then ok rows; within each
    by R-hat descending (undefined counts as worst) then by min(bulk, tail) ESS ascending."""
    stuck = _STUCK in row["note"]
    group = 1 if stuck else (0 if row["flag"] != "ok" else 2)
    rhat = row["rhat"] if math.isfinite(row["rhat"]) else math.inf
    ess = np.nanmin([row["ess_bulk"], row["ess_tail"], math.inf])
    return (group, -rhat if not stuck else 0.0, ess if not stuck else 0.0)


# -- small helpers ------------------------------------------------------------------------------------

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
