"""MCMC kernels in BlackJAX's ``SamplingAlgorithm(init, step)`` convention, and the kernel table.

``block_gibbs``, ``site_gibbs``, ``gibbs_with_gradients``, ``discrete_langevin`` and
``parallel_tempering`` take a potential (they need its conditionals); ``langevin``
takes a ``logdensity_fn`` like BlackJAX's own MALA, HMC and NUTS, which ebm_ppl uses as they are.
Each is exposed as BlackJAX exposes ``blackjax.mala``: calling it builds the algorithm, and
``.init`` / ``.build_kernel`` are the low-level pieces (state and info types live in the modules,
e.g. ``ebm_ppl.kernels.block_gibbs.BlockGibbsState``). :data:`KERNELS` is the table every runner
reads (:mod:`ebm_ppl.kernels.registry`).
"""

from blackjax import GenerateSamplingAPI

from ebm_ppl.kernels import block_gibbs as _block_gibbs
from ebm_ppl.kernels import discrete_langevin as _discrete_langevin
from ebm_ppl.kernels import gibbs_with_gradients as _gibbs_with_gradients
from ebm_ppl.kernels import langevin as _langevin
from ebm_ppl.kernels import replica_exchange as _replica_exchange
from ebm_ppl.kernels import site_gibbs as _site_gibbs
from ebm_ppl.kernels.gibbs import gibbs_sweeps
from ebm_ppl.kernels.registry import KERNELS, STAT_MEANINGS, KernelSpec, check_kernel, default_kernel, get_kernel

block_gibbs = GenerateSamplingAPI(_block_gibbs.as_top_level_api, _block_gibbs.init, _block_gibbs.build_kernel)
site_gibbs = GenerateSamplingAPI(_site_gibbs.as_top_level_api, _site_gibbs.init, _site_gibbs.build_kernel)
langevin = GenerateSamplingAPI(_langevin.as_top_level_api, _langevin.init, _langevin.build_kernel)
gibbs_with_gradients = GenerateSamplingAPI(_gibbs_with_gradients.as_top_level_api, _gibbs_with_gradients.init,
                                           _gibbs_with_gradients.build_kernel)
discrete_langevin = GenerateSamplingAPI(_discrete_langevin.as_top_level_api, _discrete_langevin.init,
                                        _discrete_langevin.build_kernel)
parallel_tempering = GenerateSamplingAPI(_replica_exchange.as_top_level_api, _replica_exchange.init,
                                         _replica_exchange.build_kernel)

__all__ = ["block_gibbs", "site_gibbs", "langevin", "gibbs_with_gradients", "discrete_langevin", "parallel_tempering",
           "gibbs_sweeps", "KERNELS", "STAT_MEANINGS", "KernelSpec", "default_kernel", "get_kernel", "check_kernel"]
langevin.register_factory("run", _langevin.run)
langevin.register_factory("temperature", _langevin.temperature)
gibbs_with_gradients.register_factory("proposal_log_probs", _gibbs_with_gradients.proposal_log_probs)
discrete_langevin.register_factory("proposal_log_probs", _discrete_langevin.proposal_log_probs)
for _name in ("ladder", "adapt_ladder", "tempering", "pair_log_acceptance"):
    parallel_tempering.register_factory(_name, getattr(_replica_exchange, _name))
