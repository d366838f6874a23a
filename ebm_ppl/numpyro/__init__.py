"""The PPL bridge: potentials inside NumPyro models, and NumPyro models for BlackJAX.

    import numpyro, numpyro.distributions as dist
    import ebm_ppl as ep

    def model(y_obs):
        x = numpyro.sample("x", ep.numpyro.EnergyDistribution(prior))
        numpyro.sample("y", dist.Normal(mask * x, 0.1), obs=y_obs)
"""

# numpyro itself first: ArviZ binds ``numpyro`` as a lazy module (lazy_loader), and a submodule
# imported through it first (numpyro.infer.util) leaves numpyro.infer without its `initialization`
# attribute, which arviz.from_numpyro reads (an AttributeError on any model's run otherwise).
import numpyro  # noqa: F401, I001

from ebm_ppl.numpyro.convert import logdensity_fn, model_logdensity, potential_fn
from ebm_ppl.numpyro.distribution import DoublyIntractableWarning, EnergyDistribution, factor
from ebm_ppl.numpyro.kernel import EnergyKernel, EnergyKernelState
from ebm_ppl.numpyro.model_potential import ModelPotential, potential_from_model
from ebm_ppl.numpyro.evidence import BDMC, bdmc, log_evidence
from ebm_ppl.partition.comparison import Comparison, compare

__all__ = [
    "EnergyDistribution",
    "factor",
    "DoublyIntractableWarning",
    "potential_fn",
    "logdensity_fn",
    "model_logdensity",
    "EnergyKernel",
    "EnergyKernelState",
    "potential_from_model",
    "ModelPotential",
    "log_evidence",
    "bdmc",
    "BDMC",
    "compare",
    "Comparison",
]
from ebm_ppl.numpyro.jem_head import (  # noqa: E402
    BayesianHead,
    PointHead,
    expected_calibration_error,
    fit_jem_head,
    jem_features,
    jem_head_model,
    ood_auroc,
)

__all__ += ["jem_head_model", "fit_jem_head", "jem_features", "BayesianHead", "PointHead",
            "expected_calibration_error", "ood_auroc"]
