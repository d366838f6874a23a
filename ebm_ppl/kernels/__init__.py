"""MCMC kernels in BlackJAX's ``SamplingAlgorithm(init, step)`` convention.

``block_gibbs`` and ``site_gibbs`` take a potential (they need its conditionals);
``langevin`` takes a ``logdensity_fn`` like BlackJAX's own MALA, HMC and NUTS, which ebm_ppl uses
as they are.
"""

from ebm_ppl.kernels import block_gibbs as block_gibbs_module
from ebm_ppl.kernels import langevin as langevin_module
from ebm_ppl.kernels import site_gibbs as site_gibbs_module

block_gibbs = block_gibbs_module.as_top_level_api
site_gibbs = site_gibbs_module.as_top_level_api
langevin = langevin_module.as_top_level_api

__all__ = ["block_gibbs", "site_gibbs", "langevin"]
