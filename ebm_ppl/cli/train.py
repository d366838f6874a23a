"""``ebm-ppl train``: train an RBM, a Gaussian-Bernoulli RBM, a subspace RBM, a classification RBM or
a JEM on the digits.

One call of :func:`ebm_ppl.fit` with the model's usual settings (overridable;
:mod:`ebm_ppl.cli.train_models`), checkpointed into the output folder every epoch (``--resume``
continues an interrupted or shorter run), followed by the training figure, the held-out figures
(exact test log-likelihood where log Z can be enumerated, test accuracy for the classifiers) and
``train.json`` with the settings and the per-epoch history.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import time
from pathlib import Path
from typing import Any

import jax

import ebm_ppl as ep
from ebm_ppl.cli import train_models as models
from ebm_ppl.cli.app import EXIT_OK, PROG, command
from ebm_ppl.cli.helpers import (finite_or_none, float_at_least, format_table, int_in, out_dir,
                                 print_hints, print_warnings, progress_enabled, quiet_option, seed_option,
                                 warnings_to, write_json)
from ebm_ppl.sharding import is_writer
from ebm_ppl.training.checkpoint import read_checkpoint_metadata
from ebm_ppl.diagnostics.training_figures import jem_figure, rbm_figure
from ebm_ppl.training.fit import CHECKPOINT, MODEL

__all__ = ["FIGURE", "RECORD", "DATA_SETS"]

DATA_SETS = ("digits",)
#: Files inside --out besides fit's model.ebm and checkpoint.ckpt.
FIGURE = "figure.png"
RECORD = "train.json"
#: Settings that may differ between a run and its --resume (the others must match).
_MAY_CHANGE_ON_RESUME = ("epochs",)


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=models.MODELS, metavar="MODEL",
                        help="rbm (Bernoulli RBM), grbm (Gaussian-Bernoulli RBM), subspace-rbm, class-rbm "
                        "(classification RBM), jem")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help=f"folder for {MODEL}, {CHECKPOINT}, {FIGURE} and {RECORD} (created; files replaced)")
    parser.add_argument("--data", choices=DATA_SETS, default="digits", metavar="NAME",
                        help="training data; the train / validation / test split is fixed [default: %(default)s]")
    parser.add_argument("--epochs", type=int_in(1), metavar="N",
                        help="passes over the 1000 training images (the total, when resuming) "
                        "[default: rbm, grbm, subspace-rbm 50; jem 40]")
    parser.add_argument("--hidden", type=int_in(1), metavar="M",
                        help="hidden units of rbm and grbm [default 16] and class-rbm [default 20], or the width "
                        "of the JEM's three hidden layers [default 512]")
    parser.add_argument("--gates", type=int_in(1), metavar="M", help="subspace-rbm: gate units [default 8]")
    parser.add_argument("--subspace", type=int_in(1), metavar="K",
                        help="subspace-rbm: subspace units per gate [default 2]")
    parser.add_argument("--objective", choices=("discriminative", "generative", "hybrid"), metavar="NAME",
                        help="class-rbm: -log p(y|x) (discriminative), -log p(x, y) (generative) or their sum with "
                        "weight --alpha on the generative part (hybrid) [default: hybrid]")
    parser.add_argument("--alpha", type=float_at_least(0.0, strict=False), metavar="F",
                        help="class-rbm: weight of the generative part of the hybrid objective [default: 0.01]")
    parser.add_argument("--lr", type=float_at_least(0.0, strict=True), metavar="F",
                        help="learning rate [default: rbm, subspace-rbm 0.1 (SGD, momentum 0.5); grbm 3e-3 "
                        "(Adam); class-rbm 0.01 (Adam); jem 1e-3 (Adamax)]")
    parser.add_argument("--batch-size", type=int_in(1, 1000), metavar="B",
                        help="minibatch size [default: 100; jem 64]")
    parser.add_argument("--k", type=int_in(1), metavar="K",
                        help="sampler steps per update: Gibbs sweeps of CD-k / PCD-k (RBMs, default 1) or "
                        "Langevin steps (jem, default 20)")
    chains = parser.add_mutually_exclusive_group()
    chains.add_argument("--persistent", dest="persistent", action="store_true", default=None,
                        help="RBMs: persistent CD, 100 chains kept across updates (the default)")
    chains.add_argument("--cd", dest="persistent", action="store_false",
                        help="RBMs: contrastive divergence, chains restarted at each batch")
    parser.add_argument("--replay-buffer", action="store_true",
                        help="jem: persistent Langevin chains in a replay buffer of 10000 (5%% restart from "
                        "noise) instead of short-run chains from uniform noise")
    parser.add_argument("--patience", type=int_in(1), metavar="P",
                        help="stop after P epochs without improvement of the monitored validation metric "
                        "[default: never; model.ebm is the best epoch by that metric either way]")
    parser.add_argument("--resume", action="store_true",
                        help=f"continue from DIR/{CHECKPOINT} (same options; --epochs may grow)")
    seed_option(parser, "seed of the initial weights, minibatches and samplers")
    quiet_option(parser)


@command(
    "train",
    help="train an rbm, grbm, subspace-rbm, class-rbm or jem on the digits, with checkpoints and figures",
    example=(
        "train rbm --epochs 50 --out runs/rbm\n"
        "train class-rbm --objective hybrid --alpha 0.01 --out runs/class-rbm\n"
        "train grbm --hidden 32 --epochs 100 --out runs/grbm\n"
        "train subspace-rbm --gates 8 --subspace 2 --out runs/subspace\n"
        "train jem --epochs 60 --replay-buffer --out runs/jem\n"
        "train jem --epochs 90 --replay-buffer --out runs/jem --resume"
    ),
    arguments=_train_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Train one model on the digits with ep.fit and save it, its figure and its history.

    Defaults (each overridable):
      rbm           Bernoulli RBM 64 x 16 on binarized digits; visible biases from the base-rate
                    model, W ~ 0.01 N(0, 1); PCD-1 with 100 chains, batch 100, SGD 0.1 momentum 0.5,
                    50 epochs; best epoch by the exact validation log-likelihood.
      grbm          Gaussian-Bernoulli RBM 64 x 16 on digits scaled to [-1, 1], sigma fixed at 0.4,
                    visible biases at the pixel means; PCD-1, batch 100, Adam 3e-3, 50 epochs.
      subspace-rbm  subspace RBM with 8 gates x 2 subspace units on binarized digits; PCD-1, batch
                    100, SGD 0.1 momentum 0.5, 50 epochs.
      class-rbm     classification RBM (Larochelle & Bengio 2008): 64 binarized pixels and a
                    one-hot label x 20 hidden units; hybrid objective -log p(y|x) - 0.01 log p(x, y)
                    (the generative part by PCD-1, 100 labelled chains), batch 100, Adam 0.01, 50
                    epochs; best epoch by validation accuracy (by the exact pixel log-likelihood
                    for --objective generative).
      jem           the chapter's 64-512-512-512-10 ELU classifier as a joint energy model on digits
                    in [-1, 1] (training noise 0.03): batch 64, Adamax 1e-3, 20 short-run Langevin
                    steps (alpha 1, sigma 0.01) from uniform noise (--replay-buffer: persistent
                    chains), 40 epochs, keeping the epoch with the best validation accuracy.

    Writes into DIR: model.ebm (the best epoch's model), checkpoint.ckpt (the full training state,
    every epoch; --resume continues from it), figure.png (filters, samples and log-likelihood
    curves for the RBMs; the chapter's Fig. 6.2 for the JEM) and train.json (settings, history,
    results). Prints the best epoch, the final validation metrics, the exact test log-likelihood
    where log Z can be enumerated (against independent pixels for binary models) or the JEM's test
    accuracy.

    Exit status: 0 on success, also when training diverged: ep.fit then restored the last good
    state, lowered the step size and finally stopped; the command prints a one-line warning on
    stderr and saves that last good model. 2 for a bad option or an unusable DIR.
    """
    settings = models.settings(args)
    with out_dir(args.out) as out:
        return _train(args, settings, out)


