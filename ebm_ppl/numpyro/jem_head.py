"""The JEM classifier head treated the Bayesian way: a NumPyro model over the last layer.

The network's body is kept fixed and gives features phi(x); the head is
``logits = phi(x) W + b`` with Normal priors on W and b and a Categorical likelihood. NUTS or SVI
gives a posterior over (W, b); predictions average ``softmax(logits)`` over it. The same logits
define JEM's energy ``E(x) = -logsumexp_y logits(x)[y]``, used as an out-of-distribution score.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.potentials.base import validate_input
from ebm_ppl.potentials.jem import JEM

__all__ = ["jem_features", "jem_head_model", "fit_jem_head", "BayesianHead", "PointHead",
           "expected_calibration_error", "ood_auroc"]


def jem_features(jem: JEM) -> tuple[Callable[[Array], Array], Array, Array]:
    """``(phi, W, b)`` for a JEM whose network is an ``eqx.nn.MLP``: ``phi`` maps ``(N, D)`` to the
    last hidden layer's activations ``(N, F)``; ``W (F, K)`` and ``b (K,)`` are the trained head."""
    net = jem.net
    if not isinstance(net, eqx.nn.MLP):
        raise ValueError("jem_features needs a JEM built by JEM.init (an eqx.nn.MLP); for another network "
                         "pass your own feature function and head to fit_jem_head")

    def phi_one(x):
        for layer in net.layers[:-1]:
            x = net.activation(layer(x))
        return x

    last = net.layers[-1]
    return jax.vmap(phi_one), last.weight.T, last.bias


def jem_head_model(features: Array, y: Array | None = None, *, num_classes: int, prior_scale: float = 1.0):
    """NumPyro model: ``W ~ N(0, s^2)``, ``b ~ N(0, s^2)``, ``y ~ Categorical(logits = phi W + b)``.

    Args:
        features: ``(N, F)``.
        y: ``(N,)`` integer labels, or None for prediction.
        num_classes: K.
        prior_scale: s.
    """
    f = features.shape[-1]
    W = numpyro.sample("W", dist.Normal(0.0, prior_scale).expand([f, num_classes]).to_event(2))
    b = numpyro.sample("b", dist.Normal(0.0, prior_scale).expand([num_classes]).to_event(1))
    with numpyro.plate("data", features.shape[0]):
        numpyro.sample("y", dist.Categorical(logits=features @ W + b), obs=y)


@dataclasses.dataclass(frozen=True)
class PointHead:
    """The trained network's own head: one (W, b)."""

    phi: Callable[[Array], Array]
    W: Array
    b: Array

    def logits(self, x: ArrayLike) -> Array:
        """``(N, D) -> (N, K)``."""
        return self.phi(jnp.asarray(x)) @ self.W + self.b

    def predict_proba(self, x: ArrayLike) -> Array:
        return jax.nn.softmax(self.logits(x), axis=-1)

    def energy(self, x: ArrayLike) -> Array:
        """JEM's marginal energy ``-logsumexp_y logits``; high means out of distribution."""
        return -jax.nn.logsumexp(self.logits(x), axis=-1)


@dataclasses.dataclass(frozen=True)
class BayesianHead:
    """Posterior draws of the head, ``W (S, F, K)`` and ``b (S, K)``, and how they were made."""

    phi: Callable[[Array], Array]
    W: Array
    b: Array
    method: str
    diagnostics: dict[str, Any]

    def logits(self, x: ArrayLike) -> Array:
        """Per posterior draw: ``(N, D) -> (S, N, K)``."""
        features = self.phi(jnp.asarray(x))
        return jnp.einsum("nf,sfk->snk", features, self.W) + self.b[:, None, :]

    def predict_proba(self, x: ArrayLike) -> Array:
        """Posterior predictive class probabilities ``(N, K)``: softmax averaged over draws."""
        return jnp.mean(jax.nn.softmax(self.logits(x), axis=-1), axis=0)

    def energy(self, x: ArrayLike) -> Array:
        """Posterior-mean JEM energy ``E_theta[-logsumexp_y logits]``, shape ``(N,)``."""
        return jnp.mean(-jax.nn.logsumexp(self.logits(x), axis=-1), axis=0)


