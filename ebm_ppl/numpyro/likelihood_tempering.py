"""Likelihood tempering of a NumPyro model: ``p_beta(z) ∝ p(z) p(y | z)^beta`` on its unconstrained space.

At beta = 0 this is the prior (exact draws come from running the model forward); at beta = 1 the
posterior, whose normalizer is the evidence p(y). Annealed importance sampling along beta
(Neal 2001) weights each chain by ``sum_k (beta_k - beta_{k-1}) log p(y | z_{k-1})`` and moves it
with an HMC or MALA step that leaves ``p_beta`` invariant.

The moves need a step size and a scale per coordinate that follow the path (the prior can be
orders of magnitude wider than the posterior). They are adapted from a separate set of *tuning
chains* annealed beside the estimating ones: at each temperature the scale is the tuning chains'
standard deviation and the step size follows their acceptance rate. The estimating chains never
feed the adaptation, so given the tuning chains every move is a fixed kernel that leaves its
``p_beta`` invariant, and the weights keep their exact expectation ``E[w] = p(y)`` (forward) or
``1 / p(y)`` (reverse from exact posterior draws): the bound directions hold exactly, not only as
the number of chains grows. The reverse pass replays the parameters the forward pass recorded.

The prior and likelihood parts come from NumPyro itself: the tempered log density is
``-numpyro.infer.util.potential_energy`` of the model with each observed site's log probability
scaled by beta (Jacobians of the transforms to each latent site's support included), and
``log p(y | z)`` sums the observed sites' log probabilities
(``numpyro.infer.util.compute_log_probs`` at the constrained values). Observed sites include
``numpyro.factor`` terms: they count as likelihood.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PRNGKeyArray
from numpyro import handlers
from numpyro.infer.util import compute_log_probs, constrain_fn, potential_energy, unconstrain_fn
from numpyro.primitives import Messenger

from ebm_ppl.compiler import filter_jit
from ebm_ppl.numpyro.distribution import EnergyDistribution
from ebm_ppl.progress import progress_fori_loop

__all__ = ["LikelihoodTempering", "likelihood_tempering", "TuningRecord", "KERNELS"]

#: Transition kernels and the acceptance rate their step size is adapted to.
KERNELS = {"hmc": 0.65, "mala": 0.574}
ADAPT_RATE = 0.5  # log step size change per unit of (acceptance - target), per temperature
#: The largest step size in the scaled coordinates (a unit-variance Gaussian's leapfrog and MALA
#: steps become unstable at 2; near there acceptance swings between 0 and 1 from one move to the next).
MAX_LOG_STEP = math.log(1.5)
JITTER = 0.2  # each chain's step size is drawn uniformly within +-20% of the adapted one


class _TemperLikelihood(Messenger):
    """Scales the log probability of the named (observed) sites by ``beta``."""

    def __init__(self, fn: Callable, beta: Array, observed: tuple[str, ...]):
        self.beta, self.observed = beta, observed
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.observed:
            msg["scale"] = self.beta if msg["scale"] is None else self.beta * msg["scale"]


class LikelihoodTempering(eqx.Module):
    """The tempered posteriors ``p_beta`` of ``model(*args, **kwargs)`` on its unconstrained space,
    flattened to vectors z of size D (built by :func:`likelihood_tempering`).

    Attributes:
        model: the NumPyro model.
        args, kwargs: its arguments (arrays are traced, so a new data set of the same shapes
            reuses the compiled programs).
        data: values of sites to condition the model on (traced too; ``bdmc``'s simulated data).
        observed: the names of the observed sites (the likelihood).
        latent: the names of the latent sites, in the order of the flat vector.
        template: the latent sites at one unconstrained point (its shapes define the flat layout).
    """

    model: Callable = eqx.field(static=True)
    args: tuple
    kwargs: dict
    observed: tuple[str, ...] = eqx.field(static=True)
    latent: tuple[str, ...] = eqx.field(static=True)
    template: dict
    data: dict

    @property
    def conditioned(self) -> Callable:
        """The model conditioned on :attr:`data` (``numpyro.handlers.condition``; the model itself
        when there are none)."""
        return handlers.condition(self.model, data=self.data) if self.data else self.model

    @property
    def dim(self) -> int:
        return int(ravel_pytree(self.template)[0].shape[0])

    def unravel(self, z: Array) -> dict[str, Array]:
        """The latent sites (unconstrained) of one flat point ``z: (D,)``."""
        return ravel_pytree(self.template)[1](z)

    def ravel(self, params: dict[str, Array]) -> Array:
        """The flat point ``(D,)`` of the latent sites ``params`` (unconstrained)."""
        return ravel_pytree({name: params[name] for name in self.template})[0]

    def log_f(self, beta: Array, z: Array) -> Array:
        """``log p(z) + beta log p(y | z)`` (unnormalized) at one flat unconstrained point."""
        tempered = _TemperLikelihood(handlers.seed(self.conditioned, 0), beta, self.observed)
        return -potential_energy(tempered, self.args, self.kwargs, self.unravel(z))

    def log_likelihood(self, z: Array) -> Array:
        """``log p(y | z)``: the observed sites' log probabilities at one flat point."""
        model = handlers.seed(self.conditioned, 0)
        params = constrain_fn(model, self.args, self.kwargs, self.unravel(z))
        log_probs, _ = compute_log_probs(model, self.args, self.kwargs, params)
        return sum((log_probs[name] for name in self.observed), start=jnp.zeros((), z.dtype))

    def constrained(self, z: Array) -> dict[str, Array]:
        """The latent sites on their supports at flat points ``z: (*batch, D)``."""
        fn = lambda v: constrain_fn(self.conditioned, self.args, self.kwargs, self.unravel(v))  # noqa: E731
        for _ in range(jnp.ndim(z) - 1):
            fn = jax.vmap(fn)
        return fn(z)

    def unconstrained(self, params: dict[str, Array]) -> Array:
        """Flat unconstrained points ``(N, D)`` of latent sites on their supports, each ``(N, ...)``."""
        fn = lambda p: self.ravel(unconstrain_fn(self.conditioned, self.args, self.kwargs, p))  # noqa: E731
        return jax.vmap(fn)({name: params[name] for name in self.latent})

    def prior_draws(self, key: PRNGKeyArray, num: int) -> Array:
        """``(num, D)`` exact draws of the prior (the model run forward), unconstrained."""

        def one(k):
            trace = handlers.trace(handlers.seed(self.conditioned, k)).get_trace(*self.args, **self.kwargs)
            return {name: trace[name]["value"] for name in self.latent}

        return self.unconstrained(jax.vmap(one)(jax.random.split(key, num)))


def likelihood_tempering(model: Callable, args: tuple, kwargs: dict, key: PRNGKeyArray, owner: str,
                         data: dict | None = None) -> LikelihoodTempering:
    """Check ``model`` (conditioned on ``data``, if given) and build its :class:`LikelihoodTempering`.

    Raises:
        ValueError: the model has no latent sites, no observed sites, a discrete latent site
            (no unconstrained space; sum it out in the model), a prior that is improper
            (``ImproperUniform``, masked) or scaled, an observed ``EnergyDistribution`` without
            ``log_z``, or observed data that are NaN, infinite or outside their support.
    """
    if not callable(model):
        raise TypeError(f"{owner}: model must be a NumPyro model (a callable), got {type(model).__name__}")
    data = {name: jnp.asarray(value) for name, value in (data or {}).items()}
    conditioned = handlers.condition(model, data=data) if data else model
    probe = _SiteProbe(handlers.seed(conditioned, key), owner)

    def shapes_of_latent_sites():  # run abstractly (jax.eval_shape): nothing is compiled or computed
        trace = handlers.trace(probe).get_trace(*args, **kwargs)
        _check_sites(probe.sites, owner)
        latent = {name: trace[name]["value"] for name, (obs, _) in probe.sites.items() if not obs}
        return unconstrain_fn(conditioned, args, kwargs, latent)

    shapes = jax.eval_shape(shapes_of_latent_sites)
    observed = tuple(name for name, (obs, _) in probe.sites.items() if obs)
    template = {name: jnp.zeros(shapes[name].shape, shapes[name].dtype) for name in sorted(shapes)}
    return LikelihoodTempering(model, tuple(args), dict(kwargs), observed, tuple(template), template, data)


class _SiteProbe(Messenger):
    """Records each sample site's (observed, discrete) flags in model order, and refuses a latent
    site with an improper prior before anything tries to sample it."""

    def __init__(self, fn: Callable, owner: str):
        self.sites: dict[str, tuple[bool, bool]] = {}
        self.owner = owner
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample":
            return
        fn, observed, name = msg["fn"], msg["is_observed"], msg["name"]
        if not observed and _is_improper(fn):
            raise ValueError(f"{self.owner}: the latent site {name!r} has an improper prior (ImproperUniform); the evidence "
                             "of a model with an improper prior is not defined. Give it a proper prior")
        if not observed and not self._numpyro_obs_mask_site(name):
            _check_unweighted(msg, self.owner)
        if observed:
            _check_observed(msg, self.owner)
        self.sites[name] = (bool(observed),
                                   bool(getattr(fn, "has_enumerate_support", False) or fn.support.is_discrete))


    def _numpyro_obs_mask_site(self, name: str) -> bool:
        """Whether ``name`` is the latent half NumPyro's ``sample(..., obs_mask=m)`` adds beside its
        observed ``<site>_observed`` (masked by ``~m``: the entries it leaves out are observed)."""
        return name.endswith("_unobserved") and self.sites.get(name[: -len("unobserved")] + "observed", (False,))[0]


def _concrete(value) -> np.ndarray | None:
    """``value`` as a NumPy array when it is known while tracing (data, constants); None when it
    depends on the traced quantities."""
    if value is None or any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value)):
        return None
    return np.asarray(value)


