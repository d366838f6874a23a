"""``ebm-ppl quickstart``: the chapter's two models on the digits, end to end, in about a minute.

Stages (one progress bar over them on a TTY, epoch bars inside the training runs):

1. load the digits: binarized for the RBM; scaled to [-1, 1] with training noise 0.03 for the JEM;
2. train a Bernoulli RBM by PCD-1, then its log Z: exact (enumerating the hidden layer), forward AIS
   (a lower bound in expectation) and reverse AIS from exact samples (an upper bound), the sandwich,
   and the exact test log-likelihood against the base-rate (independent pixel) model;
3. train a JEM (the chapter's 64-512-512-512-10 ELU classifier, short-run Langevin negatives) and
   report its test accuracy; an earlier ``jem.ebm`` in ``--out`` trained with the same settings is
   reused unless ``--retrain``;
4. sample the JEM's marginal energy with MALA and with the chapter's (tempered) Langevin, diagnose
   both and write their full reports;
5. write ``report.html`` (self-contained) and ``summary.json``; print a summary, the stage times and
   the next steps.
"""

from __future__ import annotations

import argparse
import base64
import html
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import ebm_ppl as ep
from ebm_ppl._version import __version__
from ebm_ppl.cli import (
    EXIT_OK,
    PROG,
    _finite_or_none,
    _format_table,
    _int_in,
    _prepare_out_dir,
    _progress_enabled,
    _steps,
    _warnings_to,
    _write_atomic,
    _write_json,
    command,
)
from ebm_ppl.diagnostics.summary import COLUMNS, Diagnostics, format_value
from ebm_ppl.io import load_metadata
from ebm_ppl.partition import exact_samples
from ebm_ppl.training import History
from ebm_ppl.training.figures import image_grid, jem_figure, rbm_figure

__all__ = ["Budget", "DEFAULT", "FAST", "FILES", "MAX_HIDDEN"]

#: File names inside --out.
FILES = {
    "rbm": "rbm.ebm", "base_rate": "base_rate.ebm", "jem": "jem.ebm",
    "rbm_figure": "rbm.png", "jem_figure": "jem_fig6_2.png",
    "mala_samples": "mala_samples.png", "langevin_samples": "langevin_samples.png",
    "mala_report": "mala_report.html", "langevin_report": "langevin_report.html",
    "report": "report.html", "summary": "summary.json",
}
#: --n-hidden at most this: fit() reports the exact log-likelihood per epoch up to 2^20 hidden states.
MAX_HIDDEN = 20
#: Standard deviation of the RBM's initial weights (Hinton's practical guide).
INIT_SCALE = 0.01
#: The chapter's Langevin (JEM): x' = x + alpha grad log p + sigma xi.
LANGEVIN_STEP, LANGEVIN_NOISE = 1.0, 0.01
#: Its temperature: exact Langevin needs sigma^2 = 2 alpha, so this noise samples exp(-E / T).
LANGEVIN_TEMPERATURE = LANGEVIN_NOISE**2 / (2 * LANGEVIN_STEP)
JEM_TRAIN_NOISE = 0.03


class Budget(NamedTuple):
    """Every size and length the quickstart uses; :data:`DEFAULT` and the ``--fast`` :data:`FAST`."""

    rbm_epochs: int
    rbm_chains: int  # PCD chains
    ais_chains: int
    ais_temperatures: int
    rbm_figure_sweeps: int
    jem_width: int
    jem_depth: int
    jem_epochs: int
    jem_patience: int | None  # None: train every epoch, keep the best by validation accuracy
    jem_langevin_steps: int  # per training batch (the figure always shows 20 steps, as the chapter)
    sample_chains: int
    sample_warmup: int
    sample_draws: int
    report_worst: int  # coordinates with trace/rank/autocorrelation plots in the sampler reports


# Measured on 2 CPU cores (Nov 2026; this machine's times drift 1.5-2x between identical runs): the
# RBM stage takes 10-15 s, compilation bound (50 epochs cost ~3 s more than 30 and gain ~0.7 nats of
# test log-likelihood); AIS ~2-4 s per direction, also compile bound up to 10^4 temperatures (0.005
# nats standard error); the JEM ~0.8-1.3 s per epoch plus ~5 s of compilation, all 40 epochs (with
# early stopping after 10 epochs without progress the run usually ended near epoch 35, but too
# soon for the accuracy: see cli_train.DEFAULTS); each sampler with its full report 7-11 s. A
# cold default run took 60 s wall clock (56 s after imports), one reusing jem.ebm 45 s: inside the
# 120 s budget with room for the noise. (Fourth session, a quiet machine: 34 s, all 40 epochs.)
DEFAULT = Budget(
    rbm_epochs=50, rbm_chains=100, ais_chains=100, ais_temperatures=10_000, rbm_figure_sweeps=1000,
    jem_width=512, jem_depth=3, jem_epochs=40, jem_patience=None, jem_langevin_steps=20,
    sample_chains=4, sample_warmup=500, sample_draws=1000, report_worst=4,
)
FAST = Budget(
    rbm_epochs=3, rbm_chains=100, ais_chains=100, ais_temperatures=300, rbm_figure_sweeps=50,
    jem_width=32, jem_depth=1, jem_epochs=2, jem_patience=None, jem_langevin_steps=5,
    sample_chains=4, sample_warmup=50, sample_draws=100, report_worst=1,
)


