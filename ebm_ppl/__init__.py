"""ebm_ppl: energy-based models as first-class potentials for JAX probabilistic programming.

    import ebm_ppl as ep
    data = ep.data.digits(binarize=True)
    rbm = ep.BernoulliRBM.init(key, n_visible=64, n_hidden=16)
    ep.log_partition(rbm)
"""

from ebm_ppl import checks, compiler, data, diagnostics, kernels, numpyro, partition, random, testing, training
from ebm_ppl.diagnostics import diagnose, report
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