def _check_unweighted(msg: dict, owner: str) -> None:
    """A latent site's prior must count whole: masked (``numpyro.handlers.mask``, ``.mask(m)``) or
    scaled (``numpyro.handlers.scale``), its density no longer matches the prior draws the path
    starts from, nor integrates to one (where a mask is False the prior is flat: improper)."""
    if _find(msg["fn"], dist.MaskedDistribution) is not None:  # its mask may be traced: not read
        raise ValueError(f"{owner}: the latent site {msg['name']!r} is masked (numpyro.handlers.mask or "
                         ".mask(...)): where a mask is False its prior density is left out, a flat, improper "
                         "prior under which the evidence is not defined. Keep every latent site's prior whole "
                         "(mask only observed sites; drop a mask that is all True)")
    scale = _concrete(msg.get("scale"))
    if scale is not None and not np.all(scale == 1):
        raise ValueError(f"{owner}: the latent site {msg['name']!r} has its prior scaled (numpyro.handlers.scale or a "
                         "subsampled plate), so it is not a normalized prior and the evidence is not defined; "
                         "scale only observed sites, or none")


def _find(fn, kind: type):
    """The first distribution of type ``kind`` along ``fn``'s chain of ``base_dist``s, or None."""
    while fn is not None and not isinstance(fn, kind):
        fn = getattr(fn, "base_dist", None)
    return fn


