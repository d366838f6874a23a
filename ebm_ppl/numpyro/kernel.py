"""ebm_ppl's kernels (Gibbs, Langevin) as a NumPyro ``MCMCKernel`` for ``numpyro.infer.MCMC``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from numpyro.infer.mcmc import MCMCKernel

from ebm_ppl.kernels.block_gibbs import as_top_level_api as block_gibbs
from ebm_ppl.kernels.langevin import as_top_level_api as langevin
from ebm_ppl.kernels.site_gibbs import as_top_level_api as site_gibbs
from ebm_ppl.inference.sampling import default_kernel
from ebm_ppl.potentials.base import Potential, Support

__all__ = ["EnergyKernel", "EnergyKernelState"]


class EnergyKernelState(NamedTuple):
    """z: the sample (NumPyro's ``sample_field``); inner: our kernel's state; rng_key."""

    z: Any
    inner: Any
    rng_key: Any


class EnergyKernel(MCMCKernel):
    """Run ``block_gibbs``, ``site_gibbs`` or ``langevin`` on a potential under ``numpyro.infer.MCMC``.

    ``MCMC(EnergyKernel(rbm), num_warmup=..., num_samples=..., num_chains=...).run(key)``. Under
    ``chain_method="vectorized"`` NumPyro hands ``init`` a batch of keys; the kernel then vmaps
    itself over chains. ``init_params`` (optional) is ``(*event_shape)`` or
    ``(num_chains, *event_shape)``; by default chains start at fair coin flips / N(0, I).

    Args:
        potential: the target.
        kernel: ``"block_gibbs"``, ``"site_gibbs"`` or ``"langevin"``; default by support.
        step_size: Langevin's alpha.
        noise_scale: Langevin's sigma (None: sqrt(2 alpha)).
    """

    sample_field = "z"

    def __init__(self, potential: Potential, kernel: str | None = None, *, step_size: float = 1e-2,
                 noise_scale: float | None = None):
        if not isinstance(potential, Potential):
            raise TypeError(f"EnergyKernel expects an ebm_ppl.Potential, got {type(potential).__name__}")
        kernel = default_kernel(potential) if kernel is None else kernel
        if kernel == "nuts":
            kernel = "langevin"
        if kernel == "block_gibbs":
            self._algo = block_gibbs(potential)
        elif kernel == "site_gibbs":
            self._algo = site_gibbs(potential)
        elif kernel == "langevin":
            if potential.support != Support.REAL:
                raise ValueError("langevin needs a real-valued potential")
            self._algo = langevin(lambda x: -potential._energy(x), step_size, noise_scale)
        else:
            raise ValueError(f"EnergyKernel runs 'block_gibbs', 'site_gibbs' or 'langevin'; got {kernel!r} "
                             "(use numpyro.infer.NUTS(potential_fn=ebm_ppl.numpyro.potential_fn(p)) for NUTS)")
        self.potential = potential
        self.kernel = kernel

    @property
    def model(self):
        return None

    def _init_one(self, rng_key, x0):
        key_init, key_next = jax.random.split(rng_key)
        if x0 is None:
            shape = self.potential.event_shape
            x0 = (jax.random.bernoulli(key_init, 0.5, shape).astype(jnp.result_type(float))
                  if self.potential.support == Support.BINARY else jax.random.normal(key_init, shape))
        inner = self._algo.init(jnp.asarray(x0, jnp.result_type(float)), key_init)
        return EnergyKernelState(inner.position, inner, key_next)

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        batched = _is_batched_key(rng_key)
        if not batched:
            return self._init_one(rng_key, init_params)
        if init_params is None:
            return jax.vmap(lambda k: self._init_one(k, None))(rng_key)
        x0 = jnp.asarray(init_params)
        if x0.ndim == len(self.potential.event_shape):
            x0 = jnp.broadcast_to(x0, (rng_key.shape[0], *x0.shape))
        return jax.vmap(self._init_one)(rng_key, x0)

    def _sample_one(self, state: EnergyKernelState) -> EnergyKernelState:
        key, sub = jax.random.split(state.rng_key)
        inner, _ = self._algo.step(sub, state.inner)
        return EnergyKernelState(inner.position, inner, key)

    def sample(self, state, model_args, model_kwargs):
        if _is_batched_key(state.rng_key):
            return jax.vmap(self._sample_one)(state)
        return self._sample_one(state)


def _is_batched_key(key) -> bool:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.ndim >= 1
    return key.ndim >= 2  # raw uint32 keys: (2,) is one key, (n, 2) a batch
