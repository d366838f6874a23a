"""``ebm-ppl quickstart``: the chapter's two models on the digits, end to end.

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

The work is in :mod:`ebm_ppl.cli.quickstart_models`, the page and the printed summary in
:mod:`ebm_ppl.cli.quickstart_page`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import ebm_ppl as ep
from ebm_ppl.cli import quickstart_models as work
from ebm_ppl.cli.app import EXIT_OK, PROG, command
from ebm_ppl.cli.helpers import (finite_or_none, int_in, out_dir, print_warnings, progress_enabled,
                                 quiet_option, seed_option, steps, warnings_to, write_atomic, write_json)
from ebm_ppl.cli.quickstart_models import DEFAULT, FAST, LANGEVIN_NOISE, LANGEVIN_STEP, LANGEVIN_TEMPERATURE, Budget
from ebm_ppl.cli.quickstart_page import print_summary, write_page
from ebm_ppl.diagnostics.image_figures import draws_grid_figure
from ebm_ppl.io import load_metadata
from ebm_ppl.training import History
from ebm_ppl.diagnostics.training_figures import jem_figure, rbm_figure

__all__ = ["Budget", "DEFAULT", "FAST", "FILES", "MAX_HIDDEN", "LANGEVIN_TEMPERATURE"]

#: File names inside --out.
FILES = {
    "rbm": "rbm.ebm", "base_rate": "base_rate.ebm", "jem": "jem.ebm",
    "rbm_figure": "rbm.png", "jem_figure": "jem_fig6_2.png",
    "mala_samples": "mala_samples.png", "langevin_samples": "langevin_samples.png",
    "nuts_box_samples": "nuts_box_samples.png",
    "mala_report": "mala_report.html", "langevin_report": "langevin_report.html",
    "nuts_box_report": "nuts_box_report.html",
    "report": "report.html", "summary": "summary.json",
}
#: --n-hidden at most this: fit() reports the exact log-likelihood per epoch up to 2^20 hidden states.
MAX_HIDDEN = 20
_KEYS = ("rbm_init", "rbm_fit", "ais_forward", "exact_samples", "ais_reverse", "rbm_figure", "jem_noise",
         "jem_init", "jem_fit", "jem_figure", "sample_init", "mala", "langevin", "nuts_box", "jem_ais_forward",
         "jem_ais_reverse", "rbm_tempering")
_STAGES = ("loading digits", "training the RBM", "RBM log Z: exact, forward and reverse AIS", "RBM figure",
           "training (or reusing) the JEM", "JEM figure", "sampling the JEM with MALA",
           "sampling the JEM with Langevin", "sampling the JEM on [-1, 1]^64 with NUTS",
           "JEM log-likelihood on the box: forward and reverse AIS", "writing report.html")


def _quickstart_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default="runs/quickstart", metavar="DIR",
        help="folder for models, figures, reports and summary.json (created; files are replaced) "
        "[default: %(default)s]",
    )
    seed_option(parser, "seed of initial weights, training noise, minibatches and samplers")
    parser.add_argument(
        "--n-hidden", type=int_in(1, MAX_HIDDEN), default=16, metavar="INT",
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
    quiet_option(parser, "no progress bars and no next-step hints")


class _Run(NamedTuple):
    """What every stage reads: the options, the budget, one PRNG key per use, the output files,
    whether to draw progress bars, and the list that collects warnings."""

    args: argparse.Namespace
    budget: Budget
    keys: dict[str, Any]
    paths: dict[str, Path]
    progress: bool
    notes: list[str]


@command(
    "quickstart",
    help="train an RBM and a JEM on the digits; log Z, accuracy, sampler diagnostics, HTML report",
    example="quickstart --out runs/quickstart\nquickstart --fast --quiet --out /tmp/qs\n"
            "quickstart --retrain --seed 1 --out runs/quickstart-seed1",
    arguments=_quickstart_arguments,
)
def run(args: argparse.Namespace) -> int:
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
       [-1, 1]: 4 chains of MALA on R^64 (step size tuned to 0.574 acceptance; the marginal need
       not be normalizable there), 4 of the chapter's Langevin (alpha 1, sigma 0.01: Langevin
       dynamics of exp(-E / T) at T = 5e-5, a tempered, nearly deterministic descent, not a
       sampler of p(x)) and 4 of NUTS on the box [-1, 1]^64, where the marginal is a proper
       density; R-hat, ESS and MCSE of each, with full reports (mala_report.html,
       langevin_report.html, nuts_box_report.html).
    5. The JEM as a density on the box: its log Z by forward AIS and by reverse AIS from test
       images (100 chains, 1000 temperatures each), and the mean test log-likelihood of the
       digits they bracket, in nats per image.
    6. report.html (one self-contained file: tables, figures, links to the sampler reports) and
       summary.json (every number). --fast shrinks every budget for CI.
    """
    with out_dir(args.out) as out:
        return _quickstart(args, out)


