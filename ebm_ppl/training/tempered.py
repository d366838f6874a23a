"""Persistent CD with parallel tempering (PT-PCD; Desjardins et al. 2010), and a live log Z.

The persistent chains are the replicas of a tempering ladder (:mod:`ebm_ppl.moves.tempering`):
every update moves each rung's ``num_chains`` chains by ``k`` exact Gibbs sweeps of that rung's
model, each sweep followed by even/odd neighbour swaps with the exact Metropolis rule
(:func:`ebm_ppl.moves.ladders.pair_log_acceptance`), and the negatives of the gradient
are the beta = 1 chains. Chains that would stay in one mode under plain PCD are refreshed from the
hotter rungs, which is what keeps the negative phase honest on multimodal models.

The same energies give, at no extra cost, Bennett's acceptance ratio between every pair of
neighbouring rungs (:mod:`ebm_ppl.partition.bar`), so each update also reports log Z of the
current model, ``pt_log_partition`` (the bottom rung's log Z in closed form plus the ladder's BAR
ratios), and the batch's log-likelihood under it, ``pt_log_likelihood``: :func:`ebm_ppl.fit`
records their epoch means as ``train_pt_log_partition`` and ``train_pt_log_likelihood``, a
log-likelihood curve for models too large to enumerate.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.moves import gibbs
from ebm_ppl.moves import ladders
from ebm_ppl.moves.tempering import REFERENCES, Tempering, tempering
from ebm_ppl.partition.bar import ladder_log_partition
from ebm_ppl.potentials.base import Potential
from ebm_ppl.sharding import shard_rows
from ebm_ppl.training.estimators import grads_and_metrics
from ebm_ppl.training.rows import random_rows

__all__ = ["PTPCDEstimator", "PTPCDState", "pt_pcd"]


class PTPCDState(NamedTuple):
    """key: the sampler's key; chains: ``(R, num_chains, *event)``, rung by rung (the last is
    beta = 1); step: sweeps so far (their parity picks the swapped pairs)."""

    key: PRNGKeyArray
    chains: Array
    step: Array


class PTPCDEstimator(eqx.Module):
    """PT-PCD as a value: static settings, so equal estimators share :func:`ebm_ppl.fit`'s
    compiled code. The ladder is ``betas`` when given, else the geometric one of
    ``num_replicas`` rungs from ``min_beta`` (beta = 0 first where the model's tempered family
    has a proper reference)."""

    k: int = eqx.field(static=True)
    num_chains: int = eqx.field(static=True)
    num_replicas: int = eqx.field(static=True)
    min_beta: float = eqx.field(static=True)
    betas: tuple[float, ...] | None = eqx.field(static=True, default=None)
    reference: str | None = eqx.field(static=True, default=None)

    def family(self, model: Potential) -> Tempering:
        return tempering(model, self.reference)

    def ladder(self, family: Tempering) -> tuple[float, ...]:
        """The betas for ``family`` (Python floats)."""
        if self.betas is not None:
            return self.betas
        return ladders.ladder_values(self.num_replicas, self.min_beta, family.has_reference)

    init_takes_num_rows = True  # see ebm_ppl.training.GradientEstimator
    data_arrays = 1  # x alone

    def init(self, key: PRNGKeyArray, model: Potential, data: Array | tuple[Array, ...] | None = None,
             num_rows: Array | None = None) -> PTPCDState:
        """Every rung's chains at random rows of ``data`` when given, else at the potential's default starts."""
        family = self.family(model)
        hint = (f" at reference={self.reference!r} (use reference='temperature' or 'base')" if gibbs.has_gibbs_moves(model)
                else " (train real energies with the JEM objective and Langevin)")
        gibbs.check_gibbs(family.at(jnp.ones(())), "PT-PCD", hint, name=type(model).__name__)
        ladder = self.ladder(family)
        ladders.check_ladder(ladder, family)
        key, sub = jax.random.split(key)
        num = len(ladder) * self.num_chains
        if data is not None:
            x = jnp.asarray(data[0] if isinstance(data, tuple) else data)
            chains = random_rows(sub, x, num, num_rows)
        else:
            chains = model.initial_positions(sub, num)
        return PTPCDState(key, chains.reshape(len(ladder), self.num_chains, *chains.shape[1:]),
                          jnp.zeros((), jnp.int32))

    def update(self, model: Potential, batch: tuple[Array, ...], state: PTPCDState):
        """Gradients of the batch ``(x (B, *event), ...)`` with the beta = 1 chains after ``k``
        tempered sweeps as negatives; metrics: the free-energy gap, the mean and smallest swap
        acceptance, ``pt_log_partition`` and ``pt_log_likelihood``."""
        family = self.family(model)
        betas = jnp.asarray(self.ladder(family), state.chains.dtype)
        key, sub = jax.random.split(state.key)

        def sweep(carry, key):
            chains, step = carry
            key_move, key_swap = jax.random.split(key)
            keys = jax.random.split(key_move, betas.shape[0])
            chains = jax.vmap(lambda k, b, xs: gibbs.gibbs_sweep(k, family.at(b), xs))(keys, betas, chains)
            # per chain n, the replicas chains[:, n] swap along the ladder
            log_a, energies = jax.vmap(ladders.pair_log_acceptance, in_axes=(None, 1, None))(family, chains, betas)
            _, swapped = jax.vmap(ladders.swap_sources, in_axes=(0, 0, None))(
                jax.random.split(key_swap, self.num_chains), log_a, step)
            chains = ladders.exchange(chains, swapped.T)
            return (chains, step + 1), (log_a, energies)

        (chains, step), (log_a, energies) = jax.lax.scan(sweep, (shard_rows(state.chains, 1), state.step),
                                                         jax.random.split(sub, self.k))
        chains = shard_rows(chains, 1)  # (R, C, ...): the chains over the devices of a sharded ep.fit
        grads, metrics = grads_and_metrics(model, batch[0], chains[-1])
        acceptance = jnp.mean(jnp.exp(jnp.minimum(log_a[-1], 0.0)), axis=0)  # (R - 1,), the last sweep's
        metrics = {**metrics, "pt_swap_acceptance": jnp.mean(acceptance), "pt_min_swap_acceptance": jnp.min(acceptance)}
        reference = family.reference_log_partition()
        if reference is not None:
            log_z, _ = ladder_log_partition(jax.lax.stop_gradient(energies[-1]), reference)
            energy = jax.vmap(model.unbatched_energy)(batch[0])
            metrics |= {"pt_log_partition": log_z, "pt_log_likelihood": -jnp.mean(energy) - log_z}
        return grads, PTPCDState(key, chains, step), metrics


def pt_pcd(k: int = 1, num_chains: int = 100, num_replicas: int = 10, *, min_beta: float = 0.1,
           betas=None, reference: str | None = None) -> PTPCDEstimator:
    """PT-PCD: ``num_chains`` persistent chains on each of ``num_replicas`` rungs (or the ladder
    ``betas``, ascending to 1), ``k`` tempered Gibbs sweeps with swaps per update (Desjardins et
    al. 2010). The default ladder is :func:`ebm_ppl.moves.ladders.ladder` from
    ``min_beta`` (with beta = 0 first where the tempered family has a proper reference); the
    ``reference`` is the tempered family's (docs/parallel-tempering.md). Reports
    ``pt_log_partition`` / ``pt_log_likelihood`` where the bottom rung's log Z is known."""
    k = checks.positive_int(k, "pt_pcd: k")
    num_chains = checks.positive_int(num_chains, "pt_pcd: num_chains")
    num_replicas = checks.int_at_least(num_replicas, "pt_pcd: num_replicas", 2)
    min_beta = checks.positive_float(min_beta, "pt_pcd: min_beta")
    if min_beta >= 1:
        raise ValueError(f"pt_pcd: min_beta must be below 1, got {min_beta}")
    if reference not in (None, *REFERENCES):
        raise ValueError(f"pt_pcd: reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    betas = None if betas is None else ladders.ladder_tuple(betas, "pt_pcd: betas")
    return PTPCDEstimator(k, num_chains, num_replicas, min_beta, betas, reference)
