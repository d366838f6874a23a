"""Chains to ArviZ data: ``(chain, draw, *event)`` arrays into an ``xarray.DataTree``."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ebm_ppl.kernels.registry import STAT_DIMS
from ebm_ppl.potentials.base import Potential
from ebm_ppl.sharding import to_host

__all__ = ["draws_to_datatree", "STATS_SCHEMA"]

#: The ``stats_schema`` attribute of the groups ``ep.sample`` writes: ``sample_stats`` follows
#: ArviZ's conventions (``lp`` = log density, ``energy`` = the Hamiltonian). Files without it and
#: with ``inference_library = "ebm_ppl"`` hold the old meaning (``energy`` = E(x)).
STATS_SCHEMA = "arviz"


def draws_to_datatree(draws, stats: dict[str, Any], *, kernel: str, potential: Potential):
    """Build the DataTree: ``posterior.x`` of shape ``(chain, draw, *event_shape)`` and
    ``sample_stats`` (named as in the kernel table: ``lp`` = -E(x) of each draw, ``energy`` =
    the Hamiltonian for HMC/NUTS, and the kernel's statistics)."""
    draws = to_host(draws)
    event_dims = [f"x_dim_{i}" for i in range(draws.ndim - 2)]
    sample_stats = {}
    for name, value in stats.items():
        value = to_host(value)
        if value.ndim == 1:  # per-chain constants such as a tuned step size
            value = np.broadcast_to(value[:, None], draws.shape[:2])
        sample_stats[name] = value
    attrs = {"kernel": kernel, "potential": type(potential).name, "inference_library": "ebm_ppl",
             "stats_schema": STATS_SCHEMA}
    import arviz as az  # on first use: ArviZ is most of the package's import time

    with warnings.catch_warnings():  # its guess at swapped dimensions: ours are named, more chains than draws is fine
        warnings.filterwarnings("ignore", message="Found chain dimension to be longer than draw dimension")
        return az.from_dict(
            {"posterior": {"x": draws}, "sample_stats": sample_stats},
            dims={"x": event_dims, **{name: list(STAT_DIMS[name]) for name in sample_stats if name in STAT_DIMS}},
            attrs={"posterior": attrs, "sample_stats": attrs},
        )