def _train(args: argparse.Namespace, settings: dict[str, Any], out: Path) -> int:
    """Train, save, evaluate and report (``run`` once the settings and the folder are checked)."""
    record_path, ckpt_path = out / RECORD, out / CHECKPOINT
    resumed_from, stopped = _check_resume(record_path, ckpt_path, settings) if args.resume else (None, None)
    data = models.load_data(args.model, args.seed)
    model0 = models.initial_model(args.model, settings, data, jax.random.fold_in(jax.random.key(args.seed), 0))
    record = {"command": "train", "ebm_ppl_version": ep.__version__, "status": "running", "settings": settings}
    write_json(record_path, record)

    fit_data, validation = models.fit_arrays(args.model, data)
    print(_plan_line(args, settings, model0, out, resumed_from, stopped), flush=True)
    notes: list[str] = []
    t0 = time.perf_counter()
    try:
        with warnings_to(notes):
            model, history = ep.fit(
                model0, fit_data, models.estimator(args.model, settings),
                key=jax.random.fold_in(jax.random.key(args.seed), 1),
                optimizer=models.OPTIMIZERS[settings["optimizer"]](settings["lr"]), epochs=settings["epochs"],
                batch_size=settings["batch_size"], validation=validation, patience=settings["patience"],
                checkpoint_dir=out, checkpoint_every=1, resume=args.resume, progress=progress_enabled(args.quiet),
                monitor=models.monitor(args.model, settings),
            )
    except BaseException as exc:  # Ctrl-C included: train.json must not keep saying "running"
        _record_stop(record_path, record, exc, ckpt_path)
        raise
    seconds = time.perf_counter() - t0
    print_warnings(notes)

    results = models.evaluate(args.model, model, data)
    model_path, figure_path = out / MODEL, out / FIGURE
    if is_writer():  # process 0 of a multi-process run (write_json checks by itself)
        ep.save(model_path, model, metadata={
            "created_by": f"{PROG} train", "model": args.model, "settings": settings,
            "epochs": len(history.records), "best_epoch": history.best_epoch, "stopped": history.stopped,
            **{k: v for k, v in results.items() if isinstance(v, (int, float)) and math.isfinite(v)},
        })
        fig_key = jax.random.fold_in(jax.random.key(args.seed), 2)
        if args.model == "jem":
            jem_figure(model, data.x_test, history, figure_path, key=fig_key, steps=settings["k"])
        else:
            rbm_figure(model, history, figure_path, key=fig_key,
                       metric="accuracy" if models.monitor(args.model, settings) == "val_accuracy" else None)
    write_json(record_path, finite_or_none({
        "command": "train", "ebm_ppl_version": ep.__version__, "status": history.stopped,
        "message": history.message, "settings": settings, "seconds": seconds,
        "resumed_after_epochs": resumed_from, "epochs": len(history.records), "best_epoch": history.best_epoch,
        "monitor": history.monitor, "recoveries": history.recoveries,
        "final": history.records[-1] if history.records else {}, "results": results,
        "history": history.records, "files": {"model": MODEL, "checkpoint": CHECKPOINT, "figure": FIGURE},
    }))

    _print_results(args, history, results, seconds, out)
    if not args.quiet:
        print_hints("Next steps:", _hints(args, settings, out))
    return EXIT_OK