def _check_observed(msg: dict, owner: str) -> None:
    """Refuse what makes the evidence NaN or off by a constant, before any work: NaN or infinite data,
    data outside the site's support, and an energy likelihood without its log Z."""
    fn, name = msg["fn"], msg["name"]
    energy = _find(fn, EnergyDistribution)
    if energy is not None and not energy.normalized:
        raise ValueError(f"{owner}: the observed site {name!r} is an EnergyDistribution without log_z, so its log "
                         "probability -E(y) is unnormalized and the evidence would be off by the energy's log Z; "
                         "pass EnergyDistribution(potential, log_z=ep.log_partition(potential)) (exact, small "
                         "models) or log_z=ep.ais(...) (an estimate), or use it for a latent site")
    shape, site_shape = tuple(jnp.shape(msg["value"])), tuple(fn.shape())
    try:
        jnp.broadcast_shapes(shape, site_shape)
    except ValueError:
        raise ValueError(f"{owner}: the observed site {name!r} holds data of shape {shape}, but its distribution, "
                         f"inside its plates, has shape {site_shape}; make the plate sizes match the data "
                         "(e.g. numpyro.plate(name, y.shape[0]))") from None
    value = _concrete(msg["value"])
    if value is None or _find(fn, dist.MaskedDistribution) is not None:  # masked-out entries (obs_mask) may hold anything
        return
    if np.issubdtype(value.dtype, np.inexact) and not np.all(np.isfinite(value)):
        raise ValueError(f"{owner}: the observed site {name!r} holds {int(np.sum(~np.isfinite(value)))} NaN or infinite "
                         "value(s); its likelihood, and the evidence, would be NaN. Remove them, or leave them out "
                         "with numpyro.sample(..., obs_mask=...)")
    inside = _concrete(_safe_support_check(fn, value))
    if inside is not None and not np.all(inside):
        raise ValueError(f"{owner}: the observed site {name!r} holds {int(np.sum(~inside))} value(s) outside its "
                         f"distribution's support ({type(_innermost(fn)).__name__}: {fn.support}): their likelihood "
                         "is 0, and the evidence log p(y) = -inf")


