"""Exact moves and the pieces of samplers shared by the samplers, AIS and training, without BlackJAX.

:mod:`ebm_ppl.moves.site` (one systematic-scan site-Gibbs sweep), :mod:`ebm_ppl.moves.gibbs`
(Gibbs sweeps of many chains: block Gibbs where the potential has block conditionals, else site
Gibbs), :mod:`ebm_ppl.moves.tempering` (a potential at every inverse temperature),
:mod:`ebm_ppl.moves.ladders` (ladders of inverse temperatures and the replica-exchange swap) and
:mod:`ebm_ppl.moves.langevin` (unadjusted Langevin moves). The kernels of :mod:`ebm_ppl.kernels`
wrap them in BlackJAX's ``SamplingAlgorithm`` convention; ``ep.ais`` and ``ep.fit`` call them
directly, so neither imports BlackJAX where it does not need it.
"""

from ebm_ppl.lazy import lazy_names

__all__ = ["gibbs", "site", "tempering", "ladders", "langevin"]

__getattr__, __dir__ = lazy_names(globals(), {name: f"ebm_ppl.moves.{name}" for name in __all__})
del lazy_names  # the package's names are its public ones