def fit_jem_head(
    key: PRNGKeyArray,
    jem: JEM,
    x: ArrayLike,
    y: ArrayLike,
    *,
    method: str = "nuts",
    prior_scale: float = 1.0,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 2,
    dense_mass: bool = False,
    svi_steps: int = 3000,
    learning_rate: float = 1e-2,
    progress: bool = False,
) -> tuple[BayesianHead, PointHead]:
    """Fit the Bayesian head of ``jem`` on ``(x, y)`` by NUTS or SVI; also return the point head.

    NUTS starts at the trained head's weights and reports R-hat and bulk ESS of every weight
    (``diagnostics``: max R-hat, min ESS, divergences); ``dense_mass`` adapts a full mass matrix
    (worth it for a few hundred weights: the softmax leaves a weakly identified ridge). SVI fits a mean-field Normal guide
    (``AutoNormal``) with Adam and draws ``num_samples`` from it.
    """
    from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO, init_to_value
    from numpyro.infer.autoguide import AutoNormal

    if method not in ("nuts", "svi"):
        raise ValueError(f"method must be 'nuts' or 'svi', got {method!r}")
    prior_scale = checks.positive_float(prior_scale, "fit_jem_head: prior_scale")
    learning_rate = checks.positive_float(learning_rate, "fit_jem_head: learning_rate")
    num_warmup = checks.non_negative_int(num_warmup, "fit_jem_head: num_warmup")
    num_samples, num_chains, svi_steps = (checks.positive_int(v, f"fit_jem_head: {name}") for name, v in (
        ("num_samples", num_samples), ("num_chains", num_chains), ("svi_steps", svi_steps)))
    dense_mass, progress = checks.flag(dense_mass, "dense_mass"), checks.flag(progress, "progress")
    phi_raw, W_raw, b_raw = jem_features(jem)
    x = validate_input(x, jem.event_shape, jem.support, name="x", owner="fit_jem_head")
    # standardized features give the Normal prior one scale for every weight and a posterior far
    # better conditioned for NUTS; the trained head is re-expressed exactly in those coordinates
    raw = phi_raw(x)
    mu, sd = jnp.mean(raw, 0), jnp.std(raw, 0) + 1e-6

    def phi(inputs):
        return (phi_raw(inputs) - mu) / sd

    W0, b0 = W_raw * sd[:, None], b_raw + mu @ W_raw
    features = phi(x)
    y = jnp.asarray(y)
    if y.shape != (features.shape[0],) or not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"y must be integer labels of shape ({features.shape[0]},), got {y.dtype}{y.shape}")
    k = jem.num_classes
    if method == "nuts":
        kernel = NUTS(jem_head_model, init_strategy=init_to_value(values={"W": W0, "b": b0}), dense_mass=dense_mass)
        mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                    chain_method="vectorized", progress_bar=progress)
        mcmc.run(key, features, y, num_classes=k, prior_scale=prior_scale, extra_fields=("diverging",))
        samples = mcmc.get_samples(group_by_chain=True)
        diagnostics = _nuts_diagnostics(samples, mcmc.get_extra_fields(group_by_chain=True)["diverging"])
        W = samples["W"].reshape(-1, *W0.shape)
        b = samples["b"].reshape(-1, k)
    else:
        guide = AutoNormal(jem_head_model, init_loc_fn=init_to_value(values={"W": W0, "b": b0}))
        svi = SVI(jem_head_model, guide, numpyro.optim.Adam(learning_rate), Trace_ELBO())
        key_fit, key_draw = jax.random.split(key)
        result = svi.run(key_fit, svi_steps, features, y, num_classes=k, prior_scale=prior_scale,
                         progress_bar=progress)
        draws = guide.sample_posterior(key_draw, result.params, sample_shape=(num_samples,))
        W, b = draws["W"], draws["b"]
        diagnostics = {"final_elbo_loss": float(result.losses[-1])}
    return BayesianHead(phi, W, b, method, diagnostics), PointHead(phi, W0, b0)


def _nuts_diagnostics(samples: dict[str, Array], diverging: Array) -> dict[str, Any]:
    import arviz as az

    data = az.from_dict({"posterior": {name: np.asarray(v) for name, v in samples.items()}})
    rhat = az.rhat(data)
    ess = az.ess(data)
    max_rhat = max(float(np.nanmax(rhat[name].values)) for name in samples)
    min_ess = min(float(np.nanmin(ess[name].values)) for name in samples)
    return {"max_rhat": max_rhat, "min_ess_bulk": min_ess, "divergences": int(np.sum(diverging))}


def expected_calibration_error(probs: ArrayLike, y: ArrayLike, num_bins: int = 15) -> float:
    """ECE (Guo et al. 2017): ``sum_bins |B|/N |accuracy(B) - confidence(B)|`` over equal-width
    confidence bins. ``probs (N, K)``, ``y (N,)``."""
    num_bins = checks.positive_int(num_bins, "expected_calibration_error: num_bins")
    probs, y = np.asarray(probs), np.asarray(y)
    if probs.ndim != 2 or y.shape != probs.shape[:1] or not probs.shape[0]:
        raise ValueError(f"expected_calibration_error: probs must be (N, K) and y (N,) with N >= 1, got "
                         f"{probs.shape} and {y.shape}")
    confidence = probs.max(-1)
    correct = probs.argmax(-1) == y
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1]), 0, num_bins - 1)
    ece = 0.0
    for i in range(num_bins):
        in_bin = bins == i
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def ood_auroc(score_in: ArrayLike, score_out: ArrayLike) -> float:
    """Area under the ROC curve for telling out-of-distribution inputs (higher score) from
    in-distribution ones: the probability that a random OOD score exceeds a random ID score."""
    a, b = np.asarray(score_in, np.float64).ravel(), np.asarray(score_out, np.float64).ravel()
    if not (a.size and b.size) or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"ood_auroc: both score sets must be non-empty and finite, got {a.size} and {b.size} "
                         "scores")
    ranks = np.argsort(np.argsort(np.concatenate([a, b]), kind="stable"), kind="stable") + 1.0
    # average ranks over ties
    values = np.concatenate([a, b])
    for v in np.unique(values):
        tie = values == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    rank_sum_out = ranks[len(a):].sum()
    return float((rank_sum_out - len(b) * (len(b) + 1) / 2) / (len(a) * len(b)))
