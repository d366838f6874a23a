"""Parallel tempering (replica exchange) for any potential, in BlackJAX's init/step convention;
exposed as ``ep.kernels.parallel_tempering``.

R replicas sit on a ladder of inverse temperatures ``0 <= beta_0 < ... < beta_{R-1} = 1`` of a
tempered family (:mod:`ebm_ppl.moves.tempering`). One step

1. moves every replica with a base kernel that leaves its own rung invariant: exact block Gibbs
   for the RBM family (a rung of the parameter path is again an RBM), site Gibbs for other
   discrete potentials, MALA for continuous ones (one step size per rung; on a bounded support
   on R^D through the support's bijection, as :func:`ebm_ppl.sample` runs it);
2. proposes to swap the neighbours ``(i, i + 1)`` for every even i on even steps and every odd i
   on odd steps (deterministic even-odd swaps, the non-reversible scheme of Syed et al. 2022),
   accepted with the exact Metropolis probability

       min(1, exp(E_i(x_i) + E_{i+1}(x_{i+1}) - E_i(x_{i+1}) - E_{i+1}(x_i)))

   where ``E_b`` is the energy of the rung at ``beta_b``: for an RBM the free energy of the
   interpolated RBM, which is what the chain of visible states needs.

The info carries the acceptance probability of *every* neighbour pair (attempted or not: a
Rao-Blackwellized estimate of the swap rates, what :func:`adapt_ladder` equalizes); the state
counts round trips (a replica's travel from the bottom rung to the top and back).

    >>> pt = ep.kernels.parallel_tempering(rbm, ep.kernels.parallel_tempering.ladder(8))
    >>> state = pt.init(x0, key)
    >>> state, info = pt.step(key, state)      # state.position: the beta = 1 replica
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax import GenerateSamplingAPI
from blackjax.base import SamplingAlgorithm
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.kernels.block_gibbs import build_kernel as block_gibbs_kernel
from ebm_ppl.kernels.block_gibbs import init as block_gibbs_init
from ebm_ppl.kernels.discrete_langevin import build_kernel as discrete_langevin_kernel
from ebm_ppl.kernels.discrete_langevin import init as discrete_langevin_init
from ebm_ppl.kernels.gibbs_with_gradients import build_kernel as gibbs_with_gradients_kernel
from ebm_ppl.kernels.gibbs_with_gradients import init as gibbs_with_gradients_init
from ebm_ppl.kernels.site_gibbs import build_kernel as site_gibbs_kernel
from ebm_ppl.kernels.positions import check_position
from ebm_ppl.kernels.site_gibbs import init as site_gibbs_init
from ebm_ppl.moves.ladders import (adapt_ladder, check_ladder, ladder, ladder_tuple, ladder_values, pair_log_acceptance,
                                   swap_sources)
from ebm_ppl.moves.tempering import REFERENCES, Tempering, tempering
from ebm_ppl.potentials.base import Potential
from ebm_ppl.potentials.capabilities import has_block_conditionals
from ebm_ppl.potentials.unconstrained import Unconstrained

__all__ = ["sampling_api", "PTState", "PTInfo", "BaseKernel", "BASE_KERNELS", "REFERENCES", "tempering", "resolve_base_kernel", "default_base_kernel",
           "ladder", "ladder_values", "ladder_tuple", "adapt_ladder", "pair_log_acceptance", "swap_sources", "init", "build_kernel", "as_top_level_api",
           "check_base_kernel", "check_ladder", "check_step_size", "sampled_family"]


class PTState(NamedTuple):
    """position: the beta = 1 replica's x, ``event_shape``, on the potential's support (what a
    runner stores as the draw);
    replicas: the base kernel's states of all rungs, stacked (leading axis R, rung order);
    betas: the ladder ``(R,)``, ascending, ending at 1; replica: ``(R,)`` which replica sits on
    each rung (replicas travel, rungs stay); phase: ``(R,)`` per replica, 0 before it reached an
    end of the ladder, 1 if the last end it reached was the bottom, 2 the top; round_trips: the
    number of bottom -> top -> bottom journeys completed so far; step: steps taken (its parity
    picks the pairs a step proposes)."""

    position: Array
    replicas: Any
    betas: Array
    replica: Array
    phase: Array
    round_trips: Array
    step: Array


class PTInfo(NamedTuple):
    """swap_acceptance: ``(R - 1,)`` the Metropolis acceptance probability of each neighbour pair
    (i, i + 1) before this step's swaps, for all pairs; is_swapped: ``(R - 1,)`` which pairs
    swapped; energy: E(x) of the beta = 1 replica after the step; base_info: the base kernel's
    infos, stacked over rungs."""

    swap_acceptance: Array
    is_swapped: Array
    energy: Array
    base_info: Any


class BaseKernel(NamedTuple):
    """How parallel tempering drives a base kernel on one rung's potential: ``init(x, potential,
    key)``, ``step(key, state, potential, step_size) -> (state, info)``, and ``refresh(state,
    potential)``, the state after its position changed rung (for kernels that cache the log
    density); ``gradient``: whether it needs real support (and runs on R^D); ``step_size``: its
    default step size (0: it takes none)."""

    init: Callable
    step: Callable
    refresh: Callable
    gradient: bool
    step_size: float = 0.0


def _mala_init(x, potential, key):
    return blackjax.mala.init(x, potential.logdensity_fn())


def _mala_step(key, state, potential, step_size):
    return blackjax.mala.build_kernel()(key, state, potential.logdensity_fn(), step_size)


def _keep(state, potential):
    return state


#: The base kernels parallel tempering can drive, by name.
BASE_KERNELS: dict[str, BaseKernel] = {
    "block_gibbs": BaseKernel(block_gibbs_init,
                              lambda k, s, p, eps: block_gibbs_kernel()(k, s, p), _keep, False),
    "site_gibbs": BaseKernel(lambda x, p, k: site_gibbs_init(x),
                             lambda k, s, p, eps: site_gibbs_kernel()(k, s, p), _keep, False),
    "gibbs_with_gradients": BaseKernel(lambda x, p, k: gibbs_with_gradients_init(x, p),
                                       lambda k, s, p, eps: gibbs_with_gradients_kernel()(k, s, p),
                                       lambda s, p: gibbs_with_gradients_init(s.position, p), False),
    "discrete_langevin": BaseKernel(lambda x, p, k: discrete_langevin_init(x, p),
                                    lambda k, s, p, eps: discrete_langevin_kernel()(k, s, p, eps),
                                    lambda s, p: discrete_langevin_init(s.position, p), False, 0.2),
    "mala": BaseKernel(_mala_init, _mala_step, lambda s, p: _mala_init(s.position, p, None), True, 1e-2),
}


def resolve_base_kernel(name: str | None, family: Tempering) -> str:
    """``name``, or where it is None the :func:`default_base_kernel` of ``family``'s rungs."""
    return default_base_kernel(family) if name is None else name