def _innermost(fn):
    """The distribution under NumPyro's wrappers (expanded by plates, masked, independent)."""
    while getattr(fn, "base_dist", None) is not None:
        fn = fn.base_dist
    return fn


def _safe_support_check(fn, value):
    """``fn.support(value)``, or None where the support cannot be checked (a factor's, an unusual
    constraint's)."""
    try:
        return fn.support(value)
    except Exception:  # noqa: BLE001 - a support that cannot check a value is no verdict
        return None


def _check_sites(sites: dict[str, tuple[bool, bool]], owner: str) -> None:
    observed = [name for name, (obs, _) in sites.items() if obs]
    latent = [name for name, (obs, _) in sites.items() if not obs]
    if not latent:
        raise ValueError(f"{owner}: the model has no latent sites, so there is nothing to integrate: its evidence is "
                         "its likelihood at the observed data (sum the observed sites' log probabilities)")
    if not observed:
        raise ValueError(f"{owner}: the model has no observed sites (pass the data as obs=..., or condition the model "
                         "with numpyro.handlers.condition); without data the evidence is 1")
    discrete = [name for name in latent if sites[name][1]]
    if discrete:
        raise ValueError(f"{owner}: the model has discrete latent site(s) {discrete}; likelihood tempering needs "
                         "continuous latent sites (sum the discrete ones out in the model, e.g. with "
                         "numpyro.contrib.funsor's enumeration)")


def _is_improper(fn: Any) -> bool:
    return _find(fn, dist.ImproperUniform) is not None


class TuningRecord(eqx.Module):
    """The move parameters a forward pass's tuning chains set at each temperature:
    ``log_step[k]`` and ``scale[k]`` (``(D,)``) for the move at ``schedule[k]``; index 0 is the
    prior. Arrays span the padded schedule (``(B + 1,)`` and ``(B + 1, D)``)."""

    log_step: Array
    scale: Array