def _quickstart(args: argparse.Namespace, out: Path) -> int:
    """The five stages, the page and the summary (``run`` in its output folder)."""
    root = jax.random.key(args.seed)
    r = _Run(args=args, budget=FAST if args.fast else DEFAULT,
             keys={name: jax.random.fold_in(root, i) for i, name in enumerate(_KEYS)},
             paths={name: out / file for name, file in FILES.items()}, progress=progress_enabled(args.quiet),
             notes=[])
    times: dict[str, float] = {}
    t_start = time.perf_counter()
    with steps(len(_STAGES), quiet=args.quiet) as step, _Clock(step, times) as stage:
        stage(_STAGES[0])
        binary = ep.data.digits(binarize=True)
        signed = ep.data.digits(scale="signed", train_noise=work.JEM_TRAIN_NOISE, key=r.keys["jem_noise"])
        rbm_results = _rbm_stages(r, binary, stage)
        jem, jem_results, reused = _jem_stages(r, signed, stage)
        samplers, diagnostics = _sampling_stages(r, jem, stage)
        stage(_STAGES[9])
        with warnings_to(r.notes):
            jem_results["box"] = work.jem_log_likelihood(jem.with_support(work.JEM_BOX), signed, r.budget, r.keys,
                                                         r.progress)
        stage(_STAGES[10])
        summary = {
            "command": "quickstart", "ebm_ppl_version": ep.__version__, "jax_version": jax.__version__,
            "backend": jax.default_backend(), "seed": args.seed, "fast": args.fast, "budget": r.budget._asdict(),
            "data": {"name": "digits", "n_visible": binary.x_train.shape[1], "n_train": len(binary.x_train),
                     "n_val": len(binary.x_val), "n_test": len(binary.x_test),
                     "rbm": "binarized at pixel >= 8",
                     "jem": f"scaled to [-1, 1], Gaussian noise {work.JEM_TRAIN_NOISE} on the training images"},
            "rbm": rbm_results, "jem": jem_results, "samplers": samplers,
            "files": {name: p.name for name, p in r.paths.items()}, "warnings": r.notes,
        }
        write_page(r.paths["report"], summary, r.paths, diagnostics)
    times["total (after start-up and imports)"] = time.perf_counter() - t_start
    summary["stage_seconds"] = times
    write_json(r.paths["summary"], finite_or_none(summary))

    print_warnings(r.notes)
    print_summary(summary, reused, r.paths, out, args.quiet)
    return EXIT_OK


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


def _rbm_stages(r: _Run, binary, stage: _Clock) -> dict[str, Any]:
    """Train the RBM, its log Z by every route, save it and the base-rate model, draw its figure."""
    stage(_STAGES[1])
    with warnings_to(r.notes):
        rbm, base, history = work.train_rbm(binary, r.args.n_hidden, r.budget, r.keys, r.progress)
    stage(_STAGES[2])
    with warnings_to(r.notes):
        results = work.rbm_log_z(rbm, base, binary, r.budget, r.keys, r.progress)
    results.update(epochs=len(history.records), best_epoch=history.best_epoch, stopped=history.stopped)
    for name, model in (("rbm", rbm), ("base_rate", base)):
        ep.save(r.paths[name], model, metadata={
            "created_by": f"{PROG} quickstart", "model": name, "seed": r.args.seed, "fast": r.args.fast,
            "data": "digits, binarized (pixel >= 8)",
            **({"epochs": len(history.records), "best_epoch": history.best_epoch} if name == "rbm" else {}),
        })
    stage(_STAGES[3])
    pt_samples, results["tempering"] = work.rbm_tempering(rbm, r.budget, r.keys["rbm_tempering"])
    rbm_figure(rbm, history, r.paths["rbm_figure"], key=r.keys["rbm_figure"], sweeps=r.budget.rbm_figure_sweeps,
               tempered_samples=pt_samples, num_replicas=r.budget.rbm_pt_replicas)
    return results


def _jem_settings(budget: Budget, seed: int, fast: bool) -> dict[str, Any]:
    """Everything that determines the trained JEM: an earlier jem.ebm is reused only when equal."""
    return {
        "version": 1, "seed": seed, "fast": fast, "architecture": work.architecture(budget),
        "width": budget.jem_width, "depth": budget.jem_depth, "activation": "elu",
        "epochs": budget.jem_epochs, "patience": budget.jem_patience, "batch_size": 64,
        "optimizer": "adamax", "learning_rate": 1e-3, "langevin_steps": budget.jem_langevin_steps,
        "step_size": LANGEVIN_STEP, "noise_scale": LANGEVIN_NOISE, "persistent": False,
        "train_noise": work.JEM_TRAIN_NOISE, "data": "digits, scale signed",
    }


