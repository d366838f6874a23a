"""MCMC kernels in BlackJAX's ``SamplingAlgorithm(init, step)`` convention, and the kernel table.

``block_gibbs``, ``site_gibbs``, ``gibbs_with_gradients``, ``discrete_langevin`` and
``parallel_tempering`` take a potential (they need its conditionals); ``langevin``
takes a ``logdensity_fn`` like BlackJAX's own MALA, HMC and NUTS, which ebm_ppl uses as they are.
Each is exposed as BlackJAX exposes ``blackjax.mala``: calling it builds the algorithm, and
``.init`` / ``.build_kernel`` are the low-level pieces (state and info types live in the modules,
e.g. ``ebm_ppl.kernels.block_gibbs.BlockGibbsState``). :data:`KERNELS` is the table every runner
reads (:mod:`ebm_ppl.kernels.registry`).
"""

from ebm_ppl.kernels.replica_exchange import sampling_api as parallel_tempering
from ebm_ppl.kernels.block_gibbs import sampling_api as block_gibbs
from ebm_ppl.kernels.discrete_langevin import sampling_api as discrete_langevin
from ebm_ppl.kernels.gibbs_with_gradients import sampling_api as gibbs_with_gradients
from ebm_ppl.kernels.langevin import sampling_api as langevin
from ebm_ppl.kernels.site_gibbs import sampling_api as site_gibbs
from ebm_ppl.moves.gibbs import gibbs_sweeps
from ebm_ppl.kernels.registry import KERNELS, STAT_MEANINGS, KernelSpec, check_kernel, default_kernel, get_kernel

__all__ = ["block_gibbs", "site_gibbs", "langevin", "gibbs_with_gradients", "discrete_langevin", "parallel_tempering",
           "gibbs_sweeps", "KERNELS", "STAT_MEANINGS", "KernelSpec", "default_kernel", "get_kernel", "check_kernel"]
