"""Per-epoch evaluation of the Boltzmann family: reconstruction error, pseudo-likelihood, exact LL."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl.compiler import filter_jit
from ebm_ppl.potentials.capabilities import has_exact_log_partition, has_visible_mean
from ebm_ppl.potentials.base import Potential, Support

__all__ = ["boltzmann_metrics", "boltzmann_metrics_sets", "reconstruction_error", "pseudo_log_likelihood", "EXACT_LL_MAX_TERMS"]

#: fit() reports the exact log-likelihood each epoch while log Z needs at most this many terms.
EXACT_LL_MAX_TERMS = 2**20


@filter_jit
def reconstruction_error(model: Potential, x: Array, key: PRNGKeyArray) -> Array:
    """Mean squared error between x and its one-step reconstruction E[x' | h], h ~ p(h | x), for
    potentials with ``conditional_visible_mean``; ``x: (N, D)``, returns a scalar."""
    return jnp.mean((x - model.conditional_visible_mean(model.sample_hidden(key, x))) ** 2)


@filter_jit
def pseudo_log_likelihood(model: Potential, x: Array, key: PRNGKeyArray) -> Array:
    """Stochastic pseudo-log-likelihood of binary data, per example: ``D log sigmoid(F(x~) - F(x))``
    with x~ equal to x with one random coordinate flipped (Besag 1975; the estimator of
    scikit-learn's BernoulliRBM.score_samples)."""
    d = x.shape[-1]
    idx = jax.random.randint(key, (x.shape[0],), 0, d)
    flipped = x.at[jnp.arange(x.shape[0]), idx].set(1 - x[jnp.arange(x.shape[0]), idx])
    f = jax.vmap(model.unbatched_energy)
    return jnp.mean(d * jax.nn.log_sigmoid(f(flipped) - f(x)))


def boltzmann_metrics(model: Potential, data: tuple[Array, ...], key: PRNGKeyArray, prefix: str) -> dict[str, float]:
    """Reconstruction error and pseudo-LL (binary) of ``data`` ``(x (N, *event), ...)``, and the
    exact mean log-likelihood when log Z enumerates in at most :data:`EXACT_LL_MAX_TERMS` terms;
    keys start with ``prefix``."""
    return boltzmann_metrics_sets(model, {prefix: data}, key)


def boltzmann_metrics_sets(model: Potential, sets: dict[str, tuple[Array, ...]], key: PRNGKeyArray) -> dict[str, float]:
    """:func:`boltzmann_metrics` of several data sets (``{prefix: data}``, e.g. ``{"train_": ...,
    "val_": ...}``) in one compiled call with one log Z, shared by all sets; every set uses ``key``.
    This is what :func:`ebm_ppl.fit` runs after an epoch by default: for a 64x20 RBM the 2^20-term
    log Z is most of the cost, so train and validation together cost one enumeration, not two."""
    xs = {prefix: jnp.asarray(data[0]) for prefix, data in sets.items()}
    return {k: float(v) for k, v in jax.device_get(_boltzmann_values(model, xs, key)).items()}


@filter_jit
def _boltzmann_values(model: Potential, xs: dict[str, Array], key: PRNGKeyArray) -> dict[str, Array]:
    k1, k2 = jax.random.split(key)
    log_z = None
    if has_exact_log_partition(model):
        try:  # the size check is static: it raises while tracing, before any enumeration
            log_z = model.log_partition(max_terms=EXACT_LL_MAX_TERMS)
        except ValueError:
            pass
    out = {}
    for prefix, x in xs.items():
        if has_visible_mean(model):
            out[f"{prefix}reconstruction_error"] = reconstruction_error(model, x, k1)
        if model.support == Support.BINARY:
            out[f"{prefix}pseudo_log_likelihood"] = pseudo_log_likelihood(model, x, k2)
        if log_z is not None:
            out[f"{prefix}log_likelihood"] = jnp.mean(-jax.vmap(model.unbatched_energy)(x)) - log_z
    return out
