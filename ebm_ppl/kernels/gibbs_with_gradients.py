"""Gibbs with gradients (Grathwohl, Swersky, Hashemi, Duvenaud & Maddison 2021, "Oops I took a
gradient: scalable sampling for discrete distributions"): Metropolis-Hastings over single-site
changes, proposed where the gradient of the energy says log p would rise most.

For binary x in {0,1}^D, the change of log p = -E from flipping coordinate i is estimated to first
order from the gradient on the real relaxation (the paper's ``d~(x)``)::

    d_i(x) = -(2 x_i - 1) * grad_x(-E)(x)_i

One move proposes flipping ``i ~ q(i | x) = softmax(d(x) / 2)_i`` (the locally balanced
proposal with g(t) = sqrt(t)) and accepts ``x'`` with the exact Metropolis-Hastings probability
``min(1, exp(E(x) - E(x')) q(i | x') / q(i | x))``, the reverse proposal evaluated with the
gradient at x'. A NaN ratio (an energy or gradient that is NaN at x or x') is a rejection.

Other discrete supports use the same formulas over the values ``v`` of ``potential.support.values``:
a move sets one coordinate i to one value ``v != x_i``, ``d_{i,v}(x) = grad_x(-E)(x)_i (v - x_i)``,
and ``q(i, v | x)`` is the softmax of ``d / 2`` over every such pair (for binary ``v - x_i =
1 - 2 x_i``: the formula above; spins flip by ``v - x_i = -2 x_i``). Categorical states are
linearized as the numbers 0 .. q-1 (an ordinal relaxation, not the paper's one-hot one): the
chain is exact for any energy, its proposals are good where E is smooth in those numbers.

The gradient is taken of ``potential.unbatched_energy`` at real-valued x, so the energy must be
differentiable in x (``jax.grad``); :func:`as_top_level_api` refuses, naming the potential, one
whose gradient JAX cannot form. An energy built from comparisons or indexing by x (``x == v``,
``table[x]``) has a zero gradient: the proposal is then uniform over single-site changes and the
chain, still exact, is a random-walk Metropolis sampler.

The state caches E(x) and grad E(x), so each move costs one energy-and-gradient evaluation at the
proposal. A step is ``num_flips`` such moves in sequence, each proposed and accepted on its own
(the paper's variant that flips several indices drawn without replacement in one proposal is not
implemented).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax import GenerateSamplingAPI
from blackjax.base import SamplingAlgorithm
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.kernels.positions import check_position
from ebm_ppl.potentials.base import Potential

__all__ = ["sampling_api", "GibbsWithGradientsState", "GibbsWithGradientsInfo", "init", "build_kernel", "as_top_level_api",
           "proposal_log_probs", "value_indices", "check_gradient_potential", "position_energy_and_gradient"]


class GibbsWithGradientsState(NamedTuple):
    """position: the discrete sample x, shape ``event_shape``; energy: E(x); energy_grad: the
    gradient of E at x on the real relaxation, shape ``event_shape``."""

    position: Array
    energy: Array
    energy_grad: Array


class GibbsWithGradientsInfo(NamedTuple):
    """acceptance_rate: the Metropolis-Hastings acceptance probability min(1, ratio), the mean
    over the step's ``num_flips`` moves; is_accepted: whether a move was accepted (any of them);
    proposal: the state proposed by the step's last move (BlackJAX's ``RWInfo`` convention)."""

    acceptance_rate: Array
    is_accepted: Array
    proposal: GibbsWithGradientsState


def init(position: ArrayLike, potential: Potential) -> GibbsWithGradientsState:
    """The state at ``position`` (shape ``event_shape``; integers become the default float
    dtype): evaluates E and its gradient once."""
    return GibbsWithGradientsState(*position_energy_and_gradient(position, potential))


def position_energy_and_gradient(position: ArrayLike, potential: Potential) -> tuple[Array, Array, Array]:
    """``(x, E(x), grad E(x))`` at ``position`` (integers become the default float dtype, the
    relaxation the gradient is taken on): what the gradient samplers' states cache."""
    position = jnp.asarray(position)
    if not jnp.issubdtype(position.dtype, jnp.inexact):
        position = position.astype(jnp.result_type(float))
    energy, grad = jax.value_and_grad(potential.unbatched_energy)(position)
    return position, energy, grad


def value_indices(x: Array, values: Array) -> Array:
    """The index in ``values`` ``(q,)`` of each entry of ``x`` (the nearest value), an int array of x's shape."""
    return jnp.argmin(jnp.abs(x[..., None] - values), axis=-1)


def proposal_log_probs(state: GibbsWithGradientsState, values: Array) -> Array:
    """log q(i, v | x) of setting flat coordinate i to value v (Grathwohl et al. 2021):
    ``log_softmax(d / 2)`` over every pair with ``v != x_i``, ``d_{i,v} = grad(-E)(x)_i (v - x_i)``;
    -inf where ``v = x_i``. Shape ``(size, q)`` for ``values`` of shape ``(q,)``."""
    x = state.position.reshape(-1)
    step = values[None, :] - x[:, None]
    half_d = -0.5 * state.energy_grad.reshape(-1)[:, None] * step
    logits = jnp.where(step == 0, -jnp.inf, half_d)
    return jax.nn.log_softmax(logits.reshape(-1)).reshape(logits.shape)


