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
import blackjax.mcmc.metrics
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm

from ebm_ppl.kernels import replica_exchange as pt
from ebm_ppl.kernels.block_gibbs import as_top_level_api as block_gibbs
from ebm_ppl.kernels.discrete_langevin import as_top_level_api as discrete_langevin
from ebm_ppl.kernels.gibbs_with_gradients import as_top_level_api as gibbs_with_gradients
from ebm_ppl.kernels.langevin import as_top_level_api as langevin
from ebm_ppl.kernels.site_gibbs import as_top_level_api as site_gibbs
from ebm_ppl.potentials.base import Potential
from ebm_ppl.potentials.capabilities import has_block_conditionals

__all__ = ["KernelSpec", "KERNELS", "STAT_MEANINGS", "STAT_DIMS", "uses_gradients", "check_kernel_options", "default_kernel", "get_kernel", "check_kernel", "fixed_algorithm"]


class KernelSpec(NamedTuple):
    """One kernel of the table.

    Attributes:
        name: the name ``ep.sample(..., kernel=name)`` takes.
        summary: one line for help texts.
        supports: the kinds of support whose potentials it samples (``"real"``, ``"box"``,
            ``"binary"``, ``"spin"``, ``"categorical"``; gradient kernels run on a box through its bijection to R^D).
        requires: a predicate the potential must satisfy (a capability; None: none), and
        requirement: what it asks, in words, for error messages.
        options: the keyword options :func:`ebm_ppl.sample` accepts for it, and
        defaults: their default values (an option without one defaults to None).
        stats: the per-draw statistics it reports in ``sample_stats``, under ArviZ's names
            (:data:`STAT_MEANINGS`): ``lp`` = log p(x) = -E(x) of the draw for every kernel,
            ``energy`` = the Hamiltonian for HMC/NUTS only, then the kernel's own.
        info_stats: ``info_stats(state, info, params) -> dict``, the statistics read off a step's
            state, info and the plan's tuned parameters (the runner adds ``step_size`` and, for
            the Gibbs kernels, ``lp``).
        algorithm: its ``SamplingAlgorithm`` factory: ``algorithm(potential)`` for ours that take
            a potential (Gibbs), ``algorithm(logdensity_fn, ...)`` for the others.
        takes_potential: which of the two the factory takes.
        tuning: what warm-up does: ``"burn_in"`` (nothing to tune), ``"dual_averaging"`` (the
            step size, towards 0.574 acceptance; MALA-like algorithms) or ``"window_adaptation"``
            (BlackJAX's window adaptation of step size and mass matrix; HMC-like algorithms) or
            ``"ladder"`` (parallel tempering: the ladder, and the base kernel's step sizes).
        start_energy: whether a step's ``info.energy`` is the energy E(x) of the state it
            started from (None where the potential cannot give it cheaply), so a runner takes each
            draw's ``lp = -E(x)`` from the next step instead of computing it again.
    """

    name: str
    summary: str
    supports: tuple[str, ...]
    requires: Callable[[Potential], bool] | None
    requirement: str
    options: tuple[str, ...]
    defaults: Mapping[str, Any]
    stats: tuple[str, ...]
    info_stats: Callable[[Any, Any, Any], dict]
    algorithm: Callable[..., SamplingAlgorithm]
    takes_potential: bool
    tuning: str
    start_energy: bool = False

    @property
    def gradient(self) -> bool:
        """Whether it follows grad log p (so needs continuous x)."""
        return "real" in self.supports and not set(self.supports) & {"binary", "spin", "categorical"}

    @property
    def tuned(self) -> bool:
        """Whether warm-up tunes its parameters (else warm-up is burn-in)."""
        return self.tuning != "burn_in"


#: What each ``sample_stats`` name means (ArviZ's names where ArviZ has one; the others are the
#: kernels' own). ``energy`` is the Hamiltonian, as in Stan, PyMC, NumPyro and BlackJAX, so
#: ``arviz.bfmi`` and ``arviz_plots.plot_energy`` read it correctly.
STAT_MEANINGS: Mapping[str, str] = types.MappingProxyType({
    "lp": "log density of the draw, log p(x) = -E(x) up to log Z (every kernel)",
    "energy": "the Hamiltonian -log p(x) + K(p) at the kept state (HMC, NUTS; for BFMI)",
    "acceptance_rate": "Metropolis acceptance probability of the step (MALA, HMC, DMALA; NUTS: the mean over the "
                       "tree; Gibbs with gradients: the mean over the step's moves)",
    "diverging": "whether the trajectory diverged (HMC, NUTS)",
    "step_size": "the step size (tuned in warm-up where the kernel tunes it)",
    "n_steps": "leapfrog steps of the step (HMC, NUTS)",
    "tree_depth": "tree doublings of the step (NUTS)",
    "hidden_mean": "mean over hidden units of p(h_j = 1 | x) at the step's start (block Gibbs)",
    "flip_rate": "fraction of sites that changed in the step (site Gibbs, DMALA)",
    "grad_norm": "norm of grad log p at the step's start (Langevin)",
    "swap_acceptance": "per neighbour pair (i, i + 1) of the ladder, the Metropolis acceptance probability of "
                       "swapping their replicas at the draw's step (parallel tempering; dimension 'pair')",
    "round_trips": "replica journeys bottom -> top -> bottom of the ladder completed so far (parallel tempering)",
    "replica": "which replica sits on each rung at the draw (parallel tempering; dimension 'rung', the "
               "trajectories of the replicas through the ladder)",
    "beta": "the ladder's inverse temperatures (parallel tempering; dimension 'rung'; fixed after warm-up)",
})

