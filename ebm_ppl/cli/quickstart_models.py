"""The quickstart's work: its budgets, the chapter's settings, training the RBM and the JEM, the RBM's
log Z by every route, and a summary of each sampler run. No printing and no files."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import optax

import ebm_ppl as ep
from ebm_ppl.diagnostics import Diagnostics
from ebm_ppl.partition import exact_samples
from ebm_ppl.training import History

__all__ = ["Budget", "DEFAULT", "FAST", "INIT_SCALE", "LANGEVIN_STEP", "LANGEVIN_NOISE", "LANGEVIN_TEMPERATURE",
           "JEM_TRAIN_NOISE", "JEM_BOX", "SAMPLER_TITLES", "train_rbm", "rbm_log_z", "architecture", "train_jem",
           "best_value", "sampler_summary", "jem_log_likelihood"]

#: Standard deviation of the RBM's initial weights (Hinton's practical guide).
INIT_SCALE = 0.01
#: The chapter's Langevin (JEM): x' = x + alpha grad log p + sigma xi.
LANGEVIN_STEP, LANGEVIN_NOISE = 1.0, 0.01
#: Its temperature: exact Langevin needs sigma^2 = 2 alpha, so this noise samples exp(-E / T).
LANGEVIN_TEMPERATURE = LANGEVIN_NOISE**2 / (2 * LANGEVIN_STEP)
JEM_TRAIN_NOISE = 0.03
#: The digits' range: on it the JEM's marginal is a proper density (sampled by NUTS, its log Z by AIS).
JEM_BOX = ep.box(-1.0, 1.0)
#: Headings of the two sampler runs.
SAMPLER_TITLES = {
    "mala": "JEM marginal energy, MALA (T = 1, step size tuned to 0.574 acceptance)",
    "langevin": (f"JEM marginal energy, the chapter's Langevin (alpha {LANGEVIN_STEP:g}, sigma "
                 f"{LANGEVIN_NOISE:g}: tempered, T = {LANGEVIN_TEMPERATURE:.0e})"),
    "nuts_box": "JEM marginal on the box [-1, 1]^64 (a proper density), NUTS (T = 1)",
}


class Budget(NamedTuple):
    """Every size and length the quickstart uses; :data:`DEFAULT` and the ``--fast`` :data:`FAST`."""

    rbm_epochs: int
    rbm_chains: int  # PCD chains
    ais_chains: int
    ais_temperatures: int
    rbm_figure_sweeps: int
    rbm_pt_replicas: int  # parallel tempering beside plain Gibbs in the RBM figure (the same sweeps)
    jem_width: int
    jem_depth: int
    jem_epochs: int
    jem_patience: int | None  # None: train every epoch, keep the best by validation accuracy
    jem_langevin_steps: int  # per training batch (the figure always shows 20 steps, as the chapter)
    sample_chains: int
    sample_warmup: int
    sample_draws: int
    report_worst: int  # coordinates with trace/rank/autocorrelation plots in the sampler reports
    jem_ais_chains: int  # the JEM's log Z on the box: forward AIS and reverse AIS from test images
    jem_ais_temperatures: int


#: The chapter's settings (the stage times they take: docs/performance.md).
DEFAULT = Budget(
    rbm_epochs=50, rbm_chains=100, ais_chains=100, ais_temperatures=10_000, rbm_figure_sweeps=1000,
    rbm_pt_replicas=8, jem_width=512, jem_depth=3, jem_epochs=40, jem_patience=None, jem_langevin_steps=20,
    sample_chains=4, sample_warmup=500, sample_draws=1000, report_worst=4, jem_ais_chains=100,
    jem_ais_temperatures=1000,
)
#: ``--fast``: a few seconds per stage, for CI and tests.
FAST = Budget(
    rbm_epochs=3, rbm_chains=100, ais_chains=100, ais_temperatures=300, rbm_figure_sweeps=50,
    rbm_pt_replicas=4, jem_width=32, jem_depth=1, jem_epochs=2, jem_patience=None, jem_langevin_steps=5,
    sample_chains=4, sample_warmup=50, sample_draws=100, report_worst=1, jem_ais_chains=20,
    jem_ais_temperatures=50,
)


def train_rbm(data, n_hidden: int, budget: Budget, keys: dict[str, Any], progress: bool):
    """``(rbm, base, history)``: a Bernoulli RBM trained by PCD-1 on ``data`` (binarized digits) and
    the base-rate (independent pixel) model of the training images."""
    base = ep.BernoulliRBM.base_rate(data.x_train, n_hidden)  # the independent-pixel reference
    # visible biases from the training data's marginals (Hinton's guide, Sec. 8.1): base.b
    rbm0 = ep.BernoulliRBM.init(keys["rbm_init"], data.x_train.shape[1], n_hidden, scale=INIT_SCALE,
                                data=data.x_train)
    rbm, history = ep.fit(
        rbm0, data.x_train, ep.training.pcd(k=1, num_chains=budget.rbm_chains), key=keys["rbm_fit"],
        optimizer=optax.sgd(0.1, momentum=0.5), epochs=budget.rbm_epochs, batch_size=100,
        validation=data.x_val, progress=progress,
    )
    return rbm, base, history


def rbm_log_z(rbm, base, data, budget: Budget, keys: dict[str, Any], progress: bool) -> dict[str, Any]:
    """The RBM's log Z exactly, by forward AIS and by reverse AIS from exact samples, their sandwich,
    and the log-likelihoods of the RBM and of the base-rate model on every split (summary.json's
    ``rbm`` entry)."""
    exact = float(ep.log_partition(rbm))
    forward = ep.ais(keys["ais_forward"], rbm, num_chains=budget.ais_chains,
                     num_temperatures=budget.ais_temperatures, data=data.x_train, progress=progress)
    start = exact_samples(keys["exact_samples"], rbm, budget.ais_chains)
    reverse = ep.reverse_ais(keys["ais_reverse"], rbm, start, exact=True,
                             num_temperatures=budget.ais_temperatures, data=data.x_train, progress=progress)
    both = ep.sandwich(forward, reverse, rbm, data.x_test)
    n_visible = data.x_train.shape[1]
    base_log_z = float(ep.log_partition(base))
    lls = {}
    for name, model, log_z in (("rbm", rbm, exact), ("independent_pixels", base, base_log_z)):
        for split in ("train", "val", "test"):
            lls[f"{name}_{split}"] = float(jnp.mean(ep.log_likelihood(model, getattr(data, f"x_{split}"), log_z)))
    test_ll = lls["rbm_test"]
    return {
        "n_visible": n_visible,
        "n_hidden": rbm.n_hidden,
        "training": "PCD-1, 100 chains, batch 100, SGD 0.1 momentum 0.5, W ~ 0.01 N(0, 1), "
                    "visible biases from the base-rate model",
        "log_z": {
            "exact": exact,
            "forward_ais": _estimate(forward, exact),
            "reverse_ais": _estimate(reverse, exact),
            "independent_pixels_exact": base_log_z,
        },
        "sandwich": {
            "log_z_lower": both.log_z_lower, "log_z_upper": both.log_z_upper,
            "stderr_lower": both.stderr_lower, "stderr_upper": both.stderr_upper, "gap": both.gap,
            "gap_stderr": math.hypot(both.stderr_lower, both.stderr_upper),
            "test_log_likelihood_lower": both.mean_log_likelihood_lower,
            "test_log_likelihood_upper": both.mean_log_likelihood_upper,
            "exact_inside": bool(both.log_z_lower - 2 * both.stderr_lower <= exact
                                 <= both.log_z_upper + 2 * both.stderr_upper),
        },
        "log_likelihood": lls,
        "test_log_likelihood": test_ll,
        "test_bits_per_pixel": -test_ll / (n_visible * math.log(2.0)),
        "independent_pixels_test_log_likelihood": lls["independent_pixels_test"],
        "test_gain_over_independent_pixels": test_ll - lls["independent_pixels_test"],
    }


def rbm_tempering(rbm, budget: Budget, key, num_chains: int = 64) -> tuple[np.ndarray, dict[str, Any]]:
    """Parallel tempering on the RBM, ``num_chains`` chains for as many sweeps as the figure's plain
    Gibbs chains (the ladder adapted in the first half): the last draw of each chain ``(num_chains,
    n_visible)`` and the swap diagnostics of the second half (summary.json's ``rbm.tempering``)."""
    sweeps = budget.rbm_figure_sweeps
    draws = max(1, sweeps // 2)
    data = ep.sample(key, rbm, "parallel_tempering", num_chains=num_chains, num_warmup=sweeps - draws,
                     num_samples=draws, num_replicas=budget.rbm_pt_replicas)
    stats = data.sample_stats
    acceptance = stats.swap_acceptance.mean(("chain", "draw")).values
    return np.asarray(data.posterior.x.values[:, -1]), {
        "num_replicas": budget.rbm_pt_replicas, "num_chains": num_chains, "sweeps": sweeps,
        "betas": [float(b) for b in stats.beta.values[0, -1]],
        "swap_acceptance": [float(a) for a in acceptance],
        "min_swap_acceptance": float(acceptance.min()),
        "round_trips_per_chain": float(stats.round_trips.values[:, -1].mean()),
    }


def _estimate(est, exact: float) -> dict[str, Any]:
    return {"log_z": est.log_z, "stderr": est.stderr, "minus_exact": est.log_z - exact, "bound": est.bound,
            "weight_ess": est.ess, "num_chains": est.num_chains, "num_temperatures": est.num_temperatures,
            "seconds": est.wall_time}


def architecture(budget: Budget) -> str:
    """The JEM's layer widths, e.g. ``64-512-512-512-10 ELU``."""
    return "-".join(["64", *[str(budget.jem_width)] * budget.jem_depth, "10"]) + " ELU"


def train_jem(data, budget: Budget, keys: dict[str, Any], progress: bool):
    """``(jem, history)``: the JEM trained on ``data`` (signed digits) with short-run Langevin."""
    model0 = ep.JEM.init(keys["jem_init"], data.x_train.shape[1], 10, width=budget.jem_width,
                         depth=budget.jem_depth, activation="elu")
    estimator = ep.training.jem(langevin_steps=budget.jem_langevin_steps, step_size=LANGEVIN_STEP,
                                noise_scale=LANGEVIN_NOISE)
    return ep.fit(model0, (data.x_train, data.y_train), estimator, key=keys["jem_fit"],
                  optimizer=optax.adamax(1e-3), epochs=budget.jem_epochs, batch_size=64,
                  validation=(data.x_val, data.y_val), patience=budget.jem_patience, progress=progress)


def best_value(history: History, metric: str) -> float | None:
    """The largest finite value of ``metric`` over the epochs, None if there is none."""
    values = history[metric] if history.records else np.array([])
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else None


def sampler_summary(name: str, data, diag: Diagnostics, seconds: float, options: dict[str, float]):
    """summary.json's entry for one sampler run: its diagnostics and where its draws went."""
    x = np.asarray(data.posterior["x"].values)
    energy = -np.asarray(data.sample_stats["lp"].values)  # E(x) of each draw
    coords = diag.coordinates
    rhats = [r["rhat"] for r in coords if np.isfinite(r["rhat"])]
    ess = [min(r["ess_bulk"], r["ess_tail"]) for r in coords if np.isfinite(r["ess_bulk"])]
    out = {
        "kernel": name,
        "options": options,
        "temperature": LANGEVIN_TEMPERATURE if name == "langevin" else 1.0,
        "num_chains": diag.num_chains,
        "num_draws": diag.num_draws,
        "seconds": seconds,
        "ok": diag.ok,
        "verdict": diag.verdict(),
        "lp_rhat": diag.lp["rhat"] if diag.lp else None,
        "lp_ess_bulk": diag.lp["ess_bulk"] if diag.lp else None,
        "energy_mean": float(np.mean(energy)),
        "max_rhat": max(rhats) if rhats else None,
        "min_ess": min(ess) if ess else None,
        "acceptance_rate": (None if diag.acceptance_rate is None
                            else float(np.mean(diag.acceptance_rate))),
        "max_abs_x": float(np.max(np.abs(x))),
        "fraction_outside_data_range": float(np.mean(np.abs(x) > 1.0)),
        "diagnostics": diag.to_dict(),
    }
    stats = data["sample_stats"]
    if "step_size" in stats.data_vars:
        out["step_size"] = float(np.mean(np.asarray(stats["step_size"].values)))
    return out


def jem_log_likelihood(jem_box, data, budget: Budget, keys: dict[str, Any], progress: bool) -> dict[str, Any]:
    """The JEM's log Z on the box by forward AIS (a lower bound in expectation, from N(0, I) on the
    unconstrained space) and reverse AIS from test images (an approximate upper bound; RAISE's
    conservative per-image estimate), and the mean test log-likelihood they bracket, nats/image."""
    forward = ep.ais(keys["jem_ais_forward"], jem_box, num_chains=budget.jem_ais_chains,
                     num_temperatures=budget.jem_ais_temperatures, progress=progress)
    start = data.x_test[: budget.jem_ais_chains]
    reverse = ep.reverse_ais(keys["jem_ais_reverse"], jem_box, start, num_temperatures=budget.jem_ais_temperatures,
                             progress=progress)
    mean_neg_energy = float(jnp.mean(-jem_box.energy(data.x_test)))
    raise_ll = np.asarray(reverse.start_log_likelihood)
    return {
        "support": str(JEM_BOX), "num_chains": forward.num_chains, "num_temperatures": forward.num_temperatures,
        "forward": {"log_z": forward.log_z, "stderr": forward.stderr, "weight_ess": forward.ess},
        "reverse": {"log_z": reverse.log_z, "stderr": reverse.stderr, "weight_ess": reverse.ess,
                    "bound": reverse.bound},
        # log Z's lower bound gives the likelihood's upper estimate; RAISE the conservative one
        "test_log_likelihood_upper": mean_neg_energy - forward.log_z,
        "test_log_likelihood_upper_stderr": forward.stderr,
        "test_log_likelihood_raise": float(np.mean(raise_ll)),
        "test_log_likelihood_raise_stderr": float(np.std(raise_ll) / math.sqrt(len(raise_ll))),
        "uniform_on_box": -data.x_test.shape[1] * math.log(JEM_BOX.high - JEM_BOX.low),
    }