def _scale(z: Array, log_weights: Array | None = None) -> Array:
    """Per-coordinate standard deviation of the tuning chains ``z: (M, D)``, kept positive and
    finite; with ``log_weights (M,)``, of the chains importance-weighted by them."""
    if log_weights is None:
        sd = jnp.std(z, axis=0)
    else:
        w = jax.nn.softmax(jnp.where(jnp.isfinite(log_weights), log_weights, -jnp.inf))[:, None]
        mean = jnp.sum(w * z, axis=0)
        sd = jnp.sqrt(jnp.sum(w * (z - mean) ** 2, axis=0))
    top = jnp.max(jnp.where(jnp.isfinite(sd), sd, 0.0))
    sd = jnp.where(jnp.isfinite(sd), sd, top)
    return jnp.maximum(sd, jnp.maximum(1e-6 * top, jnp.finfo(z.dtype).tiny))


def _move(tm: LikelihoodTempering, key, z, beta, log_step, scale, kernel: str, num_integration_steps: int):
    """One HMC or MALA move of every chain ``z: (N, D)`` leaving ``p_beta`` invariant, run in the
    coordinates ``u = z / scale`` (a diagonal preconditioner) with each chain's step size jittered
    (which breaks the periodic trajectories of a fixed leapfrog length); returns ``(z', acceptance
    (N,))``."""
    logdensity = lambda u: tm.log_f(beta, u * scale)  # noqa: E731
    step_size = jnp.exp(log_step)
    if kernel == "hmc":
        build = blackjax.hmc.build_kernel()
        inverse_mass = jnp.ones(z.shape[1], z.dtype)

        def one(k, u, eps):
            state, info = build(k, blackjax.hmc.init(u, logdensity), logdensity, eps, inverse_mass,
                                num_integration_steps)
            return state.position, info.acceptance_rate
    else:
        build = blackjax.mala.build_kernel()

        def one(k, u, eps):
            state, info = build(k, blackjax.mala.init(u, logdensity), logdensity, eps)
            return state.position, info.acceptance_rate

    key_jitter, key = jax.random.split(key)
    jitter = jax.random.uniform(key_jitter, (z.shape[0],), z.dtype, 1.0 - JITTER, 1.0 + JITTER)
    u, acceptance = jax.vmap(one)(jax.random.split(key, z.shape[0]), z / scale, step_size * jitter)
    return u * scale, jnp.nan_to_num(acceptance)


def initial_log_step(dim: int, kernel: str, num_integration_steps: int) -> float:
    """A step size suited to unit-scale coordinates in ``dim`` dimensions (its log)."""
    if kernel == "hmc":
        return math.log(1.5 * dim**-0.25 / num_integration_steps**0.25)
    return math.log(dim ** (-1.0 / 3.0))


@filter_jit
def prior_draws(tm: LikelihoodTempering, key: PRNGKeyArray, num: int) -> Array:
    """:meth:`LikelihoodTempering.prior_draws` compiled on its own (a prior's sampler, e.g. the
    gamma rejection sampler behind Beta, compiles slowly: once per size, not inside every pass)."""
    return tm.prior_draws(key, num)