#: The dimension names of statistics with more than one value per draw.
STAT_DIMS: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    "swap_acceptance": ("pair",), "replica": ("rung",), "beta": ("rung",),
})


def _lp(state) -> dict:
    return {"lp": state.logdensity}


def _mala_stats(state, info, params) -> dict:
    return {**_lp(state), "acceptance_rate": info.acceptance_rate}


def _hmc_stats(state, info, params) -> dict:
    """HMC's statistics; ``energy`` is the Hamiltonian at the state kept (Stan's ``energy__``):
    the proposal's (``info.energy``) when accepted, else the start's, -log p(x) + K(p) with the
    step's fresh momentum (``info.momentum``), since BlackJAX reports the proposal's either way."""
    kinetic = blackjax.mcmc.metrics.default_metric(params["inverse_mass_matrix"]).kinetic_energy(info.momentum)
    energy = jnp.where(info.is_accepted, info.energy, -state.logdensity + kinetic)
    return {**_mala_stats(state, info, params), "energy": energy, "diverging": info.is_divergent,
            "n_steps": info.num_integration_steps}


def _nuts_stats(state, info, params) -> dict:
    """NUTS's statistics; ``energy`` is the Hamiltonian of the sampled state (``info.energy``)."""
    return {**_lp(state), "acceptance_rate": info.acceptance_rate, "energy": info.energy,
            "diverging": info.is_divergent, "n_steps": info.num_integration_steps,
            "tree_depth": info.num_trajectory_expansions}


def _pt_stats(state, info, params) -> dict:
    return {"lp": -info.energy, "swap_acceptance": info.swap_acceptance, "round_trips": state.round_trips,
            "replica": state.replica, "beta": state.betas}


def _pt_algorithm(potential: Potential, *, base_kernel=None, num_replicas=8, betas=None, min_beta=0.1,
                  reference=None, step_size=None, adapt=True) -> SamplingAlgorithm:
    """Parallel tempering from the options ``ep.sample`` takes, on a fixed ladder (``betas``, or
    :func:`~ebm_ppl.moves.ladders.ladder`'s geometric one); ``adapt`` is warm-up's."""
    family, _, _ = pt.sampled_family(potential, base_kernel, reference)
    if betas is None:
        betas = pt.ladder(num_replicas, min_beta, reference=family.has_reference)
    return pt.as_top_level_api(potential, betas, base_kernel, step_size, reference)


