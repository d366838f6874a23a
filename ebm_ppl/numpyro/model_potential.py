"""A NumPyro model's joint density over its latent sites, as an ebm_ppl potential.

    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0, 1))
        numpyro.sample("y", dist.Normal(mu, 0.5), obs=y)

    p = ep.numpyro.potential_from_model(model, y)
    ep.ais(key, p)                      # log Z = the log evidence log p(y), annealed from a Gaussian
    ep.numpyro.log_evidence(key, model, y)   # the same, annealed from the prior (better for most models)
    idata = ep.sample(key, p, "nuts"); p.sites(idata.posterior["x"].values)   # {"mu": ...}

The potential lives on NumPyro's unconstrained space, flattened to one vector z: its energy is
NumPyro's own ``potential_energy`` (minus the log joint density, the Jacobians of the transforms
to each site's support included, from ``numpyro.infer.util.initialize_model``), so its
normalizer is the model's evidence p(y) and every sampler, AIS and the report run on it.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import equinox as eqx
import jax
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PRNGKeyArray
from numpyro import handlers
from numpyro.infer.util import initialize_model

from ebm_ppl.potentials.base import Potential, Support

__all__ = ["potential_from_model", "ModelPotential"]


class ModelPotential(Potential):
    """The energy ``E(z) = -log p(z, y)`` of a NumPyro model on its unconstrained space, z the
    flattened vector of its latent sites (built by :func:`potential_from_model`).

    Attributes:
        init: an unconstrained point where the model's density is finite, shape ``(D,)``.
    """

    name: ClassVar[str] = "numpyro_model"
    support: ClassVar[Support] = Support.REAL

    init: Array
    potential_fn: Callable[[Any], Array] = eqx.field(static=True)
    unravel: Callable[[Array], Any] = eqx.field(static=True)
    postprocess: Callable[[Any], Any] = eqx.field(static=True)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.init.shape

    def unbatched_energy(self, z: Array) -> Array:
        return self.potential_fn(self.unravel(z))

    def sites(self, z: Array) -> dict[str, Array]:
        """The model's latent sites (constrained, and its deterministic sites) at unconstrained
        points ``z`` of shape ``(*batch, D)``; each value gets the batch axes in front."""
        z = np.asarray(z) if not isinstance(z, jax.Array) else z
        if z.ndim < 1 or z.shape[-1] != self.init.shape[0]:  # shapes only: a diverged draw's NaN maps to NaN
            raise ValueError(f"sites: z has shape {tuple(z.shape)}; expected (*batch, {self.init.shape[0]}), points "
                             "of the model's unconstrained space")
        fn = lambda v: self.postprocess(self.unravel(v))  # noqa: E731
        for _ in range(z.ndim - 1):
            fn = jax.vmap(fn)
        return fn(z)

    def initial_positions(self, key: PRNGKeyArray, num: int) -> Array:
        """``init`` plus N(0, 0.01 I) jitter (NumPyro's initial point is valid; the unconstrained
        space's scale is the model's)."""
        return self.init + 0.1 * jax.random.normal(key, (num, *self.init.shape), self.init.dtype)

    def to_config(self) -> dict[str, Any]:
        raise TypeError("the potential of a NumPyro model cannot be saved (it holds the model's code); "
                        "keep the model and rebuild it with ep.numpyro.potential_from_model")


def potential_from_model(model: Callable, *model_args: Any, key: PRNGKeyArray | None = None,
                         **model_kwargs: Any) -> ModelPotential:
    """The joint density of ``model(*model_args, **model_kwargs)`` over its latent sites as a
    potential on the unconstrained space (its log Z is the log evidence of the observed sites).

    Args:
        model: a NumPyro model with continuous latent sites.
        model_args: its positional arguments (observed data).
        key: PRNG key for NumPyro's initialization (default key 0).
        model_kwargs: its keyword arguments.

    Raises:
        ValueError: the model has discrete latent sites (they have no unconstrained space; sum
            them out in the model, e.g. with ``numpyro.contrib.funsor``'s enumeration) or none.
    """
    key = jax.random.key(0) if key is None else key
    trace = handlers.trace(handlers.seed(model, key)).get_trace(*model_args, **model_kwargs)
    latent = [name for name, site in trace.items() if site["type"] == "sample" and not site["is_observed"]]
    discrete = [name for name in latent if getattr(trace[name]["fn"], "has_enumerate_support", False)]
    if discrete:
        raise ValueError(f"potential_from_model: the model has discrete latent site(s) {discrete}; a potential needs "
                         "continuous latent sites (sum the discrete ones out in the model)")
    if not latent:
        raise ValueError("potential_from_model: the model has no latent sites (nothing to integrate over)")
    info = initialize_model(key, model, model_args=model_args, model_kwargs=model_kwargs)
    if not info.param_info.z:
        raise ValueError("potential_from_model: the model has no latent sites (nothing to integrate over)")
    z0, unravel = ravel_pytree(info.param_info.z)
    return ModelPotential(z0, info.potential_fn, unravel, info.postprocess_fn)