def _plan_line(args: argparse.Namespace, s: dict[str, Any], model0: ep.Potential, out: Path,
               resumed_from: int | None, stopped: str | None = None) -> str:
    """One line saying what is trained, on what, how, and from where."""
    epochs = s["epochs"]
    return (f"Training {args.model} ({models.describe(model0, s)}) on {models.DATA_TEXT[args.model]}: "
            f"{models.estimator_text(s)}, batch {s['batch_size']}, "
            f"{models.OPTIMIZER_NAMES[s['optimizer']]} learning rate {s['lr']:g}, "
            f"{epochs} epoch{'s' if epochs != 1 else ''}"
            + (f", early stopping after {s['patience']} epochs without improvement" if s["patience"] else "")
            + (f"; resuming from {CHECKPOINT} after {resumed_from} completed epochs" if resumed_from is not None else "")
            + (f"; nothing left to train (the run had stopped: {stopped})"
               if resumed_from is not None and stopped not in (None, "completed") else
               "; nothing left to train (raise --epochs to continue)"
               if resumed_from is not None and resumed_from >= epochs else "")
            + (f"; no checkpoint in {out}, starting from scratch" if args.resume and resumed_from is None else "")
            + ".")


def _record_stop(record_path: Path, record: dict[str, Any], exc: BaseException, ckpt_path: Path) -> None:
    """Replace the "running" status of ``train.json`` by "interrupted" (Ctrl-C) or "failed", with
    what happened and whether a checkpoint is there to resume from; a failure to write is ignored
    (the original exception is what the user must see)."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    message = "interrupted (Ctrl-C)" if interrupted else f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    if ckpt_path.is_file():
        message += f"; --resume continues from {CHECKPOINT}"
    try:
        write_json(record_path, {**record, "status": "interrupted" if interrupted else "failed", "message": message})
    except (OSError, ValueError):
        pass


def _check_resume(record_path: Path, ckpt_path: Path,
                  settings: dict[str, Any]) -> tuple[int | None, str | None]:
    """How many epochs the checkpoint to resume has completed and why its run stopped
    (``"completed"`` while it runs), ``(None, None)`` when there is none; refuses more epochs than
    ``--epochs``, a
    folder trained with other settings (one line naming the differences), and one whose settings
    cannot be checked because ``train.json`` is missing or damaged (resuming with other settings
    would silently continue a different run)."""
    if not ckpt_path.is_file():
        return None, None
    try:
        before = json.loads(record_path.read_text(encoding="utf-8")).get("settings")
    except (OSError, ValueError, AttributeError):
        before = None
    if not isinstance(before, dict) or not before:
        state = "missing" if not record_path.is_file() else "damaged (no settings in it)"
        raise ValueError(f"--resume: {record_path} is {state}, so the settings {ckpt_path.name} was trained with "
                         f"cannot be checked; restore {record_path.name}, or start afresh with a new --out "
                         f"(or without --resume after deleting {ckpt_path})")
    diffs = [f"{k} {before.get(k)!r} (now {v!r})" for k, v in settings.items()
             if k not in _MAY_CHANGE_ON_RESUME and before.get(k) != v]
    if diffs:
        raise ValueError(f"--resume: {ckpt_path.parent} was trained with other settings: {', '.join(diffs)}; "
                         "repeat that run's options or choose a new --out")
    try:
        meta = read_checkpoint_metadata(ckpt_path)
    except ValueError as exc:
        raise ValueError(f"--resume: {exc}") from None
    epoch = meta.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise ValueError(f"--resume: checkpoint {str(ckpt_path)!r} is damaged or not a checkpoint (no epoch recorded)")
    if epoch + 1 > settings["epochs"]:  # refused here, before train.json is touched
        raise ValueError(f"--resume: {ckpt_path.name} already holds {epoch + 1} epochs, more than --epochs "
                         f"{settings['epochs']}; pass --epochs {epoch + 1} or more")
    return epoch + 1, str(meta.get("stopped", "completed"))


def _print_results(args, history, results, seconds, out: Path) -> None:
    """The epochs, the best and last validation metrics, the held-out result and the files."""
    stopped = {"completed": "completed", "early stopping": f"stopped early ({history.message})",
               "diverged": "DIVERGED (see the warning); kept the last good model"}.get(history.stopped,
                                                                                      history.stopped)
    print(f"({seconds:.1f} s on {jax.default_backend()}, compilation included)")
    print()
    print(f"Epochs: {len(history.records)} recorded, {stopped}; best epoch {history.best_epoch} by {history.monitor}"
          + (f"; {history.recoveries} divergence recoveries" if history.recoveries else ""))
    if history.records:
        last = history.records[-1]
        best = next((r for r in history.records if r["epoch"] == history.best_epoch), last)
        rows = [[k, f"{best.get(k, float('nan')):.4f}", f"{last[k]:.4f}"] for k in last if k.startswith("val_")]
        print(format_table(["validation metric", f"best (epoch {best['epoch']})", f"last (epoch {last['epoch']})"],
                           rows))
    print()
    model_path = out / MODEL
    if args.model in ("jem", "class-rbm"):
        print(f"Test accuracy {results['test_accuracy']:.4f} (validation {results['val_accuracy']:.4f}) "
              "with the best epoch's model")
    if args.model == "jem":
        pass  # a JEM on R^64 has no log Z (see ebm-ppl quickstart for its box-supported test log-likelihood)
    elif results.get("exact_log_z") is not None:
        line = (f"Exact log Z {results['exact_log_z']:.4f}; test log-likelihood {results['test_log_likelihood']:.3f} "
                f"nats/image")
        if "independent_pixels_test_log_likelihood" in results:
            line += (f" ({results['test_bits_per_pixel']:.4f} bits/pixel; independent pixels "
                     f"{results['independent_pixels_test_log_likelihood']:.3f})")
        print(line)
    else:
        print(f"Exact test log-likelihood not feasible: {results.get('note', '')}")
        print(f"  estimate it with: {PROG} logz {shlex.quote(str(model_path))} --reverse --data digits")
    print()
    print(f"Saved to {out}/:")
    print(f"  {model_path}   (best epoch's model)")
    print(f"  {out / FIGURE}")
    print(f"  {out / CHECKPOINT}   (--resume continues from it)")
    print(f"  {out / RECORD}   (settings and per-epoch history)")


def _hints(args: argparse.Namespace, s: dict[str, Any], out: Path) -> list[tuple[str, str]]:
    model_file = shlex.quote(str(out / MODEL))
    kernel = "" if args.model != "jem" else " --kernel mala"
    hints = [
        (f"{PROG} sample {model_file}{kernel} --out {shlex.quote(str(out / 'samples'))}", "MCMC draws + diagnostics"),
        (f"{PROG} report {shlex.quote(str(out / 'samples'))}", "their HTML report"),
    ]
    if args.model != "jem":
        hints.append((f"{PROG} logz {model_file} --reverse --data digits", "AIS sandwich of log Z"))
    hints.append((f"{PROG} train {args.model} --epochs {2 * s['epochs']} --out {shlex.quote(str(out))} --resume"
                  + _same_options(args), "train longer"))
    return hints


def _same_options(args: argparse.Namespace) -> str:
    """The options of this run that a ``--resume`` must repeat, as command-line text."""
    parts = []
    for flag, value in (("--hidden", args.hidden), ("--gates", args.gates), ("--subspace", args.subspace),
                        ("--objective", args.objective), ("--alpha", args.alpha), ("--lr", args.lr), ("--batch-size", args.batch_size), ("--k", args.k),
                        ("--patience", args.patience)):
        if value is not None:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    if args.persistent is False:
        parts.append("--cd")
    if args.replay_buffer:
        parts.append("--replay-buffer")
    if args.seed:
        parts.append(f"--seed {args.seed}")
    return "".join(" " + p for p in parts)