def _move(state: GibbsWithGradientsState, uniforms: Array, potential: Potential, values: Array):
    """One single-site Metropolis-Hastings move, its randomness given: two uniforms ``(2,)``, the
    first picking the move by inverting the cumulative distribution of q, the second accepting it.
    Returns ``(state, (acceptance probability, accepted, proposal))``."""
    num_values = values.shape[0]
    log_q = proposal_log_probs(state, values).reshape(-1)
    cdf = jnp.cumsum(jnp.exp(log_q))
    pair = jnp.minimum(jnp.sum(cdf <= uniforms[0] * cdf[-1]), log_q.shape[0] - 1)
    i, v = pair // num_values, pair % num_values
    flat = state.position.reshape(-1)
    position = flat.at[i].set(values[v]).reshape(state.position.shape)
    proposal = init(position, potential)
    log_q_reverse = proposal_log_probs(proposal, values)[i, value_indices(flat[i], values)]
    delta = state.energy - proposal.energy + log_q_reverse - log_q[pair]
    # NaN (a NaN energy or gradient) and a move of probability 0 (picked by rounding) are rejected
    delta = jnp.where(jnp.isnan(delta) | jnp.isneginf(log_q[pair]), -jnp.inf, delta)
    accepted = jnp.log(uniforms[1]) < delta
    new_state = jax.tree.map(lambda new, old: jnp.where(accepted, new, old), proposal, state)
    return new_state, (jnp.minimum(1.0, jnp.exp(delta)), accepted, proposal)


def build_kernel():
    """The raw kernel ``kernel(rng_key, state, potential, num_flips=1) -> (state, info)``: a step
    is ``num_flips`` (a Python int >= 1) sequential single-site moves, whose ``2 * num_flips``
    uniforms are drawn together from ``rng_key``; the coordinates take the values of
    ``potential.support.values``."""

    def kernel(rng_key: PRNGKeyArray, state: GibbsWithGradientsState, potential: Potential, num_flips: int = 1):
        dtype = state.position.dtype
        values = jnp.asarray(potential.support.values, dtype)
        uniforms = jax.random.uniform(rng_key, (num_flips, 2), dtype)

        def body(state, u):
            return _move(state, u, potential, values)

        state, (p_accept, accepted, proposals) = jax.lax.scan(body, state, uniforms)
        proposal = jax.tree.map(lambda a: a[-1], proposals)
        return state, GibbsWithGradientsInfo(jnp.mean(p_accept), jnp.any(accepted), proposal)

    return kernel


def check_gradient_potential(potential: Potential, owner: str) -> None:
    """Refuse, with a ValueError naming ``owner`` and what to use instead, a potential a gradient
    sampler of discrete states cannot run on: a continuous support, or an energy whose gradient in
    x JAX cannot form (checked by tracing ``jax.grad`` once, without evaluating it)."""
    family = type(potential).__name__
    if potential.support.continuous:
        raise ValueError(f"{owner} samples discrete potentials (binary, spin or categorical support); {family} has "
                         f"support {potential.support}. Use kernel='mala' or 'nuts' for continuous supports.")
    x = jax.ShapeDtypeStruct(tuple(potential.event_shape), jnp.result_type(float))
    try:
        jax.eval_shape(jax.value_and_grad(potential.unbatched_energy), x)
    except Exception as exc:  # noqa: BLE001 - any failure of JAX's tracing means "not differentiable here"
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(f"{owner} needs the gradient of {family}.unbatched_energy with respect to x (at real-valued "
                         f"x, the relaxation of its {potential.support} support), and jax.grad fails on it: "
                         f"{type(exc).__name__}: {reason}. Use kernel='site_gibbs', which needs energies only.") from exc


def as_top_level_api(potential: Potential, num_flips: int = 1) -> SamplingAlgorithm:
    """``SamplingAlgorithm(init, step)`` for Gibbs with gradients on a discrete ``potential``
    (binary, spin or categorical support) whose energy is differentiable in x.

    Args:
        potential: the target; its ``unbatched_energy`` is differentiated at real-valued x.
        num_flips: single-site Metropolis-Hastings moves per step, an integer >= 1 (default 1).
    """
    num_flips = checks.int_at_least(num_flips, "gibbs_with_gradients: num_flips", 1)
    check_gradient_potential(potential, "gibbs_with_gradients")
    kernel = build_kernel()

    def init_fn(position: ArrayLike, rng_key: PRNGKeyArray | None = None):
        return init(check_position(position, potential, "gibbs_with_gradients.init"), potential)

    def step_fn(rng_key: PRNGKeyArray, state: GibbsWithGradientsState):
        return kernel(rng_key, state, potential, num_flips)

    return SamplingAlgorithm(init_fn, step_fn)


#: ``ep.kernels.gibbs_with_gradients``, exposed as BlackJAX exposes ``blackjax.mala``: calling it builds the algorithm.
sampling_api = GenerateSamplingAPI(as_top_level_api, init, build_kernel)
sampling_api.register_factory("proposal_log_probs", proposal_log_probs)