def _reuse_jem(path: Path, settings: dict[str, Any]):
    """``(model, history, path)`` from an earlier run with the same settings, else ``(None, None, None)``."""
    if not path.is_file():
        return None, None, None
    try:
        meta = load_metadata(path)
        user = meta["user"]
        if meta["family"] != ep.JEM.name or user.get("quickstart_settings") != settings:
            return None, None, None
        model = ep.load(path)
        h = user["history"]
        history = History(records=h["records"], monitor=h["monitor"], best_epoch=h["best_epoch"],
                          stopped=h["stopped"], message=h.get("message", ""))
    except (ValueError, KeyError, TypeError, OSError, NotImplementedError):
        return None, None, None  # damaged or foreign: train afresh
    if history.stopped == "diverged":
        return None, None, None  # a diverged run is trained again
    return model, history, path


def _jem_stages(r: _Run, signed, stage: _Clock) -> tuple[ep.Potential, dict[str, Any], Path | None]:
    """Train the JEM (or reuse an equal one), save it, measure it and draw Fig. 6.2; returns the model,
    summary.json's ``jem`` entry and where it was reused from (None: trained)."""
    stage(_STAGES[4])
    settings = _jem_settings(r.budget, r.args.seed, r.args.fast)
    jem, history, reused = _reuse_jem(r.paths["jem"], settings) if not r.args.retrain else (None, None, None)
    if jem is None:
        with warnings_to(r.notes):
            jem, history = work.train_jem(signed, r.budget, r.keys, r.progress)
        ep.save(r.paths["jem"], jem, metadata={
            "created_by": f"{PROG} quickstart", "model": "jem", "quickstart_settings": settings,
            "history": {"records": history.records, "monitor": history.monitor, "best_epoch": history.best_epoch,
                        "stopped": history.stopped, "message": history.message},
        })
    results = {
        "architecture": work.architecture(r.budget),
        "test_accuracy": float(jnp.mean(jem.classify(signed.x_test) == signed.y_test)),
        "test_energy_mean": float(jnp.mean(jem.energy(signed.x_test))),
        "epochs": len(history.records), "best_epoch": history.best_epoch,
        "best_val_accuracy": work.best_value(history, "val_accuracy"),
        "stopped": history.stopped, "stopped_message": history.message,
        "reused": reused is not None, "settings": settings,
    }
    stage(_STAGES[5])
    jem_figure(jem, signed.x_test, history, r.paths["jem_figure"], key=r.keys["jem_figure"],
               steps=20, step_size=LANGEVIN_STEP, noise_scale=LANGEVIN_NOISE)
    return jem, results, reused


def _sampling_stages(r: _Run, jem: ep.Potential, stage: _Clock):
    """MALA and the chapter's Langevin on the JEM's marginal energy from uniform noise: their
    summaries and diagnostics by name, their full reports and their draws as images."""
    x0 = jax.random.uniform(r.keys["sample_init"], (r.budget.sample_chains, jem.event_shape[0]),
                            minval=-1.0, maxval=1.0)
    samplers, diagnostics = {}, {}
    jem_box = jem.with_support(work.JEM_BOX)
    for name, kernel, target, label, options in (
            ("mala", "mala", jem, _STAGES[6], {}),
            ("langevin", "langevin", jem, _STAGES[7], {"step_size": LANGEVIN_STEP, "noise_scale": LANGEVIN_NOISE}),
            ("nuts_box", "nuts", jem_box, _STAGES[8], {})):
        stage(label)
        t0 = time.perf_counter()
        with warnings_to(r.notes):
            data = ep.sample(r.keys[name], target, kernel, num_chains=r.budget.sample_chains,
                             num_warmup=r.budget.sample_warmup, num_samples=r.budget.sample_draws,
                             init=x0, progress=r.progress, **options)
            seconds = time.perf_counter() - t0
            diagnostics[name] = ep.diagnose(data)
            ep.report(data, r.paths[f"{name}_report"], title=work.SAMPLER_TITLES[name],
                      num_worst=r.budget.report_worst)
        samplers[name] = work.sampler_summary(name, data, diagnostics[name], seconds, options)
        fig = draws_grid_figure(np.asarray(data.posterior["x"].values), (8, 8), work.SAMPLER_TITLES[name])
        write_atomic(r.paths[f"{name}_samples"], lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return samplers, diagnostics