@filter_jit
def forward(tm: LikelihoodTempering, key: PRNGKeyArray, z: Array, zt: Array, betas: Array, num_steps,
            kernel: str, num_integration_steps: int, progress: bool):
    """Anneal the estimating chains ``z: (N, D)`` and the tuning chains ``zt: (M, D)``, exact
    prior draws, along ``betas[:num_steps + 1]`` (``betas`` padded to ``(B + 1,)``).

    Returns ``(log_w (N,), log_w_var (B,), increment_var (B,), mean tuning acceptance (B,),
    TuningRecord)``; entries past ``num_steps`` are zero. ``increment_var`` is each step's
    log-weight increment variance with the chains weighted by their importance weights (an
    estimate of its variance under the tempered posterior they stand for).
    """
    num_chains = z.shape[0]
    dtype = z.dtype
    bucket = betas.shape[0] - 1
    target = KERNELS[kernel]
    log_step0 = jnp.asarray(initial_log_step(z.shape[1], kernel, num_integration_steps), dtype)
    record = TuningRecord(jnp.zeros(bucket + 1, dtype).at[0].set(log_step0),
                          jnp.zeros((bucket + 1, z.shape[1]), dtype).at[0].set(_scale(zt)))
    log_lik = jax.vmap(tm.log_likelihood)

    def body(k, carry):
        z, zt, log_w, log_step, record, var, inc_var, acc_hist = carry
        key_move = jax.random.fold_in(key, k)
        step = betas[k + 1] - betas[k]
        increment = step * log_lik(z)
        # the increment's variance under p_{beta_k}: the chains weighted by their normalized weights
        # (a chain whose weight is already ~0, e.g. started at a scale near 0, must not dominate it;
        # the adaptive schedule is placed from these)
        w = jax.nn.softmax(log_w)
        inc_mean = jnp.sum(w * increment)
        inc_var_k = jnp.sum(w * (increment - inc_mean) ** 2)
        log_w = log_w + increment
        # the tuning chains follow p_{beta_k}; weighted by their own increments they describe
        # p_{beta_{k+1}}, the density this move targets (the path can narrow fast near beta = 0)
        scale = _scale(zt, step * log_lik(zt))
        # one move of both sets (one copy of the kernel in the program); each chain its own key
        moved, acceptance = _move(tm, key_move, jnp.concatenate([z, zt]), betas[k + 1], log_step, scale, kernel,
                                  num_integration_steps)
        z, zt, acceptance = moved[:num_chains], moved[num_chains:], acceptance[num_chains:]
        record = TuningRecord(record.log_step.at[k + 1].set(log_step), record.scale.at[k + 1].set(scale))
        mean_acc = jnp.mean(acceptance)
        log_step = jnp.minimum(log_step + ADAPT_RATE * (mean_acc - target), MAX_LOG_STEP)
        return (z, zt, log_w, log_step, record, var.at[k].set(jnp.var(log_w)), inc_var.at[k].set(inc_var_k),
                acc_hist.at[k].set(mean_acc))

    zeros = jnp.zeros(bucket, dtype)
    init = (z, zt, jnp.zeros(num_chains, dtype), log_step0, record, zeros, zeros, zeros)
    _, _, log_w, _, record, var, inc_var, acc_hist = progress_fori_loop(num_steps, body, init, enabled=progress,
                                                                        desc="evidence (forward AIS)")
    return log_w, var, inc_var, acc_hist, record


@filter_jit
def reverse(tm: LikelihoodTempering, key: PRNGKeyArray, z: Array, betas: Array, record: TuningRecord, num_steps,
            kernel: str, num_integration_steps: int, progress: bool):
    """Anneal chains ``z: (N, D)`` (posterior draws) back along ``betas[:num_steps + 1]``, a
    decreasing schedule from 1 to 0 padded to ``(B + 1,)``, moving at ``betas[k + 1]`` with the
    parameters ``record`` holds at the same index (the forward record reversed).

    Returns ``(log_w (N,), log_w_var (B,))``: ``log_w = sum_k (beta_{k+1} - beta_k) log p(y | z_k)``.
    """
    log_lik = jax.vmap(tm.log_likelihood)

    def body(k, carry):
        z, log_w, var = carry
        log_w = log_w + (betas[k + 1] - betas[k]) * log_lik(z)
        z, _ = _move(tm, jax.random.fold_in(key, k), z, betas[k + 1], record.log_step[k + 1], record.scale[k + 1],
                     kernel, num_integration_steps)
        return z, log_w, var.at[k].set(jnp.var(log_w))

    init = (z, jnp.zeros(z.shape[0], z.dtype), jnp.zeros(betas.shape[0] - 1, z.dtype))
    _, log_w, var = progress_fori_loop(num_steps, body, init, enabled=progress, desc="evidence (reverse AIS)")
    return log_w, var
