"""Energy families, each a registered :class:`~ebm_ppl.potentials.base.Potential`."""

from ebm_ppl.potentials.base import Box, Potential, Support, box, categorical, validate_input
from ebm_ppl.potentials.registry import ENTRY_POINT_GROUP, get_potential, list_potentials, register_potential
from ebm_ppl.potentials.bernoulli import Bernoulli
from ebm_ppl.potentials.factorized import Factorized
from ebm_ppl.potentials.function import FunctionPotential, potential
from ebm_ppl.potentials.gaussian import Gaussian
from ebm_ppl.potentials.boltzmann import BoltzmannMachine
from ebm_ppl.potentials.bernoulli_rbm import BernoulliRBM
from ebm_ppl.potentials.gaussian_bernoulli_rbm import GaussianBernoulliRBM
from ebm_ppl.potentials.subspace_rbm import SubspaceRBM
from ebm_ppl.potentials.class_rbm import ClassRBM
from ebm_ppl.potentials.generic_rbm import RBM
from ebm_ppl.potentials import layers
from ebm_ppl.potentials.jem import JEM
from ebm_ppl.potentials.partition import log_partition

__all__ = [
    "Potential",
    "Support",
    "Box",
    "box",
    "categorical",
    "potential",
    "FunctionPotential",
    "Bernoulli",
    "Factorized",
    "validate_input",
    "ENTRY_POINT_GROUP",
    "get_potential",
    "list_potentials",
    "register_potential",
    "Gaussian",
    "BoltzmannMachine",
    "BernoulliRBM",
    "GaussianBernoulliRBM",
    "SubspaceRBM",
    "ClassRBM",
    "RBM",
    "layers",
    "JEM",
    "log_partition",
]
