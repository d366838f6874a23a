"""Discrete Langevin with a Metropolis correction (DMALA; Zhang, Liu & Liu 2022, "A Langevin-like
sampler for discrete distributions"): every coordinate may change in one step, each drawn
independently from a Langevin-like proposal built from the gradient on the real relaxation.

With ``g = grad_x(-E)(x)`` and step size alpha, the proposal factorizes over coordinates (the
paper's discrete Langevin proposal, DLP)::

    q(x' | x) = prod_i q_i(x'_i | x),   q_i(v | x) = softmax_v[ g_i (v - x_i) / 2 - (v - x_i)^2 / (2 alpha s^2) ]

over the values v of ``potential.support.values``, ``s`` their spacing (1 for binary and
categorical, 2 for spins). The paper has ``s = 1``; measuring alpha in units of ``s^2`` makes a
spin potential and its 0/1 rewriting (x = 2 b - 1) propose alike at the same alpha, so one default
serves both (with ``s = 1`` a spin's move costs 4 times a bit's, and at alpha = 0.2 a spin chain
flipped about e^-10 of its sites). For binary x each coordinate flips
independently with probability ``sigmoid(d_i / 2 - 1 / (2 alpha))``, ``d_i = -(2 x_i - 1) g_i``
the first-order gain of log p from flipping it (as in Gibbs with gradients). The proposal is
accepted with the exact Metropolis-Hastings probability
``min(1, exp(E(x) - E(x')) q(x | x') / q(x' | x))``, the reverse proposal built from the gradient
at x' (the paper's DMALA); a NaN ratio is a rejection.

alpha trades the size of a move against its acceptance: small alpha changes few coordinates and
is almost always accepted; large alpha proposes many changes at once, and the proposal is
rejected more often.
Spins change by ``v - x_i = -2 x_i``; categorical states are linearized as the numbers 0 .. q-1
(an ordinal relaxation: the quadratic term makes nearer states likelier). The chain is exact for
any energy; the energy must be differentiable in x for its gradient to exist
(:func:`as_top_level_api` refuses one whose gradient JAX cannot form), and an energy that is flat
between the discrete values (built from comparisons) has a zero gradient, which leaves an
independent proposal centred on x.

The state caches E(x) and grad E(x), so a step costs one energy-and-gradient evaluation at the
proposal.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax import GenerateSamplingAPI
from blackjax.base import SamplingAlgorithm
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.kernels.gibbs_with_gradients import check_gradient_potential, position_energy_and_gradient, value_indices
from ebm_ppl.kernels.positions import check_position
from ebm_ppl.potentials.base import Potential

__all__ = ["sampling_api", "DiscreteLangevinState", "DiscreteLangevinInfo", "init", "build_kernel", "as_top_level_api",
           "proposal_log_probs"]


class DiscreteLangevinState(NamedTuple):
    """position: the discrete sample x, shape ``event_shape``; energy: E(x); energy_grad: the
    gradient of E at x on the real relaxation, shape ``event_shape``."""

    position: Array
    energy: Array
    energy_grad: Array


class DiscreteLangevinInfo(NamedTuple):
    """acceptance_rate: the Metropolis-Hastings acceptance probability min(1, ratio);
    is_accepted: whether the proposal was accepted; flip_rate: the fraction of coordinates whose
    value changed in the step (0 when rejected); proposal: the state proposed (BlackJAX's
    ``RWInfo`` convention)."""

    acceptance_rate: Array
    is_accepted: Array
    flip_rate: Array
    proposal: DiscreteLangevinState


def init(position: ArrayLike, potential: Potential) -> DiscreteLangevinState:
    """The state at ``position`` (shape ``event_shape``; integers become the default float
    dtype): evaluates E and its gradient once."""
    return DiscreteLangevinState(*position_energy_and_gradient(position, potential))


def proposal_log_probs(state: DiscreteLangevinState, step_size, values: Array) -> Array:
    """log q_i(v | x) of each flat coordinate i taking each value v (Zhang, Liu & Liu 2022):
    ``log_softmax_v[grad(-E)(x)_i (v - x_i) / 2 - (v - x_i)^2 / (2 step_size s^2)]``, shape
    ``(size, q)`` for ``values`` of shape ``(q,)`` (evenly spaced, ``s = values[1] - values[0]``);
    each row sums to one."""
    x = state.position.reshape(-1)
    step = values[None, :] - x[:, None]
    spacing = values[1] - values[0]
    logits = -0.5 * state.energy_grad.reshape(-1)[:, None] * step - step**2 / (2 * step_size * spacing**2)
    return jax.nn.log_softmax(logits, axis=-1)


def build_kernel():
    """The raw kernel ``kernel(rng_key, state, potential, step_size) -> (state, info)``; the
    coordinates take the values of ``potential.support.values``."""

    def kernel(rng_key: PRNGKeyArray, state: DiscreteLangevinState, potential: Potential, step_size):
        dtype = state.position.dtype
        values = jnp.asarray(potential.support.values, dtype)
        uniforms = jax.random.uniform(rng_key, (state.position.size + 1,), dtype)
        log_q = proposal_log_probs(state, step_size, values)
        # each coordinate's value by inverting its cumulative distribution with one uniform
        cdf = jnp.cumsum(jnp.exp(log_q), axis=-1)
        chosen = jnp.sum(uniforms[:-1, None] * cdf[:, -1:] >= cdf[:, :-1], axis=-1)
        proposal = init(values[chosen].reshape(state.position.shape), potential)
        log_q_reverse = proposal_log_probs(proposal, step_size, values)
        current = value_indices(state.position.reshape(-1), values)
        log_forward = jnp.sum(jnp.take_along_axis(log_q, chosen[:, None], axis=-1))
        log_reverse = jnp.sum(jnp.take_along_axis(log_q_reverse, current[:, None], axis=-1))
        delta = state.energy - proposal.energy + log_reverse - log_forward
        # NaN (a NaN energy or gradient) and a proposal of probability 0 (picked by rounding) are rejected
        delta = jnp.where(jnp.isnan(delta) | jnp.isneginf(log_forward), -jnp.inf, delta)
        p_accept = jnp.minimum(1.0, jnp.exp(delta))
        accepted = jnp.log(uniforms[-1]) < delta
        new_state = jax.tree.map(lambda new, old: jnp.where(accepted, new, old), proposal, state)
        flip_rate = jnp.mean(new_state.position != state.position)
        return new_state, DiscreteLangevinInfo(p_accept, accepted, flip_rate, proposal)

    return kernel


def as_top_level_api(potential: Potential, step_size: float) -> SamplingAlgorithm:
    """``SamplingAlgorithm(init, step)`` for DMALA on a discrete ``potential`` (binary, spin or
    categorical support) whose energy is differentiable in x.

    Args:
        potential: the target; its ``unbatched_energy`` is differentiated at real-valued x.
        step_size: alpha > 0 of the proposal (a traced value passes unchecked, e.g. under vmap
            over step sizes).
    """
    if not isinstance(step_size, jax.core.Tracer):
        step_size = checks.positive_float(step_size, "discrete_langevin: step_size")
    check_gradient_potential(potential, "discrete_langevin")
    kernel = build_kernel()

    def init_fn(position: ArrayLike, rng_key: PRNGKeyArray | None = None):
        return init(check_position(position, potential, "discrete_langevin.init"), potential)

    def step_fn(rng_key: PRNGKeyArray, state: DiscreteLangevinState):
        return kernel(rng_key, state, potential, step_size)

    return SamplingAlgorithm(init_fn, step_fn)


#: ``ep.kernels.discrete_langevin``, exposed as BlackJAX exposes ``blackjax.mala``: calling it builds the algorithm.
sampling_api = GenerateSamplingAPI(as_top_level_api, init, build_kernel)
sampling_api.register_factory("proposal_log_probs", proposal_log_probs)
