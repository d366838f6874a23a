"""The evidence ``log p(y)`` of a NumPyro model by annealed importance sampling, and its other side.

    import ebm_ppl as ep

    est = ep.numpyro.log_evidence(key, model, x, y)        # forward AIS: a lower bound in expectation
    rev = ep.numpyro.log_evidence(key, model, x, y, reverse=True, posterior_samples=mcmc.get_samples())
    check = ep.numpyro.bdmc(key, model, x, observed="y")   # the sandwich on data simulated from the model

The path tempers the likelihood from the prior to the posterior on NumPyro's unconstrained space
(:mod:`ebm_ppl.numpyro.likelihood_tempering`). Forward AIS starts from exact prior draws, so
``E[w] = p(y)`` and ``log mean w`` is below log p(y) in expectation (Jensen). Reverse AIS started
from exact posterior draws has ``E[w] = 1 / p(y)``, so ``-log mean w`` is above it in expectation:
bidirectional Monte Carlo (Grosse, Ghahramani & Adams 2015). Exact posterior draws exist for data
simulated from the model, which is what :func:`bdmc` does: the gap it reports is how far a schedule
of that length is from the truth on data like the user's. From MCMC draws the reverse estimate is
only approximately an upper bound, and says so.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, PRNGKeyArray
from numpyro import handlers

from ebm_ppl import checks
from ebm_ppl.numpyro.likelihood_tempering import (KERNELS, LikelihoodTempering, TuningRecord, forward, likelihood_tempering,
                                                    prior_draws, reverse)
from ebm_ppl.partition.estimate import AISEstimate, summarize_log_weights, warn_if_degenerate, without_estimate
from ebm_ppl.partition.schedule import (ADAPTIVE, PILOT_TEMPERATURES, equal_variance_schedule, padded_schedule,
                                        power_schedule, validate_schedule)
from ebm_ppl.random import rekey

__all__ = ["log_evidence", "bdmc", "BDMC"]

MIN_CHAINS = 2
MIN_TUNING_CHAINS = 4
MIN_ACCEPTANCE = 0.05  # below this mean acceptance at a temperature, the chains are stuck there


def log_evidence(
    key: PRNGKeyArray,
    model: Callable,
    *args: Any,
    num_chains: int = 100,
    num_temperatures: int = 1000,
    schedule: ArrayLike | str = ADAPTIVE,
    kernel: str = "hmc",
    num_integration_steps: int = 5,
    num_tuning_chains: int = 32,
    reverse: bool = False,
    posterior_samples: Mapping[str, ArrayLike] | None = None,
    exact: bool = False,
    progress: bool = False,
    max_memory: int | None = None,
    **kwargs: Any,
) -> AISEstimate:
    """AIS estimate of the log evidence ``log p(y)`` of ``model(*args, **kwargs)``.

    Tempers the likelihood, ``p_beta(z) ∝ p(z) p(y | z)^beta``, from exact prior draws
    (beta = 0) to the posterior (beta = 1) on NumPyro's unconstrained space, moving every chain
    with one HMC (or MALA) step per temperature whose step size and per-coordinate scale are
    adapted from ``num_tuning_chains`` separate chains (so the bound direction stays exact).

    Args:
        key: PRNG key.
        model: a NumPyro model with continuous latent sites and observed sites (``obs=`` or
            ``numpyro.handlers.condition``); ``numpyro.factor`` terms count as likelihood.
        args: the model's positional arguments.
        num_chains: annealing runs whose weights form the estimate (>= 2).
        num_temperatures: K, the steps from prior to posterior; ignored for an array ``schedule``.
        schedule: ``"adaptive"`` (default): K + 1 temperatures of equal log-weight variance per
            step, placed from a pilot run on :func:`~ebm_ppl.partition.power_schedule` (128
            temperatures at most, the tuning chains); or the inverse temperatures ``(K + 1,)``,
            0 to 1, strictly increasing.
        kernel: ``"hmc"`` (default) or ``"mala"``.
        num_integration_steps: leapfrog steps per HMC move.
        num_tuning_chains: chains run beside the estimating ones only to adapt the moves (>= 4).
        reverse: anneal from posterior draws back to the prior (the upper side of the bound).
        posterior_samples: for ``reverse``: the latent sites' draws on their supports, each
            ``(S, ...)`` (``MCMC.get_samples()``); ``num_chains`` of them are used, evenly
            spaced (cycled when S is smaller). A forward pass of the tuning chains sets the moves.
        exact: whether ``posterior_samples`` are exact posterior draws; only then is the reverse
            estimate an upper bound in expectation (``bound == "upper"``, else
            ``"approximate upper"``).
        progress: show a progress bar over temperatures.
        max_memory: the most bytes the run's arrays may take (None:
            :data:`ebm_ppl.checks.MEMORY_LIMIT`).
        kwargs: the model's keyword arguments.

    Returns:
        :class:`~ebm_ppl.partition.AISEstimate` with ``log_z`` the log evidence (``base_log_z``
        is 0: the prior is normalized), ``bound`` ``"lower"`` forward; ``wall_time`` includes
        the pilot and the tuning chains.
    """
    reverse_flag = checks.flag(reverse, "reverse")
    owner = "log_evidence"
    if not reverse_flag and posterior_samples is not None:
        raise ValueError(f"{owner}: posterior_samples are the starting points of a reverse run; pass reverse=True "
                         "(or drop them for the forward estimate)")
    if reverse_flag and posterior_samples is None:
        raise ValueError(f"{owner}: reverse=True anneals from posterior draws: pass posterior_samples (e.g. "
                         "mcmc.get_samples()), with exact=True only if they are exact draws")
    exact = checks.flag(exact, "exact")
    if exact and not reverse_flag:
        raise ValueError(f"{owner}: exact=True says the posterior_samples of a reverse run are exact draws; a forward "
                         "run starts from exact prior draws by itself (drop exact, or pass reverse=True)")
    start = time.perf_counter()
    run = _Run.setup(owner, key, model, args, kwargs, num_chains, num_temperatures, schedule, kernel,
                     num_integration_steps, num_tuning_chains, progress, max_memory)
    if not reverse_flag:
        return run.forward(start)[0]
    z = run.start_points(posterior_samples, owner)
    # the reverse moves replay a forward pass's tuning; its estimating chains come along because
    # they share the pilot's compiled program (cheaper than compiling a tuning-only one)
    _, record = run.forward_pass()
    return run.reverse(z, record, exact, start)


@dataclasses.dataclass(frozen=True)
class BDMC:
    """Bidirectional Monte Carlo on data simulated from the model (:func:`bdmc`).

    Attributes:
        forward: forward AIS, a stochastic lower bound of log p(y_sim).
        reverse: reverse AIS from the exact posterior draw, a stochastic upper bound.
        data: the simulated observed sites.
        truth: the latent sites the data were simulated from (an exact posterior draw).
    """

    forward: AISEstimate
    reverse: AISEstimate
    data: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]

    @property
    def gap(self) -> float:
        """``reverse.log_z - forward.log_z``: how far this schedule is from exact, in nats."""
        return self.reverse.log_z - self.forward.log_z

    @property
    def gap_stderr(self) -> float:
        """Standard error of :attr:`gap` (the two runs are independent)."""
        return math.hypot(self.forward.stderr, self.reverse.stderr)

    def __str__(self) -> str:
        return (f"log p(y_sim) in [{self.forward.log_z:.4f} ± {self.forward.stderr:.4f}, "
                f"{self.reverse.log_z:.4f} ± {self.reverse.stderr:.4f}] (gap {self.gap:.4f} ± {self.gap_stderr:.4f} nats; "
                f"{self.forward.num_chains} chains, {self.forward.num_temperatures} temperatures, "
                f"{self.forward.wall_time + self.reverse.wall_time:.2f} s)")


def bdmc(
    key: PRNGKeyArray,
    model: Callable,
    *args: Any,
    observed: str | Sequence[str],
    num_chains: int = 100,
    num_temperatures: int = 1000,
    schedule: ArrayLike | str = ADAPTIVE,
    kernel: str = "hmc",
    num_integration_steps: int = 5,
    num_tuning_chains: int = 32,
    progress: bool = False,
    max_memory: int | None = None,
    **kwargs: Any,
) -> BDMC:
    """Bidirectional Monte Carlo (Grosse, Ghahramani & Adams 2015): simulate ``(z, y)`` from the
    model, then bracket ``log p(y)`` between forward AIS (from the prior) and reverse AIS (from
    the exact posterior draw z), both with the same schedule and moves.

    The gap is the error a schedule of this length makes on data like these; lengthen the
    schedule (or add chains) until it is small enough, then use that length on the real data.

    Args:
        key: PRNG key.
        model: a NumPyro model that simulates its data when they are not given: call it with the
            arguments that leave ``observed`` unobserved (``y=None``, as for
            ``numpyro.infer.Predictive``).
        args: the model's positional arguments.
        observed: the site(s) to simulate and then condition on.
        num_chains: as in :func:`log_evidence`; every reverse chain starts from the one exact draw.
        num_temperatures: as in :func:`log_evidence`.
        schedule: as in :func:`log_evidence`.
        kernel: as in :func:`log_evidence`.
        num_integration_steps: as in :func:`log_evidence`.
        num_tuning_chains: as in :func:`log_evidence`.
        progress: as in :func:`log_evidence`.
        max_memory: as in :func:`log_evidence`.
        kwargs: the model's keyword arguments.

    Returns:
        :class:`BDMC` with both estimates, the simulated data and the latent values behind them.
    """
    owner = "bdmc"
    names = (observed,) if isinstance(observed, str) else tuple(observed)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{owner}: observed must name the site(s) to simulate, e.g. observed='y', got {observed!r}")
    start = time.perf_counter()
    key = rekey(key, None)
    key_sim, key_run = jax.random.split(key)
    if not callable(model):
        raise TypeError(f"{owner}: model must be a NumPyro model (a callable), got {type(model).__name__}")
    trace = handlers.trace(handlers.seed(model, key_sim)).get_trace(*args, **kwargs)
    sample = {n: s for n, s in trace.items() if s["type"] == "sample"}
    missing = [n for n in names if n not in sample]
    given = [n for n in names if n in sample and sample[n]["is_observed"]]
    if missing:
        raise ValueError(f"{owner}: the model has no sample site(s) {missing} (its sample sites: {sorted(sample)})")
    if given:
        raise ValueError(f"{owner}: the site(s) {given} are already observed; call the model with arguments that "
                         "leave them unobserved (e.g. y=None) so bdmc can simulate them")
    data = {n: sample[n]["value"] for n in names}
    # conditioned through a traced field, not a new model object: a second call compiles nothing
    run = _Run.setup(owner, key_run, model, args, kwargs, num_chains, num_temperatures, schedule, kernel,
                     num_integration_steps, num_tuning_chains, progress, max_memory, data=data)
    truth = {n: sample[n]["value"] for n in run.tm.latent}
    fwd, record = run.forward(start)
    t1 = time.perf_counter()
    z = jnp.broadcast_to(run.tm.unconstrained({n: v[None] for n, v in truth.items()}), (run.num_chains, run.tm.dim))
    rev = run.reverse(z, record, True, t1)
    return BDMC(fwd, rev, {n: np.asarray(v) for n, v in data.items()}, {n: np.asarray(v) for n, v in truth.items()})


@dataclasses.dataclass
class _Run:
    """The checked settings of one evidence computation and the passes that share them."""

    owner: str
    tm: LikelihoodTempering
    key: Any
    num_chains: int
    num_tuning: int
    betas: np.ndarray | None  # None: placed by the pilot on the first pass
    num_temperatures: int
    kernel: str
    num_integration_steps: int
    progress: bool

    @classmethod
    def setup(cls, owner, key, model, args, kwargs, num_chains, num_temperatures, schedule, kernel,
              num_integration_steps, num_tuning_chains, progress, max_memory, data=None) -> "_Run":
        num_chains = checks.int_at_least(num_chains, "num_chains", MIN_CHAINS)
        num_tuning = checks.int_at_least(num_tuning_chains, "num_tuning_chains", MIN_TUNING_CHAINS)
        if not isinstance(kernel, str) or kernel not in KERNELS:
            raise ValueError(f"{owner}: kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
        num_integration_steps = checks.positive_int(num_integration_steps, "num_integration_steps")
        progress = checks.flag(progress, "progress")
        if isinstance(schedule, str):
            if schedule != ADAPTIVE:
                raise ValueError(f"{owner}: schedule must be {ADAPTIVE!r} or an array of inverse temperatures from 0 "
                                 f"to 1, got {schedule!r}")
            num_temperatures = checks.positive_int(num_temperatures, "num_temperatures")
            betas = None
        else:
            betas = validate_schedule(schedule)
            num_temperatures = len(betas) - 1
        key = rekey(key, None)
        key_init, key = jax.random.split(key)
        tm = likelihood_tempering(model, args, kwargs, key_init, owner, data)
        bucket = padded_schedule(np.zeros(num_temperatures + 1))[0].shape[0]
        itemsize = jnp.dtype(jnp.result_type(float)).itemsize
        checks.check_memory((bucket * (tm.dim + 4) + (2 * num_chains + 2 * num_tuning) * (tm.dim + 2)) * itemsize,
                            f"{num_temperatures} temperatures x {tm.dim} scales, {num_chains + num_tuning} chains x "
                            f"{tm.dim} values", max_memory, owner=owner, option=checks.MAX_MEMORY_OPTION)
        return cls(owner, tm, key, num_chains, num_tuning, betas, num_temperatures, kernel, num_integration_steps,
                   progress)

    def _forward(self, key, betas: np.ndarray, progress: bool):
        """A forward pass along ``betas``, padded to the main schedule's bucket (the pilot and
        the main pass share one compiled program: same chains, same array shapes)."""
        padded, num_steps = padded_schedule(betas)
        bucket = padded_schedule(np.zeros(self.num_temperatures + 1))[0].shape[0]
        padded = np.concatenate([padded, np.full(bucket - padded.shape[0], padded[-1])])
        num_chains = self.num_chains
        dtype = jnp.result_type(float)
        key_z, key = jax.random.split(key)
        z = prior_draws(self.tm, key_z, num_chains + self.num_tuning).astype(dtype)  # one program for both sets
        return forward(self.tm, key, z[:num_chains], z[num_chains:], jnp.asarray(padded, dtype),
                       jnp.asarray(num_steps, jnp.int32), self.kernel, self.num_integration_steps, progress)

    def schedule(self) -> np.ndarray:
        """The temperatures: given, or placed at equal log-weight variance by a pilot run."""
        if self.betas is None:
            pilot = power_schedule(min(PILOT_TEMPERATURES, self.num_temperatures))
            _, _, increment_var, _, _ = self._forward(jax.random.fold_in(self.key, 1), pilot, False)
            self.betas = equal_variance_schedule(pilot, np.asarray(increment_var)[: len(pilot) - 1],
                                                 self.num_temperatures)
        return self.betas

    def forward_pass(self):
        """Forward AIS: ``((log_w, log_w_var), record)``; warns when the tuning chains' acceptance
        collapses somewhere on the path."""
        betas = self.schedule()
        log_w, var, _, acceptance, record = self._forward(jax.random.fold_in(self.key, 2), betas, self.progress)
        k = len(betas) - 1
        # acceptance of the tuning chains, averaged over windows of temperatures (a single move's
        # acceptance of 32 chains is noisy)
        window = max(3, k // 50)
        smooth = np.convolve(np.asarray(acceptance)[:k], np.ones(window) / window, mode="valid")
        # with no estimate at all, the NaN warning says what to check instead
        if not without_estimate(log_w) and smooth.size and np.min(smooth) < MIN_ACCEPTANCE:
            i = int(np.argmin(smooth)) + window // 2
            warnings.warn(f"{self.owner}: the moves' acceptance fell to {np.min(smooth):.3f} near beta = {betas[i + 1]:.3g} "
                          "(the step size could not follow the path there), so the chains barely moved and the "
                          "estimate is unreliable; try kernel='hmc' with more num_integration_steps, more "
                          "temperatures, or a reparametrized model", RuntimeWarning, skip_file_prefixes=(checks.PACKAGE_DIR,))
        return (np.asarray(log_w), np.asarray(var)[:k]), record

    def forward(self, start: float) -> tuple[AISEstimate, TuningRecord]:
        """The forward estimate, and the move parameters its tuning chains set (for a reverse run)."""
        (log_w, var), record = self.forward_pass()
        return self._estimate(log_w, var, "lower", start, reverse=False), record

    def reverse(self, z, record: TuningRecord, exact: bool, start: float) -> AISEstimate:
        betas = self.schedule()
        k = len(betas) - 1
        padded, num_steps = padded_schedule(betas[::-1])
        # the forward record at index i set the move at betas[i]; reversed, index j is betas[k - j]
        rec = TuningRecord(_pad_reversed(record.log_step, k), _pad_reversed(record.scale, k))
        log_w, var = reverse(self.tm, jax.random.fold_in(self.key, 3), z, jnp.asarray(padded, z.dtype), rec,
                             jnp.asarray(num_steps, jnp.int32), self.kernel, self.num_integration_steps, self.progress)
        return self._estimate(np.asarray(log_w), np.asarray(var)[:k], "upper" if exact else "approximate upper",
                              start, reverse=True)

    def start_points(self, samples: Mapping[str, ArrayLike], owner: str):
        """``(num_chains, D)`` unconstrained starting points from posterior draws on the supports."""
        if not isinstance(samples, Mapping):
            raise TypeError(f"{owner}: posterior_samples must be a dict of the latent sites' draws "
                            f"(MCMC.get_samples()), got {type(samples).__name__}")
        missing = [n for n in self.tm.latent if n not in samples]
        if missing:
            raise ValueError(f"{owner}: posterior_samples lack the latent site(s) {missing} (they hold "
                             f"{sorted(samples)})")
        values = {n: jnp.asarray(samples[n]) for n in self.tm.latent}
        sizes = {n: v.shape[0] if v.ndim else 0 for n, v in values.items()}
        num = min(sizes.values())
        if num == 0 or len(set(sizes.values())) != 1:
            raise ValueError(f"{owner}: posterior_samples must hold the same number (>= 1) of draws of every "
                             f"latent site along axis 0, got {sizes}")
        shapes = {n: v.shape for n, v in self.tm.constrained(self.tm.ravel(self.tm.template)).items()}
        for n, v in values.items():
            if tuple(v.shape[1:]) != tuple(shapes[n]):
                raise ValueError(f"{owner}: posterior_samples[{n!r}] has draws of shape {tuple(v.shape[1:])}, the "
                                 f"model's site has shape {tuple(shapes[n])}")
        index = (np.linspace(0, num - 1, self.num_chains).round().astype(int) if num >= self.num_chains
                 else np.arange(self.num_chains) % num)
        z = self.tm.unconstrained({n: v[index] for n, v in values.items()}).astype(jnp.result_type(float))
        bad = ~np.all(np.isfinite(np.asarray(z)), axis=1)
        if bad.any():
            raise ValueError(f"{owner}: {int(bad.sum())} of the chosen posterior draws are outside their sites' "
                             "supports (non-finite on the unconstrained space)")
        return z

    def _estimate(self, log_w, var, bound: str, start: float, reverse: bool) -> AISEstimate:
        log_mean, stderr, ess = summarize_log_weights(log_w)
        warn_if_degenerate(ess, len(log_w), self.owner, log_w,
                           check="Check the model's data (a NaN in an observed value makes its likelihood NaN), its "
                                 "priors' parameters, and the kernel's step size.")
        return AISEstimate(log_z=-log_mean if reverse else log_mean, stderr=stderr, log_weights=log_w, ess=ess,
                           log_weight_var=var, bound=bound, schedule=self.betas, base_log_z=0.0,
                           wall_time=time.perf_counter() - start)


def _pad_reversed(values, k: int):
    """``values[:k + 1]`` reversed, padded (with its last entry) back to ``values``' length."""
    head = values[: k + 1][::-1]
    pad = jnp.broadcast_to(head[-1:], (values.shape[0] - (k + 1), *values.shape[1:]))
    return jnp.concatenate([head, pad])

