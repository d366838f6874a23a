"""Bayes factors and posterior model probabilities from log-evidence estimates, with error bars.

    cmp = ep.numpyro.compare({"linear": ep.numpyro.log_evidence(k1, linear, x, y),
                              "quadratic": ep.numpyro.log_evidence(k2, quadratic, x, y)})
    print(cmp)                          # the table
    cmp.log_bayes_factor("quadratic", "linear")   # (log BF, its standard error)

The estimates are independent runs, so the standard error of a difference of log evidences is the
root sum of their squared standard errors; the probabilities' standard errors follow by the delta
method. Both are Monte Carlo errors of the estimates, not uncertainty about the models.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Mapping

import numpy as np

from ebm_ppl import checks
from ebm_ppl.partition.estimate import AISEstimate

__all__ = ["Comparison", "compare"]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Log evidences of several models side by side (:func:`compare`).

    Attributes:
        names: the models, best (highest log evidence) first.
        estimates: their estimates, in the same order.
        log_prior: log prior model probabilities, ``(M,)``, normalized.
    """

    names: tuple[str, ...]
    estimates: tuple[AISEstimate, ...]
    log_prior: np.ndarray

    @property
    def log_evidence(self) -> np.ndarray:
        """``(M,)`` log evidences."""
        return np.array([e.log_z for e in self.estimates])

    @property
    def stderr(self) -> np.ndarray:
        """``(M,)`` their standard errors."""
        return np.array([e.stderr for e in self.estimates])

    def log_bayes_factor(self, a: str, b: str) -> tuple[float, float]:
        """``(log p(y | a) - log p(y | b), its standard error)``."""
        i, j = self._index(a), self._index(b)
        se = 0.0 if i == j else math.hypot(self.stderr[i], self.stderr[j])
        return float(self.log_evidence[i] - self.log_evidence[j]), se

    @property
    def probabilities(self) -> np.ndarray:
        """``(M,)`` posterior model probabilities ``p(m | y) ∝ p(m) p(y | m)``."""
        logits = self.log_evidence + self.log_prior
        p = np.exp(logits - logits.max())
        return p / p.sum()

    @property
    def probability_stderr(self) -> np.ndarray:
        """``(M,)`` delta-method standard errors of :attr:`probabilities` (from the log
        evidences' standard errors; ``dp_i / dl_j = p_i (delta_ij - p_j)``)."""
        p = self.probabilities
        jac = np.diag(p) - np.outer(p, p)
        return np.sqrt((jac**2) @ (self.stderr**2))

    def _index(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"no model named {name!r}; the models are {list(self.names)}")
        return self.names.index(name)

    def __str__(self) -> str:
        best = self.names[0]
        width = max(8, *(len(n) for n in self.names))
        lines = [f"{'model':<{width}}  {'log p(y)':>10} {'± s.e.':>8}  {'bound':<17} "
                 f"{'log BF vs ' + best:>{max(18, len(best) + 10)}} {'± s.e.':>8}  {'P(model | y)':>12} {'± s.e.':>7}"]
        p, p_se = self.probabilities, self.probability_stderr
        for i, (name, est) in enumerate(zip(self.names, self.estimates)):
            bf, bf_se = self.log_bayes_factor(name, best)
            lines.append(f"{name:<{width}}  {est.log_z:>10.4f} {est.stderr:>8.4f}  {est.bound:<17} "
                         f"{bf:>{max(18, len(best) + 10)}.4f} {bf_se:>8.4f}  {p[i]:>12.4f} {p_se[i]:>7.4f}")
        return "\n".join(lines)


def compare(estimates: Mapping[str, AISEstimate], prior: Mapping[str, float] | None = None) -> Comparison:
    """Compare models by their log-evidence estimates.

    Args:
        estimates: model name -> :class:`~ebm_ppl.partition.AISEstimate` of its log evidence
            (at least two).
        prior: model name -> prior probability (positive; normalized here); default equal.

    Returns:
        :class:`Comparison`, best model first; ``print`` it for the table.

    Warns when the estimates are not all of the same kind (comparing a lower bound with an upper
    bound biases the Bayes factor by up to their gaps) or a weight ESS is below 10% of its chains.
    """
    if not isinstance(estimates, Mapping) or len(estimates) < 2:
        raise ValueError("compare: estimates must be a dict of at least two model names -> AISEstimate, got "
                         f"{type(estimates).__name__}" + (f" of {len(estimates)}" if isinstance(estimates, Mapping) else ""))
    for name, est in estimates.items():
        if not isinstance(name, str):
            raise TypeError(f"compare: model names must be strings, got {name!r}")
        if not isinstance(est, AISEstimate):
            raise TypeError(f"compare: estimates[{name!r}] must be an AISEstimate (from ep.numpyro.log_evidence or "
                            f"ep.ais), got {type(est).__name__}")
        if not (math.isfinite(est.log_z) and math.isfinite(est.stderr)):
            raise ValueError(f"compare: the estimate of {name!r} is not finite (log Z {est.log_z}, s.e. {est.stderr}); "
                             "rerun it (see its warnings)")
    names = list(estimates)
    if prior is None:
        log_prior = np.full(len(names), -math.log(len(names)))
    else:
        if not isinstance(prior, Mapping) or set(prior) != set(names):
            raise ValueError(f"compare: prior must give a probability for each model {names}, got "
                             f"{list(prior) if isinstance(prior, Mapping) else type(prior).__name__}")
        values = np.array([float(prior[n]) for n in names])
        if not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError(f"compare: prior probabilities must be positive and finite, got {dict(prior)}")
        log_prior = np.log(values / values.sum())
    bounds = {est.bound for est in estimates.values()}
    if len(bounds) > 1:
        warnings.warn(f"compare: the estimates are of different kinds ({sorted(bounds)}); a Bayes factor between a "
                      "lower and an upper bound is biased by up to their gaps. Compare forward estimates.",
                      RuntimeWarning, skip_file_prefixes=(checks.PACKAGE_DIR,))
    weak = [n for n, est in estimates.items() if not est.ess >= 0.1 * est.num_chains]
    if weak:
        warnings.warn(f"compare: the importance weights of {weak} are degenerate (ESS below 10% of the chains); their "
                      "error bars are unreliable, and so are the Bayes factors'. Use longer schedules.",
                      RuntimeWarning, skip_file_prefixes=(checks.PACKAGE_DIR,))
    order = sorted(range(len(names)), key=lambda i: -estimates[names[i]].log_z)
    return Comparison(tuple(names[i] for i in order), tuple(estimates[names[i]] for i in order), log_prior[order])