# -- arguments --------------------------------------------------------------------------------
def _quickstart_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default="runs/quickstart", metavar="DIR",
        help="folder for models, figures, reports and summary.json (created; files are replaced) "
        "[default: %(default)s]",
    )
    parser.add_argument(
        "--seed", type=_int_in(0, 2**32 - 1), default=0, metavar="INT",
        help="seed of initial weights, training noise, minibatches and samplers [default: %(default)s]",
    )
    parser.add_argument(
        "--n-hidden", type=_int_in(1, MAX_HIDDEN), default=16, metavar="INT",
        help=f"hidden units of the RBM, 1..{MAX_HIDDEN}; exact log Z sums over 2^n_hidden states "
        "[default: %(default)s]",
    )
    parser.add_argument(
        "--fast", action="store_true",
        help="shrink every budget (epochs, temperatures, draws, a 64-32-10 JEM) to a few seconds each: "
        "for CI and tests; the numbers are then not meaningful",
    )
    parser.add_argument(
        "--retrain", action="store_true",
        help="train the JEM even when --out holds a jem.ebm trained with the same settings",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars and no next-step hints")


@command(
    "quickstart",
    help="train an RBM and a JEM on the digits; log Z, accuracy, sampler diagnostics, HTML report",
    example="quickstart --out runs/quickstart\nquickstart --fast --quiet --out /tmp/qs\n"
            "quickstart --retrain --seed 1 --out runs/quickstart-seed1",
    arguments=_quickstart_arguments,
)
def _quickstart(args: argparse.Namespace) -> int:
    """A first run of the whole library on the 8x8 digits, in under two minutes on two CPU cores.

    1. Data: the digits' fixed split (train 1000 / validation 350 / test 447), binarized at pixel
       >= 8 for the RBM, scaled to [-1, 1] with Gaussian noise 0.03 on the training images for the
       JEM.
    2. RBM: a Bernoulli RBM 64 x 16 (visible biases from the base-rate model, W ~ 0.01 N(0, 1))
       trained by PCD-1 (100 chains, batch 100, SGD 0.1 with momentum 0.5, 50 epochs, best epoch
       by the validation log-likelihood). Its log Z exactly (enumerating the hidden layer), by
       forward AIS (a lower bound in expectation) and by reverse AIS from exact samples (an upper
       bound), 100 chains and 10^4 temperatures each; the sandwich; the exact test log-likelihood
       against the base-rate (independent pixel) model. Saves rbm.ebm, base_rate.ebm, rbm.png.
    3. JEM: the chapter's 64-512-512-512-10 ELU classifier trained as a joint energy model (batch
       64, Adamax 1e-3, short-run Langevin negatives: 20 steps, alpha 1, sigma 0.01, from uniform
       noise), 40 epochs, keeping the best epoch by validation accuracy; prints the test
       accuracy. Saves jem.ebm and jem_fig6_2.png (real digits, samples after 20 Langevin
       steps, validation curves of L_clf + L_gen and L_gen). A jem.ebm already in --out that was
       trained with the same settings is loaded instead (--retrain forces training).
    4. Sampling the JEM's marginal energy E(x) = -logsumexp_y f(x)[y] from uniform noise on
       [-1, 1]: 4 chains of MALA (step size tuned to 0.574 acceptance) and 4 of the chapter's
       Langevin (alpha 1, sigma 0.01: Langevin dynamics of exp(-E / T) at T = 5e-5, a tempered,
       nearly deterministic descent, not a sampler of p(x)); R-hat, ESS and MCSE of both, with
       their full reports (mala_report.html, langevin_report.html).
    5. report.html (one self-contained file: tables, figures, links to the two sampler reports)
       and summary.json (every number). --fast shrinks every budget for CI.
    """
    out = _prepare_out_dir(args.out)
    budget = FAST if args.fast else DEFAULT
    quiet = args.quiet
    progress = _progress_enabled(quiet)
    root = jax.random.key(args.seed)
    keys = {name: jax.random.fold_in(root, i) for i, name in enumerate(
        ("rbm_init", "rbm_fit", "ais_forward", "exact_samples", "ais_reverse", "rbm_figure", "jem_noise",
         "jem_init", "jem_fit", "jem_figure", "sample_init", "mala", "langevin"))}
    notes: list[str] = []  # one-line warnings, printed on stderr after the run
    times: dict[str, float] = {}
    paths = {name: out / name_ for name, name_ in FILES.items()}
    t_start = time.perf_counter()

    stages = ["loading digits", "training the RBM", "RBM log Z: exact, forward and reverse AIS",
              "RBM figure", "training (or reusing) the JEM", "JEM figure", "sampling the JEM with MALA",
              "sampling the JEM with Langevin", "writing report.html"]
    with _steps(len(stages), quiet=quiet) as step, _Clock(step, times) as stage:
        # -- a. data ------------------------------------------------------------------------------
        stage(stages[0])
        binary = ep.data.digits(binarize=True)
        signed = ep.data.digits(scale="signed", train_noise=JEM_TRAIN_NOISE, key=keys["jem_noise"])
        n_visible = binary.x_train.shape[1]

        # -- b. RBM -------------------------------------------------------------------------------
        stage(stages[1])
        with _warnings_to(notes):
            rbm, base, rbm_history = _train_rbm(binary, args.n_hidden, budget, keys, progress)
        stage(stages[2])
        with _warnings_to(notes):
            rbm_results = _rbm_log_z(rbm, base, binary, budget, keys, progress)
        rbm_results.update(epochs=len(rbm_history.records), best_epoch=rbm_history.best_epoch,
                           stopped=rbm_history.stopped)
        for name, model in (("rbm", rbm), ("base_rate", base)):
            ep.save(paths[name], model, metadata={
                "created_by": f"{PROG} quickstart", "model": name, "seed": args.seed, "fast": args.fast,
                "data": "digits, binarized (pixel >= 8)",
                **({"epochs": len(rbm_history.records), "best_epoch": rbm_history.best_epoch}
                   if name == "rbm" else {}),
            })
        stage(stages[3])
        rbm_figure(rbm, rbm_history, paths["rbm_figure"], key=keys["rbm_figure"],
                   sweeps=budget.rbm_figure_sweeps)

        # -- c. JEM -------------------------------------------------------------------------------
        stage(stages[4])
        settings = _jem_settings(budget, args.seed, args.fast)
        jem, jem_history, reused = None, None, None
        if not args.retrain:
            jem, jem_history, reused = _reuse_jem(paths["jem"], settings)
        if jem is None:
            with _warnings_to(notes):
                jem, jem_history = _train_jem(signed, budget, keys, progress)
            ep.save(paths["jem"], jem, metadata={
                "created_by": f"{PROG} quickstart", "model": "jem", "quickstart_settings": settings,
                "history": {"records": jem_history.records, "monitor": jem_history.monitor,
                            "best_epoch": jem_history.best_epoch, "stopped": jem_history.stopped,
                            "message": jem_history.message},
            })
        jem_accuracy = float(jnp.mean(jem.classify(signed.x_test) == signed.y_test))
        jem_test_energy = float(jnp.mean(jem.energy(signed.x_test)))
        stage(stages[5])
        jem_figure(jem, signed.x_test, jem_history, paths["jem_figure"], key=keys["jem_figure"],
                   steps=20, step_size=LANGEVIN_STEP, noise_scale=LANGEVIN_NOISE)

        # -- d. sampling --------------------------------------------------------------------------
        x0 = jax.random.uniform(keys["sample_init"], (budget.sample_chains, n_visible), minval=-1.0, maxval=1.0)
        samplers: dict[str, dict[str, Any]] = {}
        for name, label, options in (
            ("mala", stages[6], {}),
            ("langevin", stages[7], {"step_size": LANGEVIN_STEP, "noise_scale": LANGEVIN_NOISE}),
        ):
            stage(label)
            t0 = time.perf_counter()
            with _warnings_to(notes):
                data = ep.sample(keys[name], jem, name, num_chains=budget.sample_chains,
                                 num_warmup=budget.sample_warmup, num_samples=budget.sample_draws,
                                 init=x0, progress=progress, **options)
                seconds = time.perf_counter() - t0
                diag = ep.diagnose(data)
                ep.report(data, paths[f"{name}_report"], title=_SAMPLER_TITLES[name],
                          num_worst=budget.report_worst)
            samplers[name] = _sampler_summary(name, data, diag, seconds, options)
            _samples_png(data, paths[f"{name}_samples"], _SAMPLER_TITLES[name])

        # -- e. report.html and summary.json ------------------------------------------------------
        stage(stages[8])
        summary = {
            "command": "quickstart",
            "ebm_ppl_version": __version__,
            "jax_version": jax.__version__,
            "backend": jax.default_backend(),
            "seed": args.seed,
            "fast": args.fast,
            "budget": budget._asdict(),
            "data": {"name": "digits", "n_visible": n_visible, "n_train": len(binary.x_train),
                     "n_val": len(binary.x_val), "n_test": len(binary.x_test),
                     "rbm": "binarized at pixel >= 8",
                     "jem": f"scaled to [-1, 1], Gaussian noise {JEM_TRAIN_NOISE} on the training images"},
            "rbm": rbm_results,
            "jem": {
                "architecture": _architecture(budget),
                "test_accuracy": jem_accuracy,
                "test_energy_mean": jem_test_energy,
                "epochs": len(jem_history.records),
                "best_epoch": jem_history.best_epoch,
                "best_val_accuracy": _best(jem_history, "val_accuracy"),
                "stopped": jem_history.stopped,
                "stopped_message": jem_history.message,
                "reused": reused is not None,
                "settings": settings,
            },
            "samplers": samplers,
            "files": {name: p.name for name, p in paths.items()},
            "warnings": notes,
        }
        diagnostics = {name: s.pop("_diagnostics") for name, s in samplers.items()}
        _write_report(paths["report"], summary, paths, diagnostics)
    times["total (after start-up and imports)"] = time.perf_counter() - t_start
    summary["stage_seconds"] = times
    _write_json(paths["summary"], _finite_or_none(summary))

    for note in notes:
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    _print_summary(summary, reused, paths, out, quiet)
    return EXIT_OK


# -- stage timing -----------------------------------------------------------------------------
class _Clock:
    """``stage(label)``: closes the running stage's timer, opens the next and moves the bar."""

    def __init__(self, step: Callable[[str], None], times: dict[str, float]):
        self._step, self._times = step, times
        self._label: str | None = None
        self._t0 = 0.0

    def __call__(self, label: str) -> None:
        self._close()
        self._label, self._t0 = label, time.perf_counter()
        self._step(label)

    def _close(self) -> None:
        if self._label is not None:
            self._times[self._label] = time.perf_counter() - self._t0
            self._label = None

    def __enter__(self) -> "_Clock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close()


# -- b. the RBM -------------------------------------------------------------------------------
def _train_rbm(data, n_hidden: int, budget: Budget, keys, progress: bool):
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


def _rbm_log_z(rbm, base, data, budget: Budget, keys, progress: bool) -> dict[str, Any]:
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


def _estimate(est, exact: float) -> dict[str, Any]:
    return {"log_z": est.log_z, "stderr": est.stderr, "minus_exact": est.log_z - exact, "bound": est.bound,
            "weight_ess": est.ess, "num_chains": est.num_chains, "num_temperatures": est.num_temperatures,
            "seconds": est.wall_time}


# -- c. the JEM -------------------------------------------------------------------------------
def _architecture(budget: Budget) -> str:
    return "-".join(["64", *[str(budget.jem_width)] * budget.jem_depth, "10"]) + " ELU"


def _jem_settings(budget: Budget, seed: int, fast: bool) -> dict[str, Any]:
    """Everything that determines the trained JEM: an earlier jem.ebm is reused only when equal."""
    return {
        "version": 1, "seed": seed, "fast": fast, "architecture": _architecture(budget),
        "width": budget.jem_width, "depth": budget.jem_depth, "activation": "elu",
        "epochs": budget.jem_epochs, "patience": budget.jem_patience, "batch_size": 64,
        "optimizer": "adamax", "learning_rate": 1e-3, "langevin_steps": budget.jem_langevin_steps,
        "step_size": LANGEVIN_STEP, "noise_scale": LANGEVIN_NOISE, "persistent": False,
        "train_noise": JEM_TRAIN_NOISE, "data": "digits, scale signed",
    }


def _reuse_jem(path: Path, settings: dict[str, Any]):
    """``(model, history, path)`` from an earlier run with the same settings, else ``(None, None, None)``."""
    if not path.is_file():
        return None, None, None
    try:
        user = load_metadata(path)["user"]
        if user.get("quickstart_settings") != settings:
            return None, None, None
        model = ep.load(path)
        h = user["history"]
        history = History(records=h["records"], monitor=h["monitor"], best_epoch=h["best_epoch"],
                          stopped=h["stopped"], message=h.get("message", ""))
    except (ValueError, KeyError, TypeError, OSError, NotImplementedError):
        return None, None, None  # damaged or foreign: train afresh
    if not isinstance(model, ep.JEM) or history.stopped == "diverged":
        return None, None, None  # a diverged run is trained again
    return model, history, path


def _train_jem(data, budget: Budget, keys, progress: bool):
    model0 = ep.JEM.init(keys["jem_init"], data.x_train.shape[1], 10, width=budget.jem_width,
                         depth=budget.jem_depth, activation="elu")
    estimator = ep.training.jem(langevin_steps=budget.jem_langevin_steps, step_size=LANGEVIN_STEP,
                                noise_scale=LANGEVIN_NOISE)
    return ep.fit(model0, (data.x_train, data.y_train), estimator, key=keys["jem_fit"],
                  optimizer=optax.adamax(1e-3), epochs=budget.jem_epochs, batch_size=64,
                  validation=(data.x_val, data.y_val), patience=budget.jem_patience, progress=progress)


def _best(history: History, metric: str) -> float | None:
    values = history[metric] if history.records else np.array([])
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else None


# -- d. sampling ------------------------------------------------------------------------------
_SAMPLER_TITLES = {
    "mala": "JEM marginal energy, MALA (T = 1, step size tuned to 0.574 acceptance)",
    "langevin": (f"JEM marginal energy, the chapter's Langevin (alpha {LANGEVIN_STEP:g}, sigma "
                 f"{LANGEVIN_NOISE:g}: tempered, T = {LANGEVIN_TEMPERATURE:.0e})"),
}


def _sampler_summary(name: str, data, diag: Diagnostics, seconds: float, options: dict[str, float]):
    x = np.asarray(data.posterior["x"].values)
    energy = np.asarray(data.sample_stats["energy"].values)
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
        "energy_rhat": diag.energy["rhat"] if diag.energy else None,
        "energy_ess_bulk": diag.energy["ess_bulk"] if diag.energy else None,
        "energy_mean": float(np.mean(energy)),
        "max_rhat": max(rhats) if rhats else None,
        "min_ess": min(ess) if ess else None,
        "acceptance_rate": (None if diag.acceptance_rate is None
                            else float(np.mean(diag.acceptance_rate))),
        "max_abs_x": float(np.max(np.abs(x))),
        "fraction_outside_data_range": float(np.mean(np.abs(x) > 1.0)),
        "diagnostics": diag.to_dict(),
        "_diagnostics": diag,
    }
    stats = data["sample_stats"]
    if "step_size" in stats.data_vars:
        out["step_size"] = float(np.mean(np.asarray(stats["step_size"].values)))
    return out