def default_base_kernel(potential: Potential | Tempering) -> str:
    """For the rungs of a tempered family (or one potential): block Gibbs where they have block
    conditionals, site Gibbs for other discrete potentials, else MALA."""
    if isinstance(potential, Tempering):
        potential = potential.at(jnp.ones(()))
    if has_block_conditionals(potential):
        return "block_gibbs"
    return "mala" if potential.support.continuous else "site_gibbs"


def init(position: ArrayLike, family: Tempering, betas: ArrayLike, base_kernel: str = "block_gibbs",
         rng_key: PRNGKeyArray | None = None) -> PTState:
    """Every replica at ``position`` (``event_shape``) or at its own row of ``position``
    ``(R, *event_shape)``; ``betas`` ``(R,)`` ascending, ending at 1."""
    betas = jnp.asarray(betas)
    base = BASE_KERNELS[base_kernel]
    event_shape = family.target.event_shape
    x = jnp.asarray(position)
    if x.ndim == len(event_shape):
        x = jnp.broadcast_to(x, (betas.shape[0], *event_shape))
    key = jax.random.key(0) if rng_key is None else rng_key
    keys = jax.random.split(key, betas.shape[0])
    replicas = jax.vmap(lambda xi, b, k: base.init(xi, family.at(b), k))(x, betas, keys)
    num = betas.shape[0]
    return PTState(x[-1], replicas, betas, jnp.arange(num, dtype=jnp.int32), jnp.zeros(num, jnp.int32),
                   jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def build_kernel(base_kernel: str = "block_gibbs"):
    """The raw kernel ``kernel(rng_key, state, family, step_size) -> (state, info)``;
    ``step_size`` (scalar or ``(R,)``) is used by gradient base kernels only."""
    base = BASE_KERNELS[base_kernel]

    def kernel(rng_key: PRNGKeyArray, state: PTState, family: Tempering, step_size: ArrayLike = 0.0):
        key_move, key_swap = jax.random.split(rng_key)
        betas = state.betas
        num = betas.shape[0]
        eps = jnp.broadcast_to(jnp.asarray(step_size, betas.dtype), (num,))
        keys = jax.random.split(key_move, num)
        replicas, base_info = jax.vmap(lambda k, s, b, e: base.step(k, s, family.at(b), e))(
            keys, state.replicas, betas, eps)

        positions = replicas.position
        log_a, energies = pair_log_acceptance(family, positions, betas)
        source, swapped = swap_sources(key_swap, log_a, state.step)
        replicas = jax.tree.map(lambda a: a[source], replicas)
        if base.refresh is not _keep:
            replicas = jax.vmap(lambda s, b: base.refresh(s, family.at(b)))(replicas, betas)
        replica = state.replica[source]
        # the top rung's energy after the swap: its own, or the one below's at beta = 1
        top_energy = jnp.where(swapped[-1], energies[-2, 2], energies[-1, 1])

        # round trips: a replica that reached the top since it last left the bottom completes one
        phase = state.phase
        at_bottom, at_top = replica[0], replica[-1]
        completed = phase[at_bottom] == 2
        phase = phase.at[at_bottom].set(1)
        phase = phase.at[at_top].set(jnp.where(phase[at_top] == 1, 2, phase[at_top]))
        new_state = PTState(replicas.position[-1], replicas, betas, replica, phase,
                            state.round_trips + completed.astype(jnp.int32), state.step + 1)
        info = PTInfo(jnp.exp(jnp.minimum(log_a, 0.0)), swapped, top_energy, base_info)
        return new_state, info

    return kernel


def as_top_level_api(potential: Potential | Tempering, betas: ArrayLike, base_kernel: str | None = None,
                     step_size: ArrayLike | None = None, reference: str | None = None) -> SamplingAlgorithm:
    """``SamplingAlgorithm(init, step)`` for parallel tempering.

    Args:
        potential: the target (its default tempered family, :func:`~ebm_ppl.moves.tempering.tempering`,
            with ``reference``), or a :class:`~ebm_ppl.moves.tempering.Tempering` family.
        betas: the ladder ``(R,)``, ascending, ending at 1 (:func:`ladder`); R >= 2.
        base_kernel: a name of :data:`BASE_KERNELS`; None: :func:`default_base_kernel`.
        step_size: the base kernel's step size (MALA, discrete Langevin), a number > 0 or one per
            rung ``(R,)``; None: its default (``BASE_KERNELS[base_kernel].step_size``). Refused by
            base kernels without one (the Gibbs kernels).
        reference: see :func:`~ebm_ppl.moves.tempering.tempering`.

    ``init(position, rng_key=None)`` takes one point (every replica starts there) or one per rung
    ``(R, *event_shape)``, checked (shape; values on the support and finite where concrete);
    ``step(rng_key, state) -> (PTState, PTInfo)``.

    On a bounded support (``ep.box``) a gradient base kernel (MALA) runs, as in :func:`ebm_ppl.sample`,
    on R^D through the support's bijection, log-Jacobian included (the tempered family of
    :class:`~ebm_ppl.potentials.unconstrained.Unconstrained`): the replicas hold ``z = T^{-1}(x)``,
    while ``state.position`` and ``info.energy`` are the beta = 1 replica's x on the support and E(x).
    """
    family, base_kernel, view = sampled_family(potential, base_kernel, reference)
    target = family.target if view is None else view.potential
    betas = check_ladder(betas, family)
    kernel = build_kernel(base_kernel)
    step_size = check_step_size(step_size, base_kernel, betas.shape[0])

    def init_fn(position: ArrayLike, rng_key: PRNGKeyArray | None = None):
        x = check_position(position, target, "parallel_tempering.init", num_replicas=betas.shape[0])
        if view is None:
            return init(x, family, betas, base_kernel, rng_key)
        state = init(view.unconstrain(x), family, betas, base_kernel, rng_key)
        return state._replace(position=view.constrain(state.position))

    def step_fn(rng_key: PRNGKeyArray, state: PTState):
        state, info = kernel(rng_key, state, family, step_size)
        if view is None:
            return state, info
        x = view.constrain(state.position)  # the kernel's position is the top replica's z
        return state._replace(position=x), info._replace(energy=target.unbatched_energy(x))

    return SamplingAlgorithm(init_fn, step_fn)


def sampled_family(potential: Potential | Tempering, base_kernel: str | None = None,
                   reference: str | None = None) -> tuple[Tempering, str, Unconstrained | None]:
    """What parallel tempering of ``potential`` (or of a family) moves: the tempered family, the
    checked base kernel (:func:`check_base_kernel`), and, where a gradient base kernel meets a
    bounded support, the :class:`~ebm_ppl.potentials.unconstrained.Unconstrained` view whose
    family it is (else None): as :func:`ebm_ppl.sample`, MALA runs on R^D, log-Jacobian included.
    ValueError for a given family on a bounded support with a gradient base kernel."""
    family = potential if isinstance(potential, Tempering) else tempering(potential, reference)
    base_kernel = check_base_kernel(resolve_base_kernel(base_kernel, family), family)
    if not (BASE_KERNELS[base_kernel].gradient and family.target.support.bounded):
        return family, base_kernel, None
    if isinstance(potential, Tempering):
        raise ValueError(f"parallel_tempering: base_kernel {base_kernel!r} runs on R^D, and the rungs of this "
                         f"{type(potential).__name__} family live on {family.target.support}; pass the potential "
                         "itself (its family is then built on R^D through the support's bijection)")
    view = Unconstrained(potential)
    return tempering(view, reference), base_kernel, view


def check_step_size(step_size: ArrayLike | None, base_kernel: str, num_replicas: int | None = None) -> ArrayLike:
    """The step size of ``base_kernel``: its default where ``step_size`` is None; else a number > 0
    or, where ``num_replicas`` is given, ``(num_replicas,)`` of them (one per rung; traced values
    pass unchecked). ValueError for a base kernel that takes none (the Gibbs kernels) or a bad value."""
    default = BASE_KERNELS[base_kernel].step_size
    if step_size is None:
        return default
    if not default:
        takes = ", ".join(name for name, base in BASE_KERNELS.items() if base.step_size)
        raise ValueError(f"parallel_tempering: base_kernel {base_kernel!r} takes no step_size; leave step_size "
                         f"out, or pick a base kernel that takes one ({takes})")
    if isinstance(step_size, jax.core.Tracer):
        return step_size
    if np.ndim(step_size) == 0 or num_replicas is None:
        return checks.positive_float(step_size, "parallel_tempering: step_size")
    values = np.asarray(step_size)
    if values.shape != (num_replicas,) or not np.issubdtype(values.dtype, np.number) or \
            np.issubdtype(values.dtype, np.complexfloating) or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"parallel_tempering: step_size must be a number > 0 or {num_replicas} finite numbers > 0 "
                         f"(one per rung), got {step_size!r}")
    return jnp.asarray(values, jnp.result_type(float))


