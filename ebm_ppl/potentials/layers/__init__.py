"""Layers of units for restricted Boltzmann machines (:mod:`ebm_ppl.potentials.layers.base` says
what a layer knows): Binary, Spin and Potts (discrete), Gaussian and ScaledGaussian, ReLU and
dReLU (rectified). ``LAYERS`` maps each kind's name to its class (the model files name layers so).
"""

from ebm_ppl.potentials.layers.base import Layer, along
from ebm_ppl.potentials.layers.discrete import Binary, Potts, Spin
from ebm_ppl.potentials.layers.gaussian import Gaussian, ScaledGaussian
from ebm_ppl.potentials.layers.rectified import DReLU, ReLU

#: Layer classes by kind, as ``ep.RBM``'s model files name them.
LAYERS: dict[str, type[Layer]] = {"binary": Binary, "spin": Spin, "potts": Potts, "gaussian": Gaussian,
                                  "scaled_gaussian": ScaledGaussian, "relu": ReLU, "drelu": DReLU}

__all__ = ["Layer", "along", "Binary", "Spin", "Potts", "Gaussian", "ScaledGaussian", "ReLU", "DReLU", "LAYERS"]
