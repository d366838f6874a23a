"""The ``sample_stats`` the diagnostics read: ArviZ's names and meanings, whoever wrote the data.

ArviZ (and Stan, PyMC, NumPyro, BlackJAX through ``arviz.from_dict``) name the per-draw sampler
statistics the same way, and so does :func:`ebm_ppl.sample`:

* ``lp``: the log density of each draw (-E(x) for a potential, the log joint for a model);
* ``energy``: the Hamiltonian of HMC/NUTS at the kept state (what ``arviz.bfmi`` and
  ``arviz_plots.plot_energy`` read); samplers without momentum have none;
* ``diverging``, ``acceptance_rate``, ``step_size``, ``tree_depth``, ``n_steps``, and any
  sampler-specific statistic (``hidden_mean``, ``flip_rate``, ``grad_norm`` for ours).

Runs written by ebm_ppl before this convention (``inference_library = "ebm_ppl"``, no
``stats_schema`` attribute) stored E(x) as ``energy`` for every kernel. :func:`current` reads them
exactly: ``lp = -energy`` and no ``energy`` (those files never held a Hamiltonian), with a note
saying so, so an old ``samples.nc`` is never diagnosed with a meaningless BFMI.
"""

from __future__ import annotations

import xarray as xr

__all__ = ["LEGACY_NOTE", "SAMPLE_DIMS", "current", "is_legacy", "stats", "sampler_stat_names"]

SAMPLE_DIMS = ("chain", "draw")

#: The note attached to diagnostics of a run converted by :func:`current`.
LEGACY_NOTE = ("this run was written by an older ebm_ppl, whose sample_stats.energy held E(x) of each draw; "
               "it is read as lp = -energy (ArviZ's log density), and it has no Hamiltonian, hence no BFMI")

#: Statistics that are not plotted as sampler statistics (diagnosed or plotted on their own).
_NOT_SAMPLER_STATS = ("lp", "energy", "diverging")


def stats(data: xr.DataTree) -> xr.Dataset | None:
    """The ``sample_stats`` group as a Dataset, or None where the data have none."""
    return data["sample_stats"].to_dataset() if "sample_stats" in data.children else None


def is_legacy(data: xr.DataTree) -> bool:
    """Whether ``data`` is an ``ep.sample`` run from before ArviZ's schema (``energy`` = E(x))."""
    ds = stats(data)
    if ds is None or "energy" not in ds.data_vars or "lp" in ds.data_vars:
        return False
    attrs = {**data.attrs, **data["sample_stats"].attrs}
    if "posterior" in data.children:
        attrs.update(data["posterior"].attrs)
    return attrs.get("inference_library") == "ebm_ppl" and "stats_schema" not in attrs


def current(data: xr.DataTree) -> tuple[xr.DataTree, tuple[str, ...]]:
    """``data`` in ArviZ's schema and the notes about what was converted (none: ``data`` itself).

    An old ebm_ppl run (:func:`is_legacy`) becomes a copy whose ``sample_stats`` has ``lp =
    -energy`` instead of ``energy``; every other run is returned as it is.
    """
    if not is_legacy(data):
        return data, ()
    ds = stats(data)
    converted = ds.drop_vars("energy").assign(lp=-ds["energy"])
    converted.attrs = {**ds.attrs, "stats_schema": "arviz (converted from ebm_ppl's energy = E(x))"}
    out = data.copy()
    out["sample_stats"] = xr.DataTree(converted)
    return out, (LEGACY_NOTE,)


def sampler_stat_names(data: xr.DataTree) -> list[str]:
    """The per-draw sampler statistics worth a trace (``acceptance_rate``, ``step_size``,
    ``tree_depth``, ``hidden_mean``, ...): numeric, one value per draw, not constant, and not
    ``lp``, ``energy`` or ``diverging`` (which have their own rows and plots)."""
    ds = stats(data)
    if ds is None:
        return []
    names = []
    for name, var in ds.data_vars.items():
        if name in _NOT_SAMPLER_STATS or set(var.dims) != set(SAMPLE_DIMS) or var.dtype.kind not in "biuf":
            continue
        values = var.values
        if values.size and values.min() != values.max():
            names.append(name)
    first = [n for n in ("acceptance_rate", "step_size", "tree_depth", "n_steps") if n in names]
    return first + sorted(n for n in names if n not in first)
