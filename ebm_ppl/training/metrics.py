"""Per-epoch evaluation of the Boltzmann family: reconstruction error, pseudo-likelihood, exact LL."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl.kernels.block_gibbs import has_conditionals
from ebm_ppl.potentials.base import Potential, Support

__all__ = ["boltzmann_metrics", "reconstruction_error", "pseudo_log_likelihood", "EXACT_LL_MAX_TERMS"]

#: fit() reports the exact log-likelihood each epoch while log Z needs at most this many terms.
EXACT_LL_MAX_TERMS = 2**20


@eqx.filter_jit
def reconstruction_error(model: Potential, x: Array, key: PRNGKeyArray) -> Array:
    """Mean squared error between x and its one-step reconstruction E[x' | h], h ~ p(h | x)."""
    latent = model.sample_hidden(key, x)
    if model.support == Support.REAL:  # Gaussian visible units: the conditional mean
        recon = model._visible_mean(latent)
    else:
        latent = latent if isinstance(latent, tuple) else (latent,)
        recon = jax.nn.sigmoid(model.visible_logits(*latent))
    return jnp.mean((x - recon) ** 2)


@eqx.filter_jit
def pseudo_log_likelihood(model: Potential, x: Array, key: PRNGKeyArray) -> Array:
    """Stochastic pseudo-log-likelihood of binary data, per example: ``D log sigmoid(F(x~) - F(x))``
    with x~ equal to x with one random coordinate flipped (Besag 1975; the estimator of
    scikit-learn's BernoulliRBM.score_samples)."""
    d = x.shape[-1]
    idx = jax.random.randint(key, (x.shape[0],), 0, d)
    flipped = x.at[jnp.arange(x.shape[0]), idx].set(1 - x[jnp.arange(x.shape[0]), idx])
    f = jax.vmap(model._energy)
    return jnp.mean(d * jax.nn.log_sigmoid(f(flipped) - f(x)))


def boltzmann_metrics(model: Potential, data: tuple[Array, ...], key: PRNGKeyArray, prefix: str) -> dict[str, float]:
    """Reconstruction error and pseudo-LL (binary) of ``data``, and the exact mean log-likelihood
    when log Z enumerates in at most :data:`EXACT_LL_MAX_TERMS` terms."""
    x = data[0]
    k1, k2 = jax.random.split(key)
    out = {}
    if has_conditionals(model):
        out[f"{prefix}reconstruction_error"] = float(reconstruction_error(model, x, k1))
    if model.support == Support.BINARY:
        out[f"{prefix}pseudo_log_likelihood"] = float(pseudo_log_likelihood(model, x, k2))
    if hasattr(model, "log_partition"):
        try:  # the size check comes first, so a too-large model costs nothing here
            log_z = model.log_partition(max_terms=EXACT_LL_MAX_TERMS)
        except ValueError:
            return out
        out[f"{prefix}log_likelihood"] = float(jnp.mean(-jax.vmap(model._energy)(x)) - log_z)
    return out
