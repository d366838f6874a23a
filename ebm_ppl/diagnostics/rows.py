"""The rows of the diagnostics table: ArviZ's statistics per scalar quantity, flagged.

Every number is ArviZ's (``arviz.rhat``: rank-normalised split R-hat; ``arviz.ess``: bulk and
tail ESS; ``arviz.mcse``: MCSE of the mean; Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021);
this module only lays them out one row per coordinate and flags them:

* a quantity with the same value in every draw of every chain (a pixel that is never on) is
  ``"constant (agreed)"``: R-hat and ESS are undefined (0/0) and nothing is wrong with the chains,
  so it does not warn;
* a quantity constant within chains but at different values across chains has an infinite
  R-hat and warns, as does one frozen in some chains while the others move (R-hat, ESS);
* otherwise a row warns when R-hat >= the threshold or bulk or tail ESS < the minimum.
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import xarray as xr

from ebm_ppl.diagnostics.schema import SAMPLE_DIMS

__all__ = ["CONSTANT", "NUMERIC", "numeric", "rows", "badness", "is_constant"]

NUMERIC = ("mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "rhat")
#: The note of a quantity constant in every chain at one value.
CONSTANT = "constant (agreed)"


def is_constant(row: dict) -> bool:
    """Whether ``row`` is a quantity with one value in every draw of every chain."""
    return row["note"] == CONSTANT


def numeric(ds: xr.Dataset) -> xr.Dataset:
    """Variables with chain and draw dims (moved first), booleans as floats (a spin or a pixel)."""
    keep = {}
    for name, var in ds.data_vars.items():
        if var.dims[:2] != SAMPLE_DIMS:
            if not set(SAMPLE_DIMS) <= set(var.dims):
                continue
            var = var.transpose(*SAMPLE_DIMS, ...)
        if var.dtype == bool:
            var = var.astype(float)
        if np.issubdtype(var.dtype, np.number):
            keep[name] = var
    return xr.Dataset(keep)


def rows(ds: xr.Dataset, group: str, rhat_threshold: float, min_ess: float, locations: dict) -> list[dict]:
    """One row per scalar coordinate of every variable in ``ds`` (see the module docstring);
    ``locations[label] = (group, variable, index)`` is filled in for each."""
    with np.errstate(divide="ignore", invalid="ignore"):  # constant coordinates: 0/0 inside R-hat
        results = {
            "mean": az.mean(ds, dim=list(SAMPLE_DIMS), round_to="none"),
            "sd": az.std(ds, dim=list(SAMPLE_DIMS), round_to="none"),
            "mcse_mean": az.mcse(ds, method="mean"),
            "ess_bulk": az.ess(ds, method="bulk"),
            "ess_tail": az.ess(ds, method="tail"),
            "rhat": az.rhat(ds),
        }
    out = []
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
            row = {"quantity": label, **{k: float(columns[k][index]) for k in NUMERIC}}
            notes, constant = [], finite[index] and spread[index] == 0
            if not finite[index]:
                notes.append("non-finite draws")
            elif constant:
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
            row["note"] = ", ".join(notes) or (CONSTANT if constant else "")
            out.append(row)
            locations[label] = (group, name, tuple(int(i) for i in index))
    return out


def _label(name: str, var: xr.DataArray, dims, index) -> str:
    if not dims:
        return name
    parts = []
    for dim, i in zip(dims, index):
        coord = var.coords.get(dim)
        value = coord.values[i] if coord is not None else i
        parts.append(str(value.item() if isinstance(value, np.generic) else value))
    return f"{name}[{','.join(parts)}]"


def badness(row: dict):
    """Sort key, worst first: flagged rows, then ok rows that move, then constant (agreed) rows;
    within the first two by R-hat descending (undefined counts as worst) then by the smaller of
    bulk and tail ESS ascending."""
    if is_constant(row):
        return (2, 0.0, 0.0)
    rhat = row["rhat"] if math.isfinite(row["rhat"]) else math.inf
    ess = np.nanmin([row["ess_bulk"], row["ess_tail"], math.inf])
    return (0 if row["flag"] != "ok" else 1, -rhat, ess)
