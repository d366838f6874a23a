"""Exact moves and the pieces of samplers shared by the samplers, AIS and training, without BlackJAX.

:mod:`ebm_ppl.moves.site` (one systematic-scan site-Gibbs sweep), :mod:`ebm_ppl.moves.gibbs`
(Gibbs sweeps of many chains: block Gibbs where the potential has block conditionals, else site
Gibbs), :mod:`ebm_ppl.moves.tempering` (a potential at every inverse temperature),
:mod:`ebm_ppl.moves.ladders` (ladders of inverse temperatures and the replica-exchange swap) and
:mod:`ebm_ppl.moves.langevin` (unadjusted Langevin moves). The kernels of :mod:`ebm_ppl.kernels`
wrap them in BlackJAX's ``SamplingAlgorithm`` convention; ``ep.ais`` and ``ep.fit`` call them
directly, so neither imports BlackJAX where it does not need it.
"""

__all__ = ["gibbs", "site", "tempering", "ladders", "langevin"]


def __getattr__(name: str):
    """The submodules, imported on first access (``ep.moves.ladders``)."""
    import importlib

    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