_GRADIENT = ("real", "box")
_DISCRETE = ("binary", "spin", "categorical")
_TABLE = (
    KernelSpec("block_gibbs", "exact block Gibbs (RBM family)", ("binary", "spin", "categorical", "real", "box"),
               has_block_conditionals, "block conditionals (sample_hidden, sample_visible)", (), {},
               ("lp", "hidden_mean"), lambda s, i, p: {"hidden_mean": i.hidden_mean}, block_gibbs, True, "burn_in",
               start_energy=True),
    KernelSpec("site_gibbs", "systematic-scan single-site Gibbs (discrete potentials)", _DISCRETE, None, "",
               (), {}, ("lp", "flip_rate"), lambda s, i, p: {"flip_rate": i.flip_rate}, site_gibbs, True, "burn_in"),
    KernelSpec("gibbs_with_gradients", "Gibbs with gradients: gradient-guided single-site Metropolis-Hastings",
               _DISCRETE, None, "", ("num_flips",), {"num_flips": 1}, ("lp", "acceptance_rate"),
               lambda s, i, p: {"lp": -s.energy, "acceptance_rate": i.acceptance_rate}, gibbs_with_gradients,
               True, "burn_in"),
    KernelSpec("discrete_langevin", "discrete Langevin with a Metropolis correction (DMALA)", _DISCRETE, None, "",
               ("step_size",), {"step_size": 0.2}, ("lp", "acceptance_rate", "flip_rate", "step_size"),
               lambda s, i, p: {"lp": -s.energy, "acceptance_rate": i.acceptance_rate, "flip_rate": i.flip_rate},
               discrete_langevin, True, "burn_in"),
    KernelSpec("langevin", "unadjusted Langevin with a separate noise scale", _GRADIENT, None, "",
               ("step_size", "noise_scale"), {"step_size": 1e-2}, ("lp", "grad_norm", "step_size"),
               lambda s, i, p: {**_lp(s), "grad_norm": i.grad_norm}, langevin, False, "burn_in"),
    KernelSpec("mala", "BlackJAX MALA, step size tuned by dual averaging", _GRADIENT, None, "",
               ("step_size", "adapt"), {"step_size": 1e-2, "adapt": True}, ("lp", "acceptance_rate", "step_size"),
               _mala_stats, blackjax.mala, False, "dual_averaging"),
    KernelSpec("hmc", "BlackJAX HMC, window adaptation", _GRADIENT, None, "",
               ("step_size", "num_integration_steps", "target_acceptance_rate", "adapt"),
               {"num_integration_steps": 16, "target_acceptance_rate": 0.8, "adapt": True},
               ("lp", "energy", "acceptance_rate", "diverging", "n_steps", "step_size"), _hmc_stats, blackjax.hmc,
               False, "window_adaptation"),
    KernelSpec("nuts", "BlackJAX NUTS, window adaptation", _GRADIENT, None, "",
               ("step_size", "target_acceptance_rate", "adapt"), {"target_acceptance_rate": 0.8, "adapt": True},
               ("lp", "energy", "acceptance_rate", "diverging", "n_steps", "step_size", "tree_depth"),
               _nuts_stats, blackjax.nuts, False, "window_adaptation"),
    KernelSpec("parallel_tempering", "parallel tempering over a ladder of temperatures, any base kernel",
               ("binary", "spin", "categorical", "real", "box"), None, "",
               ("base_kernel", "num_replicas", "betas", "min_beta", "reference", "step_size", "adapt"),
               {"num_replicas": 8, "min_beta": 0.1, "adapt": True},
               ("lp", "swap_acceptance", "round_trips", "replica", "beta"), _pt_stats, _pt_algorithm, True,
               "ladder"),
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
    """Block Gibbs where there are block conditionals, site Gibbs for other discrete potentials,
    else NUTS."""
    if has_block_conditionals(potential):
        return "block_gibbs"
    return "nuts" if potential.support.continuous else "site_gibbs"


def check_kernel(name: str | None, potential: Potential, options: Mapping[str, Any] = types.MappingProxyType({}),
                 *, owner: str = "sample") -> KernelSpec:
    """The spec of ``name`` (None: :func:`default_kernel`) after checking that it can sample
    ``potential`` with ``options``; ValueError naming the problem and what to use instead."""
    spec = get_kernel(default_kernel(potential) if name is None else name)
    family = type(potential).__name__
    if potential.support.kind not in spec.supports:
        if spec.gradient:
            raise ValueError(f"{owner}: kernel {spec.name!r} needs gradients, so real support; {family} is "
                             f"{potential.support.value}. Use kernel='block_gibbs' or 'site_gibbs'.")
        raise ValueError(f"{owner}: kernel {spec.name!r} samples {' or '.join(spec.supports)} potentials; "
                         f"{family} is {potential.support}")
    if spec.requires is not None and not spec.requires(potential):
        alternative = "'mala' or 'nuts'" if potential.support.continuous else "'site_gibbs'"
        raise ValueError(f"{owner}: kernel {spec.name!r} needs {spec.requirement}; {family} (event shape "
                         f"{potential.event_shape}) has none. Use kernel={alternative}.")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        takes = f"it takes {', '.join(spec.options)}" if spec.options else "it takes none"
        raise ValueError(f"{owner}: kernel {spec.name!r} does not take option(s) {', '.join(unknown)}; {takes}")
    return spec


def uses_gradients(spec: KernelSpec, potential: Potential, options: Mapping[str, Any]) -> bool:
    """Whether kernel ``spec`` with ``options`` follows grad log p, so runs on R^D (a bounded
    support's unconstrained view): the gradient kernels, and parallel tempering over MALA."""
    if spec.name == "parallel_tempering":
        family = pt.tempering(potential, options.get("reference"))
        return pt.BASE_KERNELS[pt.resolve_base_kernel(options.get("base_kernel"), family)].gradient
    return spec.gradient


def check_kernel_options(spec: KernelSpec, potential: Potential, options: Mapping[str, Any], *,
                         owner: str = "sample") -> None:
    """The checks of ``options`` that need the potential (parallel tempering's base kernel, its
    step size, reference and ladder); ValueError naming the problem."""
    if spec.name != "parallel_tempering":
        return
    try:
        family = pt.tempering(potential, options.get("reference"))
        base_kernel = pt.check_base_kernel(pt.resolve_base_kernel(options.get("base_kernel"), family), family)
        pt.check_step_size(options.get("step_size"), base_kernel)  # refused where the base kernel takes none
        if options.get("betas") is not None:
            pt.check_ladder(options["betas"], family)
        elif options.get("min_beta") is not None and not 0 < options["min_beta"] < 1:
            raise ValueError(f"parallel tempering: min_beta must be in (0, 1), got {options['min_beta']}")
    except ValueError as e:
        raise ValueError(f"{owner}: {e}") from None


def fixed_algorithm(spec: KernelSpec, potential: Potential, **parameters: Any) -> SamplingAlgorithm:
    """``spec``'s ``SamplingAlgorithm`` on ``potential`` with fixed parameters (no tuning), e.g.
    ``fixed_algorithm(KERNELS["langevin"], p, step_size=0.01)``."""
    if spec.takes_potential:
        return spec.algorithm(potential, **parameters)
    return spec.algorithm(potential.logdensity_fn(), **parameters)