def _samples_png(data, path: Path, title: str) -> None:
    """Rows: chains; columns: draws evenly spaced over the run (the last one last), on [-1, 1]."""
    x = np.asarray(data.posterior["x"].values)  # (chain, draw, 64)
    num_chains, num_draws = x.shape[:2]
    columns = min(10, num_draws)
    index = np.unique(np.linspace(0, num_draws - 1, columns).round().astype(int))
    images = x[:, index].reshape(-1, x.shape[-1])
    grid = image_grid(np.clip(images, -1.0, 1.0), (8, 8), ncols=len(index))
    fig = Figure(figsize=(1.0 + 0.6 * len(index), 0.9 + 0.6 * num_chains), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(np.ma.masked_invalid(grid), cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
    ax.set_facecolor("0.85")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel("chain")
    ax.set_xlabel(f"draws {index[0] + 1} .. {index[-1] + 1} (clipped to [-1, 1])")
    ax.set_title(title, fontsize=8)
    _write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


# -- e. report.html ---------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, -apple-system, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #eee; text-align: right; }
th.text, td.text { text-align: left; }
tr.warn td { background: #fff4e5; }
.meta, p.note { color: #555; font-size: 0.9em; }
.ok { color: #1a7f37; } .warn { color: #b35900; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.88em; }
"""


def _write_report(path: Path, s: dict[str, Any], paths: dict[str, Path], diags: dict[str, Diagnostics]) -> None:
    r, j = s["rbm"], s["jem"]
    lz, sw = r["log_z"], r["sandwich"]
    e = html.escape

    def num(v, fmt=".4f"):
        return "&ndash;" if v is None else format(v, fmt)

    rbm_rows = [
        ("exact (enumerating 2^%d hidden states)" % r["n_hidden"], num(lz["exact"]), "&ndash;", "&ndash;",
         "exact", "&ndash;"),
    ]
    for key, label in (("forward_ais", "forward AIS"), ("reverse_ais", "reverse AIS from exact samples")):
        est = lz[key]
        rbm_rows.append((label, num(est["log_z"]), "&plusmn; " + num(est["stderr"]), num(est["minus_exact"], "+.4f"),
                         est["bound"] + " bound in expectation", f"{est['weight_ess']:.1f} / {est['num_chains']}"))
    rbm_table = _html_table(["estimate", "log Z (nats)", "s.e.", "minus exact", "kind", "weight ESS"], rbm_rows)
    ll_rows = [
        ("RBM (exact log Z)", num(r["log_likelihood"]["rbm_train"]), num(r["log_likelihood"]["rbm_val"]),
         num(r["log_likelihood"]["rbm_test"]), num(r["test_bits_per_pixel"])),
        ("independent pixels (base rate)", num(r["log_likelihood"]["independent_pixels_train"]),
         num(r["log_likelihood"]["independent_pixels_val"]),
         num(r["log_likelihood"]["independent_pixels_test"]),
         num(-r["log_likelihood"]["independent_pixels_test"] / (r["n_visible"] * math.log(2.0)))),
    ]
    ll_table = _html_table(["model", "train LL", "validation LL", "test LL", "test bits/pixel"], ll_rows)

    sampler_parts = []
    for name, d in s["samplers"].items():
        diag = diags[name]
        verdict_cls = "ok" if d["ok"] else "warn"
        report_link = paths[f"{name}_report"].name
        sampler_parts.append(
            f"<h3>{e(_SAMPLER_TITLES[name])}</h3>"
            f"<p class=\"meta\">{d['num_chains']} chains &times; {d['num_draws']} draws after "
            f"{s['budget']['sample_warmup']} warm-up steps, from uniform noise on [-1, 1]; {d['seconds']:.1f} s"
            + (f"; mean acceptance {d['acceptance_rate']:.3f}" if d["acceptance_rate"] is not None else "")
            + (f"; step size {d['step_size']:.3g}" if "step_size" in d else "")
            + f"; max |x| {d['max_abs_x']:.3g}, {100 * d['fraction_outside_data_range']:.1f}% of pixel values "
            f"outside [-1, 1]; mean energy of the draws {d['energy_mean']:.4g} (test digits: "
            f"{j['test_energy_mean']:.4g}).</p>"
            f"<p>Verdict: <span class=\"{verdict_cls}\">{e(d['verdict'])}</span>. "
            f"Full report with trace, rank, ESS and autocorrelation plots: "
            f"<a href=\"{e(report_link)}\">{e(report_link)}</a></p>"
            + _diagnostics_table(diag)
            + _img(paths[f"{name}_samples"], f"{name} draws",
                   "Rows: chains; columns: draws evenly spaced over the run.")
        )

    body = [
        f"<h1>ebm-ppl quickstart</h1><p class=\"meta\">ebm_ppl {e(s['ebm_ppl_version'])}, JAX "
        f"{e(s['jax_version'])} on {e(s['backend'])}; seed {s['seed']}"
        + ("; <b>--fast</b> (tiny budgets: the numbers are not meaningful)" if s["fast"] else "")
        + f"; digits {s['data']['n_train']} train / {s['data']['n_val']} validation / "
        f"{s['data']['n_test']} test.</p>",
        "<h2>Bernoulli RBM: log Z and likelihood</h2>",
        f"<p class=\"note\">{r['n_visible']} &times; {r['n_hidden']} RBM on binarized digits, {e(r['training'])}; "
        f"{r['epochs']} epochs, best epoch {r['best_epoch']} by validation log-likelihood. AIS: "
        f"{lz['forward_ais']['num_chains']} chains, {lz['forward_ais']['num_temperatures']} temperatures, "
        f"base fitted to the training images.</p>",
        rbm_table,
        f"<p>Sandwich: log Z in [{num(sw['log_z_lower'])} &plusmn; {num(sw['stderr_lower'])}, "
        f"{num(sw['log_z_upper'])} &plusmn; {num(sw['stderr_upper'])}], gap {num(sw['gap'], '+.4f')} "
        f"&plusmn; {num(sw['gap_stderr'])} nats; the exact value is "
        f"{'inside' if sw['exact_inside'] else 'outside'} the bounds widened by two standard errors. "
        f"Mean test log-likelihood in [{num(sw['test_log_likelihood_lower'])}, "
        f"{num(sw['test_log_likelihood_upper'])}].</p>",
        ll_table,
        (f"<p>Test log-likelihood of the RBM minus that of independent pixels: "
         f"{num(r['test_gain_over_independent_pixels'], '+.3f')} nats per image.</p>"),
        _img(paths["rbm_figure"], "RBM figure",
             "Filters (columns of W), samples after block Gibbs sweeps, log-likelihood over epochs."),
        "<h2>JEM: classifier and energy</h2>",
        f"<p>{e(j['architecture'])} classifier trained as a joint energy model (batch 64, Adamax 1e-3, "
        f"{j['settings']['langevin_steps']} short-run Langevin steps per batch, alpha {LANGEVIN_STEP:g}, "
        f"sigma {LANGEVIN_NOISE:g}); {j['epochs']} epochs, best epoch {j['best_epoch']}"
        + (" (loaded from an earlier run with the same settings)" if j["reused"] else "")
        + f". <b>Test accuracy {j['test_accuracy']:.4f}</b>"
        + (f" (best validation accuracy {j['best_val_accuracy']:.4f})" if j["best_val_accuracy"] is not None else "")
        + ".</p>",
        _img(paths["jem_figure"], "JEM figure (chapter Fig. 6.2)",
             "Real digits; samples after 20 Langevin steps from uniform noise; validation curves of "
             "L_clf + L_gen and of L_gen."),
        "<h2>Sampling the JEM's marginal energy</h2>",
        "<p class=\"note\">E(x) = -logsumexp_y f(x)[y]. MALA targets p(x) &prop; exp(-E(x)) (T = 1). "
        f"The chapter's Langevin x' = x + {LANGEVIN_STEP:g} &nabla;log p(x) + {LANGEVIN_NOISE:g} &xi; has "
        f"noise variance {LANGEVIN_NOISE ** 2:g} instead of the 2 &alpha; = {2 * LANGEVIN_STEP:g} of exact "
        f"Langevin, so it is Langevin dynamics of exp(-E(x)/T) with T = &sigma;&sup2;/(2&alpha;) = "
        f"{LANGEVIN_TEMPERATURE:.0e}: a tempered, nearly deterministic descent, not a sampler of p(x).</p>",
        *sampler_parts,
        "<h2>Files</h2><ul>" + "".join(
            f"<li><a href=\"{e(p.name)}\">{e(p.name)}</a></li>" for n, p in paths.items() if n != "report")
        + "</ul>",
    ]
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<title>ebm-ppl quickstart</title>\n<style>" + _CSS + "</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")

    def write(tmp: Path) -> None:
        tmp.write_text(page, encoding="utf-8")

    _write_atomic(path, write)


def _html_table(header: list[str], rows: list[tuple[str, ...]]) -> str:
    head = "".join(f"<th class=\"text\">{h}</th>" if i == 0 else f"<th>{h}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td class=\"text\">{c}</td>" if i == 0 else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _diagnostics_table(diag: Diagnostics, worst: int = 8) -> str:
    """The energy row and the ``worst`` worst-mixing coordinates (Diagnostics.table rows)."""
    rows = ([diag.energy] if diag.energy is not None else []) + diag.worst[:worst]

    def row_html(row: dict[str, Any]) -> str:
        cells = "".join(
            f"<td class=\"text\">{html.escape(format_value(c, row[c]))}</td>" if c in ("quantity", "flag", "note")
            else f"<td>{html.escape(format_value(c, row[c]))}</td>" for c in COLUMNS)
        return f"<tr class=\"{'ok' if row['flag'] == 'ok' else 'warn'}\">{cells}</tr>"

    head = "".join(f"<th class=\"text\">{c}</th>" if c in ("quantity", "flag", "note") else f"<th>{c}</th>"
                   for c in COLUMNS)
    caption = (f"<p class=\"note\">Energy and the {min(worst, len(diag.worst))} worst-mixing of "
               f"{len(diag.coordinates)} coordinates (arviz R-hat, bulk/tail ESS, MCSE; thresholds R-hat &lt; "
               f"{diag.rhat_threshold:g}, ESS &ge; {diag.min_ess:g}).</p>")
    return (caption + f"<table class=\"diagnostics\"><thead><tr>{head}</tr></thead><tbody>"
            + "".join(row_html(r) for r in rows) + "</tbody></table>")


def _img(path: Path, alt: str, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure><img alt=\"{html.escape(alt)}\" src=\"data:image/png;base64,{data}\">"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


# -- f. the printed summary -------------------------------------------------------------------
def _print_summary(s: dict[str, Any], reused: Path | None, paths: dict[str, Path], out: Path, quiet: bool) -> None:
    r, j = s["rbm"], s["jem"]
    lz, sw = r["log_z"], r["sandwich"]
    print(f"ebm-ppl quickstart on the digits ({s['data']['n_train']} train / {s['data']['n_val']} validation / "
          f"{s['data']['n_test']} test), seed {s['seed']}, {s['backend']}"
          + (" -- --fast: tiny budgets, numbers not meaningful" if s["fast"] else ""))
    print()
    print(f"Bernoulli RBM {r['n_visible']}x{r['n_hidden']}, PCD-1: {r['epochs']} epochs, best epoch {r['best_epoch']}")
    rows = [["exact", f"{lz['exact']:.4f}", "", "", f"enumerating 2^{r['n_hidden']} hidden states"]]
    for key, label in (("forward_ais", "forward AIS"), ("reverse_ais", "reverse AIS")):
        est = lz[key]
        rows.append([label, f"{est['log_z']:.4f}", f"± {est['stderr']:.4f}", f"{est['minus_exact']:+.4f}",
                     f"{est['bound']} bound; {est['num_chains']} chains x {est['num_temperatures']} "
                     f"temperatures, ESS {est['weight_ess']:.0f}"])
    rows.append(["sandwich gap", f"{sw['gap']:+.4f}", f"± {sw['gap_stderr']:.4f}", "",
                 "exact inside" if sw["exact_inside"] else "exact OUTSIDE (runs too short)"])
    print(_format_table(["  log Z", "nats", "s.e.", "- exact", ""], [["  " + c[0], *c[1:]] for c in rows]))
    ll = r["log_likelihood"]
    print(_format_table(["  test log-likelihood", "nats/image", "bits/pixel"], [
        ["  RBM (exact log Z)", f"{ll['rbm_test']:.3f}", f"{r['test_bits_per_pixel']:.4f}"],
        ["  independent pixels", f"{ll['independent_pixels_test']:.3f}",
         f"{-ll['independent_pixels_test'] / (r['n_visible'] * math.log(2.0)):.4f}"],
    ]))
    print()
    how = f"loaded from {reused} (same settings; --retrain to train again)" if reused else \
        f"{j['epochs']} epochs, best epoch {j['best_epoch']}"
    print(f"JEM {j['architecture']}, short-run Langevin ({j['settings']['langevin_steps']} steps): {how}")
    if j["stopped"] == "diverged":
        print(f"  training DIVERGED ({j['stopped_message']}); the last good model is used")
    print(f"  test accuracy {j['test_accuracy']:.4f}"
          + (f" (best validation accuracy {j['best_val_accuracy']:.4f})" if j["best_val_accuracy"] is not None else ""))
    print()
    first = next(iter(s["samplers"].values()))
    print(f"Sampling the JEM's marginal energy: {first['num_chains']} chains x {first['num_draws']} draws after "
          f"{s['budget']['sample_warmup']} warm-up steps, from uniform noise on [-1, 1]")
    rows = []
    for name, d in s["samplers"].items():
        rows.append([
            "  " + ("MALA (T = 1)" if name == "mala" else f"Langevin (T = {LANGEVIN_TEMPERATURE:.0e})"),
            _fmt(d["max_rhat"], ".3f"), _fmt(d["min_ess"], ".0f"), _fmt(d["energy_rhat"], ".3f"),
            _fmt(d["energy_ess_bulk"], ".0f"), _fmt(d["acceptance_rate"], ".3f"), f"{d['max_abs_x']:.3g}",
            "ok" if d["ok"] else "WARN",
        ])
    print(_format_table(["  sampler", "max R-hat", "min ESS", "E R-hat", "E ESS", "accept", "max |x|",
                                 "verdict"], rows))
    print(f"  Langevin here is the chapter's: x' = x + {LANGEVIN_STEP:g} grad log p(x) + {LANGEVIN_NOISE:g} xi. "
          f"Exact Langevin needs noise variance 2 x {LANGEVIN_STEP:g};")
    print(f"  this is Langevin dynamics of exp(-E(x)/T) with T = sigma^2/(2 alpha) = {LANGEVIN_TEMPERATURE:.0e}, "
          "a tempered, nearly deterministic descent, not a sampler of p(x).")
    mala = s["samplers"].get("mala")
    if mala is not None and mala["fraction_outside_data_range"] > 0.05:
        print(f"  MALA at T = 1 leaves the data's range ({100 * mala['fraction_outside_data_range']:.0f}% of pixel "
              f"values outside [-1, 1], max |x| {mala['max_abs_x']:.3g}; mean energy {mala['energy_mean']:.4g} there,")
        print(f"  {j['test_energy_mean']:.4g} on the test digits): exp(-E(x)) puts its mass far from the digits; "
              "the JEM's marginal need not be normalizable.")
    print()
    times = s["stage_seconds"]
    width = max(len(k) for k in times)
    print("Stage times:")
    for label, seconds in times.items():
        print(f"  {label.ljust(width)}  {seconds:6.1f} s")
    print()
    print(f"Saved to {out}/:")
    for name in ("report", "summary", "rbm", "base_rate", "rbm_figure", "jem", "jem_figure", "mala_report",
                 "langevin_report", "mala_samples", "langevin_samples"):
        print(f"  {paths[name]}")
    if quiet:
        return
    rbm_file, jem_file = shlex.quote(str(paths["rbm"])), shlex.quote(str(paths["jem"]))
    hints = [
        (f"{PROG} sample {rbm_file} --out {shlex.quote(str(out / 'rbm_samples'))}", "block Gibbs draws of the RBM"),
        (f"{PROG} report {shlex.quote(str(out / 'rbm_samples'))}", "their HTML report"),
        (f"{PROG} sample {jem_file} --kernel nuts --out {shlex.quote(str(out / 'jem_nuts'))}",
         "NUTS on the JEM's energy"),
        (f"{PROG} logz {rbm_file} --reverse --data digits --temperatures 30000", "a longer AIS sandwich"),
        (f"{PROG} train jem --epochs 60 --out {shlex.quote(str(out / 'jem60'))}", "a longer JEM run, checkpointed"),
        (f"{PROG} train rbm --hidden 20 --epochs 100 --out {shlex.quote(str(out / 'rbm20'))}", "a wider RBM"),
    ]
    width = max(len(c) for c, _ in hints)
    print()
    print(f"Open {paths['report']} in a browser. Next steps:")
    for cmd, note in hints:
        print(f"  {cmd.ljust(width)}   # {note}")


def _fmt(v, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)