def check_base_kernel(name: Any, family: Tempering) -> str:
    """``name`` if it is a base kernel that can move the rungs of ``family``; else a ValueError."""
    if not isinstance(name, str) or name not in BASE_KERNELS:
        raise ValueError(f"parallel tempering: unknown base_kernel {name!r}; choose one of {', '.join(BASE_KERNELS)}")
    potential = family.at(jnp.ones(()))
    family = f"{type(family.target).__name__} (tempered by {type(family).__name__})"
    if name == "block_gibbs" and not has_block_conditionals(potential):
        raise ValueError(f"parallel tempering: base_kernel 'block_gibbs' needs block conditionals; {family} has "
                         f"none. Use base_kernel={default_base_kernel(potential)!r}.")
    if BASE_KERNELS[name].gradient != potential.support.continuous and name != "block_gibbs":
        raise ValueError(f"parallel tempering: base_kernel {name!r} does not sample {potential.support} "
                         f"potentials; use base_kernel={default_base_kernel(potential)!r}")
    return name


#: ``ep.kernels.parallel_tempering``, exposed as BlackJAX exposes ``blackjax.mala``: calling it builds the algorithm.
sampling_api = GenerateSamplingAPI(as_top_level_api, init, build_kernel)
sampling_api.register_factory("ladder", ladder)
sampling_api.register_factory("adapt_ladder", adapt_ladder)
sampling_api.register_factory("tempering", tempering)
sampling_api.register_factory("pair_log_acceptance", pair_log_acceptance)
