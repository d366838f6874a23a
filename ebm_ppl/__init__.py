"""ebm_ppl: energy-based models as first-class potentials for JAX probabilistic programming.

    import ebm_ppl as ep
    data = ep.data.digits(binarize=True)
    rbm = ep.BernoulliRBM.init(key, n_visible=64, n_hidden=16)
    ep.log_partition(rbm)

``ep.diagnostics`` (and ``ep.diagnose``, ``ep.report``) load on first use: they bring ArviZ,
xarray and matplotlib, two thirds of the package's import time, which a script that only trains
or estimates log Z never needs.
"""

from ebm_ppl import checks, compiler, data, kernels, numpyro, partition, random, sharding, testing, training
from ebm_ppl._version import __version__
from ebm_ppl.inference import sample
from ebm_ppl.io import load, save
from ebm_ppl.training import fit
from ebm_ppl.partition import ais, log_likelihood, reverse_ais, sandwich
from ebm_ppl.potentials import (
    JEM,
    BernoulliRBM,
    BoltzmannMachine,
    ClassRBM,
    Gaussian,
    GaussianBernoulliRBM,
    Potential,
    RBM,
    SubspaceRBM,
    Support,
    layers,
    box,
    categorical,
    potential,
    get_potential,
    list_potentials,
    log_partition,
    register_potential,
)

__all__ = [
    "__version__",
    "data",
    "kernels",
    "random",
    "sharding",
    "compiler",
    "checks",
    "sample",
    "diagnostics",
    "diagnose",
    "report",
    "partition",
    "training",
    "numpyro",
    "testing",
    "fit",
    "ais",
    "reverse_ais",
    "log_likelihood",
    "sandwich",
    "load",
    "save",
    "Potential",
    "Support",
    "potential",
    "box",
    "categorical",
    "register_potential",
    "get_potential",
    "list_potentials",
    "log_partition",
    "Gaussian",
    "BoltzmannMachine",
    "BernoulliRBM",
    "GaussianBernoulliRBM",
    "SubspaceRBM",
    "ClassRBM",
    "RBM",
    "layers",
    "JEM",
]

_LAZY = ("diagnostics", "diagnose", "report")


def __getattr__(name: str):
    """``diagnostics``, ``diagnose`` and ``report``, imported on first access (PEP 562)."""
    if name in _LAZY:
        import importlib

        module = importlib.import_module("ebm_ppl.diagnostics")
        value = module if name == "diagnostics" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ebm_ppl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
