"""ebm_ppl's kernels (Gibbs, Langevin) as a NumPyro ``MCMCKernel`` for ``numpyro.infer.MCMC``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from numpyro.infer.mcmc import MCMCKernel

from ebm_ppl.inference.plans import check_options
from ebm_ppl.kernels.registry import (KERNELS, check_kernel, check_kernel_options, default_kernel, fixed_algorithm,
                                      uses_gradients)
from ebm_ppl.potentials.base import Potential, check_potential, validate_input
from ebm_ppl.potentials.unconstrained import unconstrained

__all__ = ["EnergyKernel", "EnergyKernelState", "ENERGY_KERNELS"]

#: The kernels of the table that run without tuning, hence under NumPyro's ``MCMC`` as they are,
#: and parallel tempering on a fixed ladder.
ENERGY_KERNELS = tuple(name for name, spec in KERNELS.items() if not spec.tuned or name == "parallel_tempering")


class EnergyKernelState(NamedTuple):
    """z: the sample (NumPyro's ``sample_field``); inner: our kernel's state; rng_key."""

    z: Any
    inner: Any
    rng_key: Any


class EnergyKernel(MCMCKernel):
    """Run ebm_ppl's untuned kernels (Gibbs, gradient-guided discrete samplers, Langevin, parallel
    tempering) on a potential under ``numpyro.infer.MCMC``.

    ``MCMC(EnergyKernel(rbm), num_warmup=..., num_samples=..., num_chains=...).run(key)``. Under
    ``chain_method="vectorized"`` NumPyro hands ``init`` a batch of keys; the kernel then vmaps
    itself over chains. ``init_params`` (optional) is ``(*event_shape)`` with one chain and
    ``(num_chains, *event_shape)`` with several (NumPyro's ``MCMC.run`` requires the chain axis
    then; start every chain at one point ``x0`` with ``jnp.broadcast_to(x0, (num_chains,
    *x0.shape))``); by default chains start at the potential's ``initial_positions``.

    The draws come out under the site name ``site``, as a model's would: ``mcmc.get_samples()``
    is ``{"x": array}`` and ``arviz.from_numpyro(mcmc)`` has ``posterior.x`` (NumPyro applies the
    kernel's ``postprocess_fn`` to its ``sample_field`` when it collects the draws).

    ``"parallel_tempering"`` runs R replicas on a *fixed* ladder (NumPyro's warm-up is burn-in
    here; ``ep.sample``'s warm-up adapts the ladder: pass its rungs, ``sample_stats["beta"]``'s
    values for one draw, as ``betas``). The draws are the beta = 1 replica's; the whole
    :class:`~ebm_ppl.kernels.replica_exchange.PTState` is the state's ``inner``, so
    ``mcmc.run(key, extra_fields=("inner.round_trips",))`` collects the round trips.

    On a bounded support (``ep.box``) the gradient kernels (Langevin, parallel tempering over
    MALA) run, as in :func:`ebm_ppl.sample`, on R^D through the support's bijection with its
    log-Jacobian (:mod:`ebm_ppl.potentials.unconstrained`): the draws ``z`` are on the support,
    the ``inner`` state holds ``T^{-1}(x)``.

    Args:
        potential: the target.
        kernel: one of :data:`ENERGY_KERNELS` (``"block_gibbs"``, ``"site_gibbs"``,
            ``"gibbs_with_gradients"``, ``"discrete_langevin"``, ``"langevin"``,
            ``"parallel_tempering"``); default by support.
        step_size: Langevin's or discrete Langevin's alpha, a number > 0 (NumPy and 0-d JAX numbers
            accepted; for parallel tempering its base kernel's); None: the kernel's default
            (``ep.kernels.KERNELS[kernel].defaults``). Refused by kernels without a step size.
        noise_scale: Langevin's sigma >= 0 (None: sqrt(2 alpha)); refused by other kernels.
        site: the name of the draws in ``get_samples()`` and in ArviZ's ``posterior``.
        base_kernel: parallel tempering's kernel on every rung (default: the family's).
        num_replicas: parallel tempering's number of rungs (default 8).
        betas: parallel tempering's ladder, ascending to 1 (default: geometric, ``num_replicas``
            rungs down to ``min_beta``).
        min_beta: the geometric ladder's lowest rung above the reference (default 0.1).
        reference: parallel tempering's tempered family, as in :func:`ebm_ppl.sample`.
    """

    sample_field = "z"

    def __init__(self, potential: Potential, kernel: str | None = None, *, step_size: float | None = None,
                 noise_scale: float | None = None, site: str = "x", base_kernel: str | None = None,
                 num_replicas: int | None = None, betas: Any = None, min_beta: float | None = None,
                 reference: str | None = None):
        check_potential(potential, "EnergyKernel")
        if kernel is None:
            kernel = default_kernel(potential)
            kernel = kernel if kernel in ENERGY_KERNELS else "langevin"
        if not isinstance(kernel, str) or kernel not in ENERGY_KERNELS:
            raise ValueError(f"EnergyKernel runs {', '.join(map(repr, ENERGY_KERNELS))}; got {kernel!r} (use "
                             "numpyro.infer.NUTS(potential_fn=ebm_ppl.numpyro.potential_fn(p)) for NUTS)")
        spec = check_kernel(kernel, potential, owner="EnergyKernel")
        given = {"step_size": step_size, "noise_scale": noise_scale, "base_kernel": base_kernel,
                 "num_replicas": num_replicas, "betas": betas, "min_beta": min_beta, "reference": reference}
        foreign = sorted(k for k, v in given.items() if v is not None and k not in spec.options)
        if foreign:
            takes = ", ".join(k for k in given if k in spec.options) or "no options"
            raise ValueError(f"EnergyKernel: kernel {kernel!r} does not take {', '.join(foreign)} (it takes {takes})")
        parameters = check_options(spec, {k: v for k, v in given.items() if k in spec.options and v is not None},
                                   owner="EnergyKernel")
        check_kernel_options(spec, potential, parameters, owner="EnergyKernel")
        # as ep.sample: gradient kernels run a bounded support on R^D (log-Jacobian included)
        self._target = unconstrained(potential) if uses_gradients(spec, potential, parameters) else potential
        self._algo = fixed_algorithm(spec, self._target, **parameters)
        if not isinstance(site, str) or not site:
            raise ValueError(f"EnergyKernel: site must be a non-empty string, got {site!r}")
        self.potential = potential
        self.kernel = kernel
        self.site = site

    @property
    def model(self):
        return None

    def postprocess_fn(self, model_args, model_kwargs):
        """``z -> {site: z}``: names the draws, as NumPyro names a model's sample sites."""
        site = self.site
        return lambda z: {site: z}

    def _init_one(self, rng_key, x0):
        key_init, key_next = jax.random.split(rng_key)
        if x0 is None:
            x0 = self.potential.initial_positions(key_init, 1)[0]
        x0 = jnp.asarray(x0, jnp.result_type(float))
        inner = self._algo.init(x0 if self._target is self.potential else self._target.unconstrain(x0), key_init)
        return EnergyKernelState(self._on_support(inner.position), inner, key_next)

    def _on_support(self, position):
        """The inner state's position on the potential's support (it is z in R^D where the
        kernel runs on a bounded support's unconstrained view)."""
        return position if self._target is self.potential else self._target.constrain(position)

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        batched = _is_batched_key(rng_key)
        if init_params is not None:  # the public boundary: shape, real dtype, finite (and 0/1) values
            init_params = validate_input(init_params, self.potential.event_shape, self.potential.support,
                                         name="init_params", owner="EnergyKernel")
            event_shape = tuple(self.potential.event_shape)
            shapes = [event_shape, (rng_key.shape[0], *event_shape)] if batched else [event_shape]
            if tuple(init_params.shape) not in shapes:
                raise ValueError(f"EnergyKernel: init_params has shape {tuple(init_params.shape)}; expected "
                                 f"{' or '.join(map(str, shapes))} (one point per chain; NumPyro's MCMC with "
                                 "num_chains > 1 requires the leading chain axis)")
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
        return EnergyKernelState(self._on_support(inner.position), inner, key)

    def sample(self, state, model_args, model_kwargs):
        if _is_batched_key(state.rng_key):
            return jax.vmap(self._sample_one)(state)
        return self._sample_one(state)


def _is_batched_key(key) -> bool:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.ndim >= 1
    return key.ndim >= 2  # raw uint32 keys: (2,) is one key, (n, 2) a batch
