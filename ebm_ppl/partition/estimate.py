"""The result of annealed importance sampling: log Z with an honest error bar and health checks."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from ebm_ppl import checks

__all__ = ["AISEstimate", "summarize_log_weights"]



@dataclasses.dataclass(frozen=True)
class AISEstimate:
    """An AIS estimate of log Z.

    Attributes:
        log_z: the estimate, ``log Z_base + log mean(w)`` (forward) or
            ``log Z_base - log mean(w)`` (reverse).
        stderr: delta-method standard error of ``log_z``: ``sd(w) / (sqrt(N) mean(w))``.
        log_weights: per-chain log importance weights, shape ``(num_chains,)``.
        ess: the weights' effective sample size ``(sum w)^2 / sum w^2``, in [1, num_chains].
        log_weight_var: variance over chains of the accumulated log-weights after each
            temperature, shape ``(num_temperatures,)``; where it grows fastest the schedule is
            too coarse. Chains of weight 0 (at a state a hard constraint forbids) are left out.
        bound: ``"lower"`` (forward AIS: E[log Z_hat] <= log Z by Jensen), ``"upper"``
            (reverse AIS from exact target samples) or ``"approximate upper"`` (reverse AIS from
            data or MCMC draws: an upper bound only as far as they follow the target).
        schedule: the inverse temperatures used, shape ``(num_temperatures + 1,)``.
        base_log_z: exact log Z of the base distribution.
        wall_time: seconds, compilation included.
        start_log_likelihood: reverse runs only, ``(num_chains,)``: for each starting point x_i
            the RAISE estimate (Burda, Grosse & Salakhutdinov 2015) ``-E(x_i) - log Z_base +
            log w_i`` of log q(x_i), where q is the annealed model (the law of the forward chain
            after its transitions at beta_1 .. beta_{K-1}). Its exponential is unbiased for
            q(x_i), so its mean over held-out data is a stochastic lower bound of their mean
            log-likelihood under q (conservative), and q approaches the model as the schedule
            grows; unlike ``-E(x) - log_z`` it needs no exact samples.
    """

    log_z: float
    stderr: float
    log_weights: np.ndarray
    ess: float
    log_weight_var: np.ndarray
    bound: str
    schedule: np.ndarray
    base_log_z: float
    wall_time: float
    start_log_likelihood: np.ndarray | None = None

    @property
    def num_chains(self) -> int:
        return int(self.log_weights.shape[0])

    @property
    def num_temperatures(self) -> int:
        return int(self.schedule.shape[0] - 1)

    def __str__(self) -> str:
        return (
            f"log Z = {self.log_z:.4f} ± {self.stderr:.4f} ({self.bound} bound in expectation; "
            f"{self.num_chains} chains, {self.num_temperatures} temperatures, weight ESS "
            f"{self.ess:.1f}, {self.wall_time:.2f} s)"
        )


def summarize_log_weights(log_weights) -> tuple[float, float, float]:
    """``(log mean w, delta-method s.e. of log mean w, ESS)`` computed stably in log space.

    A NaN or +inf log-weight, or none above -inf, makes all three NaN (there is no estimate):
    :func:`warn_if_degenerate` says which chains."""
    lw = np.asarray(log_weights, np.float64)  # host float64: a few hundred numbers, no dispatches
    n = lw.shape[0]
    if n == 0 or np.any(np.isnan(lw) | (lw == np.inf)) or not np.any(np.isfinite(lw)):
        return math.nan, math.nan, math.nan
    top = np.max(lw)
    w = np.exp(lw - top)  # relative weights in (0, 1]
    log_mean = top + math.log(np.mean(w))
    stderr = np.std(w) / (np.mean(w) * math.sqrt(n))
    ess = np.sum(w) ** 2 / np.sum(w**2)
    return float(log_mean), float(stderr), float(ess)


#: What a NaN estimate asks the user to check, by default (an energy's AIS).
CHECK_ENERGY = ("Check the model's parameters (ebm_ppl.save refuses non-finite ones), the base model, and the "
                "kernel's step size.")


def without_estimate(log_weights) -> bool:
    """Whether ``log_weights`` give no estimate at all (it is NaN): a NaN or +inf weight, or every
    weight -inf (-inf ones alone are chains of weight 0, which a hard constraint can make)."""
    lw = np.asarray(log_weights, np.float64)
    return bool(np.isnan(lw).any() or (lw == np.inf).any() or (lw.size and (lw == -np.inf).all()))


def warn_if_degenerate(ess: float, num_chains: int, what: str, log_weights=None, check: str = CHECK_ENERGY) -> None:
    """Warn when the weight ESS falls below 10% of the chains (the error bar is not to be
    trusted), and, saying how many chains, when ``log_weights`` hold NaN or infinite values (then
    there is no estimate at all: it is NaN; ``check`` says what to look at)."""
    if log_weights is not None:
        lw = np.asarray(log_weights, np.float64)
        nan, pos_inf, neg_inf = int(np.sum(np.isnan(lw))), int(np.sum(lw == np.inf)), int(np.sum(lw == -np.inf))
        if without_estimate(lw):
            parts = [f"{k} {kind}" for k, kind in ((nan, "NaN"), (pos_inf, "+inf"), (neg_inf, "-inf")) if k]
            warnings.warn(
                f"{what}: the log-weights of {num_chains} chains include {', '.join(parts)}, so the estimate "
                f"is NaN: the energy or the annealing moves produced non-finite values. {check}",
                RuntimeWarning,
                skip_file_prefixes=(checks.PACKAGE_DIR,),
            )
            return
    if not ess >= 0.1 * num_chains:  # also when ess is NaN
        warnings.warn(
            f"{what}: the importance weights are degenerate (ESS {ess:.1f} of {num_chains} chains); "
            "the estimate and its error bar are unreliable. Use more temperatures (a longer "
            "schedule), more chains, or a base model closer to the target.",
            RuntimeWarning,
            skip_file_prefixes=(checks.PACKAGE_DIR,),
        )
