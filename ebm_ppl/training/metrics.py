"""Per-epoch evaluation of the Boltzmann family: reconstruction error, pseudo-likelihood, exact LL."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl.compiler import filter_jit
from ebm_ppl.potentials.capabilities import has_exact_log_partition, has_visible_mean
from ebm_ppl.potentials.base import Potential, Support
from ebm_ppl.training.rows import bucket_rows, masked_mean, pad_rows

__all__ = ["boltzmann_metrics", "boltzmann_metrics_sets", "padded_boltzmann_metrics", "reconstruction_error",
           "pseudo_log_likelihood", "EXACT_LL_MAX_TERMS"]

#: fit() reports the exact log-likelihood each epoch while log Z needs at most this many terms.
EXACT_LL_MAX_TERMS = 2**20


def _squared_errors(model: Potential, x: Array, key: PRNGKeyArray) -> Array:
    return (x - model.conditional_visible_mean(model.sample_hidden(key, x))) ** 2


def _pseudo_log_likelihoods(model: Potential, x: Array, key: PRNGKeyArray) -> Array:
    d = x.shape[-1]
    rows = jnp.arange(x.shape[0])
    idx = jax.random.randint(key, (x.shape[0],), 0, d)
    flipped = x.at[rows, idx].set(1 - x[rows, idx])
    f = jax.vmap(model.unbatched_energy)
    return d * jax.nn.log_sigmoid(f(flipped) - f(x))


@filter_jit
def reconstruction_error(model: Potential, x: Array, key: PRNGKeyArray) -> Array:
    """Mean squared error between x and its one-step reconstruction E[x' | h], h ~ p(h | x), for
    potentials with ``conditional_visible_mean``; ``x: (N, D)``, returns a scalar."""
    return jnp.mean(_squared_errors(model, x, key))


@filter_jit
def pseudo_log_likelihood(model: Potential, x: Array, key: PRNGKeyArray) -> Array:
    """Stochastic pseudo-log-likelihood of binary data, per example: ``D log sigmoid(F(x~) - F(x))``
    with x~ equal to x with one random coordinate flipped (Besag 1975; the estimator of
    scikit-learn's BernoulliRBM.score_samples)."""
    return jnp.mean(_pseudo_log_likelihoods(model, x, key))


def boltzmann_metrics(model: Potential, data: tuple[Array, ...], key: PRNGKeyArray, prefix: str) -> dict[str, float]:
    """Reconstruction error and pseudo-LL (binary) of ``data`` ``(x (N, *event), ...)``, and the
    exact mean log-likelihood when log Z enumerates in at most :data:`EXACT_LL_MAX_TERMS` terms;
    keys start with ``prefix``."""
    return boltzmann_metrics_sets(model, {prefix: data}, key)


def boltzmann_metrics_sets(model: Potential, sets: dict[str, tuple[Array, ...]], key: PRNGKeyArray) -> dict[str, float]:
    """:func:`boltzmann_metrics` of several data sets (``{prefix: data}``, e.g. ``{"train_": ...,
    "val_": ...}``) in one compiled call with one log Z, shared by all sets; every set uses ``key``.
    This is what :func:`ebm_ppl.fit` runs after an epoch by default: for a 64x20 RBM the 2^20-term
    log Z is most of the cost, so train and validation together cost one enumeration, not two.
    The sets are padded to a bucket of rows (:mod:`ebm_ppl.training.rows`), so one compiled
    program serves data sizes up to 25% apart; the means agree with :func:`reconstruction_error`'s
    and :func:`pseudo_log_likelihood`'s to float rounding (summed in another order)."""
    padded = {}
    for prefix, data in sets.items():
        x = jnp.asarray(data[0])
        padded[prefix] = (pad_rows((x,), bucket_rows(x.shape[0], key))[0], x.shape[0])
    return padded_boltzmann_metrics(model, padded, key)


def padded_boltzmann_metrics(model: Potential, sets: dict[str, tuple[Array, int]],
                             key: PRNGKeyArray) -> dict[str, float]:
    """:func:`boltzmann_metrics_sets` of ``{prefix: (x, n)}``, each ``x`` the ``n`` rows of a data
    set padded by :func:`ebm_ppl.training.rows.pad_rows` (:func:`ebm_ppl.fit` pads once per run)."""
    xs = {prefix: x for prefix, (x, _) in sets.items()}
    counts = {prefix: jnp.asarray(n, jnp.int32) for prefix, (_, n) in sets.items()}
    return {k: float(v) for k, v in jax.device_get(_boltzmann_values(model, xs, counts, key)).items()}


@filter_jit
def _boltzmann_values(model: Potential, xs: dict[str, Array], counts: dict[str, Array],
                      key: PRNGKeyArray) -> dict[str, Array]:
    k1, k2 = jax.random.split(key)
    log_z = None
    if has_exact_log_partition(model):
        try:  # the size check is static: it raises while tracing, before any enumeration
            log_z = model.log_partition(max_terms=EXACT_LL_MAX_TERMS)
        except ValueError:
            pass
    out = {}
    for prefix, x in xs.items():
        n = counts[prefix]
        if has_visible_mean(model):
            out[f"{prefix}reconstruction_error"] = masked_mean(_squared_errors(model, x, k1), n)
        if model.support == Support.BINARY:
            out[f"{prefix}pseudo_log_likelihood"] = masked_mean(_pseudo_log_likelihoods(model, x, k2), n)
        if log_z is not None:
            out[f"{prefix}log_likelihood"] = masked_mean(-jax.vmap(model.unbatched_energy)(x), n) - log_z
    return out
