"""The kernel table: every MCMC kernel ebm_ppl runs, by name, with what it needs and reports.

:func:`ebm_ppl.sample`, :class:`ebm_ppl.numpyro.EnergyKernel` and ``ebm-ppl sample`` all read
this one table: the supports a kernel samples, the capability it needs (block conditionals for
block Gibbs), the options it takes, the statistics it reports, and the algorithm itself (ours in
BlackJAX's convention, or BlackJAX's own MALA, HMC and NUTS).

    >>> ep.kernels.KERNELS["mala"].options
    ('step_size', 'adapt')
    >>> ep.kernels.default_kernel(rbm)
    'block_gibbs'
"""

from __future__ import annotations

import types
from typing import Any, Callable, Mapping, NamedTuple

import blackjax
from blackjax.base import SamplingAlgorithm

from ebm_ppl.kernels.block_gibbs import as_top_level_api as block_gibbs
from ebm_ppl.kernels.langevin import as_top_level_api as langevin
from ebm_ppl.kernels.site_gibbs import as_top_level_api as site_gibbs
from ebm_ppl.potentials.base import Potential, Support
from ebm_ppl.potentials.capabilities import has_block_conditionals

__all__ = ["KernelSpec", "KERNELS", "default_kernel", "get_kernel", "check_kernel", "fixed_algorithm"]


class KernelSpec(NamedTuple):
    """One kernel of the table.

    Attributes:
        name: the name ``ep.sample(..., kernel=name)`` takes.
        summary: one line for help texts.
        supports: the supports whose potentials it samples.
        requires: a capability predicate the potential must satisfy (None: none), and
        requirement: what that capability is, in words, for error messages.
        options: the keyword options :func:`ebm_ppl.sample` accepts for it.
        stats: the per-draw statistics it reports in ``sample_stats``.
        algorithm: its ``SamplingAlgorithm`` factory: ``algorithm(potential)`` for ours that take
            a potential (Gibbs), ``algorithm(logdensity_fn, ...)`` for the others.
        takes_potential: which of the two the factory takes.
        tuned: whether warm-up tunes its parameters (else warm-up is burn-in), so it needs
            :func:`ebm_ppl.sample`'s warm-up to run well.
    """

    name: str
    summary: str
    supports: tuple[Support, ...]
    requires: Callable[[Potential], bool] | None
    requirement: str
    options: tuple[str, ...]
    stats: tuple[str, ...]
    algorithm: Callable[..., SamplingAlgorithm]
    takes_potential: bool
    tuned: bool

    @property
    def gradient(self) -> bool:
        """Whether it follows grad log p (so needs real-valued x)."""
        return self.supports == (Support.REAL,)


_GIBBS_SUPPORTS = (Support.BINARY, Support.REAL)
_GRADIENT = (Support.REAL,)

_TABLE = (
    KernelSpec("block_gibbs", "exact block Gibbs (RBM family)", _GIBBS_SUPPORTS, has_block_conditionals,
               "block conditionals (sample_hidden, sample_visible)", (), ("hidden_mean", "energy"),
               block_gibbs, True, False),
    KernelSpec("site_gibbs", "systematic-scan single-site Gibbs (binary vectors)", (Support.BINARY,), None, "",
               (), ("flip_rate", "energy"), site_gibbs, True, False),
    KernelSpec("langevin", "unadjusted Langevin with a separate noise scale", _GRADIENT, None, "",
               ("step_size", "noise_scale"), ("energy", "grad_norm", "step_size"), langevin,
               False, False),
    KernelSpec("mala", "BlackJAX MALA, step size tuned by dual averaging", _GRADIENT, None, "",
               ("step_size", "adapt"), ("energy", "acceptance_rate", "step_size"), blackjax.mala, False, True),
    KernelSpec("hmc", "BlackJAX HMC, window adaptation", _GRADIENT, None, "",
               ("step_size", "num_integration_steps", "target_acceptance_rate", "adapt"),
               ("energy", "acceptance_rate", "diverging", "n_steps", "step_size"), blackjax.hmc, False, True),
    KernelSpec("nuts", "BlackJAX NUTS, window adaptation", _GRADIENT, None, "",
               ("step_size", "target_acceptance_rate", "adapt"),
               ("energy", "acceptance_rate", "diverging", "n_steps", "step_size", "tree_depth"), blackjax.nuts,
               False, True),
)

#: Every kernel by name, read-only (the order is the order of help texts).
KERNELS: Mapping[str, KernelSpec] = types.MappingProxyType({spec.name: spec for spec in _TABLE})


def get_kernel(name: str) -> KernelSpec:
    """The spec of kernel ``name``; ValueError listing the names otherwise."""
    try:
        return KERNELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown kernel {name!r}; choose one of {', '.join(KERNELS)}") from None


def default_kernel(potential: Potential) -> str:
    """Block Gibbs where there are block conditionals, site Gibbs for other binary potentials,
    else NUTS."""
    if has_block_conditionals(potential):
        return "block_gibbs"
    return "site_gibbs" if potential.support == Support.BINARY else "nuts"


def check_kernel(name: str | None, potential: Potential, options: Mapping[str, Any] = types.MappingProxyType({}),
                 *, owner: str = "sample") -> KernelSpec:
    """The spec of ``name`` (None: :func:`default_kernel`) after checking that it can sample
    ``potential`` with ``options``; ValueError naming the problem and what to use instead."""
    spec = get_kernel(default_kernel(potential) if name is None else name)
    family = type(potential).__name__
    if potential.support not in spec.supports:
        if spec.gradient:
            raise ValueError(f"{owner}: kernel {spec.name!r} needs gradients, so real support; {family} is "
                             f"{potential.support.value}. Use kernel='block_gibbs' or 'site_gibbs'.")
        raise ValueError(f"{owner}: kernel {spec.name!r} samples {' or '.join(s.value for s in spec.supports)} "
                         f"potentials; {family} is {potential.support.value}")
    if spec.name == "site_gibbs" and len(potential.event_shape) != 1:
        raise ValueError(f"{owner}: site Gibbs needs a binary potential over vectors; {family} has event shape "
                         f"{potential.event_shape}")
    if spec.requires is not None and not spec.requires(potential):
        alternative = "'site_gibbs'" if potential.support == Support.BINARY else "'mala' or 'nuts'"
        raise ValueError(f"{owner}: kernel {spec.name!r} needs {spec.requirement}; {family} has none. "
                         f"Use kernel={alternative}.")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        takes = f"it takes {', '.join(spec.options)}" if spec.options else "it takes none"
        raise ValueError(f"{owner}: kernel {spec.name!r} does not take option(s) {', '.join(unknown)}; {takes}")
    return spec


def fixed_algorithm(spec: KernelSpec, potential: Potential, **parameters: Any) -> SamplingAlgorithm:
    """``spec``'s ``SamplingAlgorithm`` on ``potential`` with fixed parameters (no tuning), e.g.
    ``fixed_algorithm(KERNELS["langevin"], p, step_size=0.01)``."""
    if spec.takes_potential:
        return spec.algorithm(potential, **parameters)
    return spec.algorithm(potential.logdensity_fn(), **parameters)
