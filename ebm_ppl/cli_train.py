"""``ebm-ppl train``: train an RBM, a Gaussian-Bernoulli RBM, a subspace RBM or a JEM on the digits.

One call of :func:`ebm_ppl.fit` with the model's usual settings (overridable), checkpointed into the
output folder every epoch (``--resume`` continues an interrupted or shorter run), followed by the
training figure, the held-out figures (exact test log-likelihood where log Z can be enumerated,
test accuracy for the JEM) and ``train.json`` with the settings and the per-epoch history.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax

import ebm_ppl as ep
from ebm_ppl._version import __version__
from ebm_ppl.cli import (
    EXIT_OK,
    PROG,
    _describe_model,
    _finite_or_none,
    _float_at_least,
    _format_table,
    _int_in,
    _prepare_out_dir,
    _progress_enabled,
    _warnings_to,
    _write_json,
    command,
)
from ebm_ppl.training.checkpoint import read_checkpoint_metadata
from ebm_ppl.training.figures import jem_figure, rbm_figure
from ebm_ppl.training.fit import CHECKPOINT, MODEL

__all__ = ["MODELS", "DEFAULTS", "FIGURE", "RECORD"]

MODELS = ("rbm", "grbm", "subspace-rbm", "jem")
DATA_SETS = ("digits",)
#: Files inside --out besides fit's model.ebm and checkpoint.ckpt.
FIGURE = "figure.png"
RECORD = "train.json"
#: Sigma of the Gaussian-Bernoulli RBM's visible units, fixed during training (fit freezes it).
GRBM_SIGMA = 0.4
JEM_TRAIN_NOISE = 0.03
INIT_SCALE = 0.01

#: Per-model defaults; every one can be overridden by its option.
DEFAULTS: dict[str, dict[str, Any]] = {
    "rbm": {"epochs": 50, "lr": 0.1, "batch_size": 100, "k": 1, "hidden": 16, "optimizer": "sgd",
            "patience": None},
    "grbm": {"epochs": 50, "lr": 3e-3, "batch_size": 100, "k": 1, "hidden": 16, "optimizer": "adam",
             "patience": None},
    "subspace-rbm": {"epochs": 50, "lr": 0.1, "batch_size": 100, "k": 1, "gates": 8, "subspace": 2,
                     "optimizer": "sgd", "patience": None},
    # JEM: no early stopping by default. The validation accuracy has long flat stretches before it
    # rises; over 12 seeds (benchmarks/jem_vs_torch.py, 60 epochs) the best validation epoch of 40
    # gave 0.916 mean test accuracy (worst 0.897), patience 10 stopped too soon: 0.906 (worst 0.879).
    "jem": {"epochs": 40, "lr": 1e-3, "batch_size": 64, "k": 20, "hidden": 512, "optimizer": "adamax",
            "patience": None},
}
_DATA = {
    "rbm": "digits, binarized (pixel >= 8)",
    "subspace-rbm": "digits, binarized (pixel >= 8)",
    "grbm": "digits, scaled to [-1, 1]",
    "jem": f"digits, scaled to [-1, 1], Gaussian noise {JEM_TRAIN_NOISE} on the training images",
}
_OPTIMIZERS = {
    "sgd": lambda lr: optax.sgd(lr, momentum=0.5),
    "adam": optax.adam,
    "adamax": optax.adamax,
}
_OPTIMIZER_NAMES = {"sgd": "SGD (momentum 0.5)", "adam": "Adam", "adamax": "Adamax"}
#: Settings that may differ between a run and its --resume (the others must match).
_MAY_CHANGE_ON_RESUME = ("epochs",)


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=MODELS, metavar="MODEL",
                        help="rbm (Bernoulli RBM), grbm (Gaussian-Bernoulli RBM), subspace-rbm, jem")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help=f"folder for {MODEL}, {CHECKPOINT}, {FIGURE} and {RECORD} (created; files replaced)")
    parser.add_argument("--data", choices=DATA_SETS, default="digits", metavar="NAME",
                        help="training data; the train / validation / test split is fixed [default: %(default)s]")
    parser.add_argument("--epochs", type=_int_in(1), metavar="N",
                        help="passes over the 1000 training images (the total, when resuming) "
                        "[default: rbm, grbm, subspace-rbm 50; jem 30]")
    parser.add_argument("--hidden", type=_int_in(1), metavar="M",
                        help="hidden units of rbm and grbm [default 16], or the width of the JEM's three "
                        "hidden layers [default 512]")
    parser.add_argument("--gates", type=_int_in(1), metavar="M", help="subspace-rbm: gate units [default 8]")
    parser.add_argument("--subspace", type=_int_in(1), metavar="K",
                        help="subspace-rbm: subspace units per gate [default 2]")
    parser.add_argument("--lr", type=_float_at_least(0.0, strict=True), metavar="F",
                        help="learning rate [default: rbm, subspace-rbm 0.1 (SGD, momentum 0.5); grbm 3e-3 "
                        "(Adam); jem 1e-3 (Adamax)]")
    parser.add_argument("--batch-size", type=_int_in(1, 1000), metavar="B",
                        help="minibatch size [default: 100; jem 64]")
    parser.add_argument("--k", type=_int_in(1), metavar="K",
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
    parser.add_argument("--patience", type=_int_in(1), metavar="P",
                        help="stop after P epochs without improvement of the monitored validation metric "
                        "[default: never; model.ebm is the best epoch by that metric either way]")
    parser.add_argument("--resume", action="store_true",
                        help=f"continue from DIR/{CHECKPOINT} (same options; --epochs may grow)")
    parser.add_argument("--seed", type=_int_in(0, 2**32 - 1), default=0, metavar="INT",
                        help="seed of the initial weights, minibatches and samplers [default: %(default)s]")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no next-step hints")


@command(
    "train",
    help="train an rbm, grbm, subspace-rbm or jem on the digits, with checkpoints and figures",
    example=(
        "train rbm --epochs 50 --out runs/rbm\n"
        "train grbm --hidden 32 --epochs 100 --out runs/grbm\n"
        "train subspace-rbm --gates 8 --subspace 2 --out runs/subspace\n"
        "train jem --epochs 60 --replay-buffer --out runs/jem\n"
        "train jem --epochs 90 --replay-buffer --out runs/jem --resume"
    ),
    arguments=_train_arguments,
)
def _train(args: argparse.Namespace) -> int:
    """Train one model on the digits with ep.fit and save it, its figure and its history.

    Defaults (each overridable):
      rbm           Bernoulli RBM 64 x 16 on binarized digits; visible biases from the base-rate
                    model, W ~ 0.01 N(0, 1); PCD-1 with 100 chains, batch 100, SGD 0.1 momentum 0.5,
                    50 epochs; best epoch by the exact validation log-likelihood.
      grbm          Gaussian-Bernoulli RBM 64 x 16 on digits scaled to [-1, 1], sigma fixed at 0.4,
                    visible biases at the pixel means; PCD-1, batch 100, Adam 3e-3, 50 epochs.
      subspace-rbm  subspace RBM with 8 gates x 2 subspace units on binarized digits; PCD-1, batch
                    100, SGD 0.1 momentum 0.5, 50 epochs.
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
    settings = _settings(args)
    out = _prepare_out_dir(args.out)
    record_path, ckpt_path = out / RECORD, out / CHECKPOINT
    resumed_from = None
    if args.resume:
        resumed_from = _check_resume(record_path, ckpt_path, settings)
    data = _load_data(args.model, args.seed)
    model0 = _initial_model(args.model, settings, data, jax.random.fold_in(jax.random.key(args.seed), 0))
    _write_json(record_path, {"command": "train", "ebm_ppl_version": __version__, "status": "running",
                              "settings": settings})

    fit_data, validation = _fit_arrays(args.model, data)
    estimator = _estimator(args.model, settings)
    optimizer = _OPTIMIZERS[settings["optimizer"]](settings["lr"])
    epochs = settings["epochs"]
    print(f"Training {args.model} ({_describe(model0, settings)}) on {_DATA[args.model]}: "
          f"{_estimator_text(settings)}, batch {settings['batch_size']}, "
          f"{_OPTIMIZER_NAMES[settings['optimizer']]} learning rate {settings['lr']:g}, "
          f"{epochs} epoch{'s' if epochs != 1 else ''}"
          + (f", early stopping after {settings['patience']} epochs without improvement" if settings["patience"] else "")
          + (f"; resuming from {CHECKPOINT} after {resumed_from} completed epochs" if resumed_from is not None else "")
          + ("; nothing left to train (raise --epochs to continue)"
             if resumed_from is not None and resumed_from >= epochs else "")
          + (f"; no checkpoint in {out}, starting from scratch" if args.resume and resumed_from is None else "")
          + ".", flush=True)
    notes: list[str] = []
    t0 = time.perf_counter()
    with _warnings_to(notes):
        model, history = ep.fit(
            model0, fit_data, estimator, key=jax.random.fold_in(jax.random.key(args.seed), 1),
            optimizer=optimizer, epochs=settings["epochs"], batch_size=settings["batch_size"],
            validation=validation, patience=settings["patience"], checkpoint_dir=out, checkpoint_every=1,
            resume=args.resume, progress=_progress_enabled(args.quiet),
        )
    seconds = time.perf_counter() - t0
    for note in notes:
        print(f"{PROG}: warning: {note}", file=sys.stderr)

    results = _evaluate(args.model, model, data)
    model_path, figure_path = out / MODEL, out / FIGURE
    ep.save(model_path, model, metadata={
        "created_by": f"{PROG} train", "model": args.model, "settings": settings,
        "epochs": len(history.records), "best_epoch": history.best_epoch, "stopped": history.stopped,
        **{k: v for k, v in results.items() if isinstance(v, (int, float)) and math.isfinite(v)},
    })
    fig_key = jax.random.fold_in(jax.random.key(args.seed), 2)
    if args.model == "jem":
        jem_figure(model, data.x_test, history, figure_path, key=fig_key, steps=settings["k"])
    else:
        rbm_figure(model, history, figure_path, key=fig_key)
    last = history.records[-1] if history.records else {}
    _write_json(record_path, _finite_or_none({
        "command": "train", "ebm_ppl_version": __version__, "status": history.stopped,
        "message": history.message, "settings": settings, "seconds": seconds,
        "resumed_after_epochs": resumed_from, "epochs": len(history.records), "best_epoch": history.best_epoch,
        "monitor": history.monitor, "recoveries": history.recoveries, "final": last, "results": results,
        "history": history.records, "files": {"model": MODEL, "checkpoint": CHECKPOINT, "figure": FIGURE},
    }))

    _print_results(args, settings, history, results, seconds, out, model_path, figure_path, record_path)
    return EXIT_OK


# -- settings -----------------------------------------------------------------------------------
def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings: the model's defaults overridden by the options; refuses options that do
    not apply to the model (one line, exit 2)."""
    model = args.model
    d = DEFAULTS[model]
    misplaced = []
    if model == "subspace-rbm" and args.hidden is not None:
        misplaced.append(("--hidden", "rbm, grbm, jem (subspace-rbm takes --gates and --subspace)"))
    if model != "subspace-rbm":
        misplaced += [(flag, "subspace-rbm") for flag, v in (("--gates", args.gates), ("--subspace", args.subspace))
                      if v is not None]
    if model == "jem" and args.persistent is not None:
        misplaced.append(("--persistent" if args.persistent else "--cd",
                          "the RBMs (jem draws short-run Langevin chains, or keeps them with --replay-buffer)"))
    if model != "jem" and args.replay_buffer:
        misplaced.append(("--replay-buffer", "jem (the RBMs keep persistent chains with --persistent, the default)"))
    if misplaced:
        flag, where = misplaced[0]
        raise ValueError(f"{flag} applies to {where}, not to {model}")
    s: dict[str, Any] = {
        "model": model, "data": args.data, "seed": args.seed,
        "epochs": args.epochs if args.epochs is not None else d["epochs"],
        "lr": args.lr if args.lr is not None else d["lr"],
        "batch_size": args.batch_size if args.batch_size is not None else d["batch_size"],
        "k": args.k if args.k is not None else d["k"],
        "optimizer": d["optimizer"],
        "patience": args.patience if args.patience is not None else d["patience"],
    }
    if model == "subspace-rbm":
        s["gates"] = args.gates if args.gates is not None else d["gates"]
        s["subspace"] = args.subspace if args.subspace is not None else d["subspace"]
    else:
        s["hidden"] = args.hidden if args.hidden is not None else d["hidden"]
    if model == "jem":
        s.update(persistent=bool(args.replay_buffer), depth=3, activation="elu", step_size=1.0, noise_scale=0.01,
                 train_noise=JEM_TRAIN_NOISE)
        if s["persistent"]:
            s.update(buffer_size=10_000, reinit_prob=0.05)
    else:
        s.update(persistent=True if args.persistent is None else bool(args.persistent))
        if s["persistent"]:
            s["num_chains"] = 100
    if model == "grbm":
        s["sigma"] = GRBM_SIGMA
    return s


def _check_resume(record_path: Path, ckpt_path: Path, settings: dict[str, Any]) -> int | None:
    """How many epochs the checkpoint to resume has completed, None when there is none; refuses a
    folder trained with other settings (one line naming the differences)."""
    if not ckpt_path.is_file():
        return None
    if record_path.is_file():
        try:
            before = json.loads(record_path.read_text(encoding="utf-8")).get("settings") or {}
        except (OSError, ValueError):
            before = {}
        diffs = [f"{k} {before.get(k)!r} (now {v!r})" for k, v in settings.items()
                 if k not in _MAY_CHANGE_ON_RESUME and before and before.get(k) != v]
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
    return epoch + 1


# -- data, models, estimators ---------------------------------------------------------------------
def _load_data(model: str, seed: int):
    if model in ("rbm", "subspace-rbm"):
        return ep.data.digits(binarize=True)
    if model == "grbm":
        return ep.data.digits(scale="signed")
    return ep.data.digits(scale="signed", train_noise=JEM_TRAIN_NOISE,
                          key=jax.random.fold_in(jax.random.key(seed), 3))


def _initial_model(model: str, s: dict[str, Any], data, key) -> ep.Potential:
    n_visible = data.x_train.shape[1]
    # visible biases from the training data's marginals (Hinton's guide, Sec. 8.1)
    if model == "rbm":
        return ep.BernoulliRBM.init(key, n_visible, s["hidden"], scale=INIT_SCALE, data=data.x_train)
    if model == "subspace-rbm":
        return ep.SubspaceRBM.init(key, n_visible, s["gates"], s["subspace"], scale=INIT_SCALE, data=data.x_train)
    if model == "grbm":
        init = ep.GaussianBernoulliRBM.init(key, n_visible, s["hidden"], scale=INIT_SCALE, data=data.x_train)
        return ep.GaussianBernoulliRBM(init.W, init.b, init.c, jnp.full(n_visible, s["sigma"], init.W.dtype))
    return ep.JEM.init(key, n_visible, 10, width=s["hidden"], depth=s["depth"], activation=s["activation"])


def _fit_arrays(model: str, data):
    if model == "jem":
        return (data.x_train, data.y_train), (data.x_val, data.y_val)
    return data.x_train, data.x_val


def _estimator(model: str, s: dict[str, Any]):
    if model == "jem":
        extra = {"buffer_size": s["buffer_size"], "reinit_prob": s["reinit_prob"]} if s["persistent"] else {}
        return ep.training.jem(langevin_steps=s["k"], step_size=s["step_size"], noise_scale=s["noise_scale"],
                               persistent=s["persistent"], **extra)
    if s["persistent"]:
        return ep.training.pcd(k=s["k"], num_chains=s["num_chains"])
    return ep.training.cd(k=s["k"])


def _describe(model: ep.Potential, s: dict[str, Any]) -> str:
    if s["model"] == "subspace-rbm":
        return f"64 visible x {s['gates']} gates x {s['subspace']} subspace units, binary"
    if s["model"] == "jem":
        return "-".join(["64", *[str(s["hidden"])] * s["depth"], "10"]) + f" {s['activation'].upper()} classifier"
    return _describe_model(model)


def _estimator_text(s: dict[str, Any]) -> str:
    if s["model"] == "jem":
        chains = "replay buffer of 10000" if s["persistent"] else "short-run chains from uniform noise"
        return (f"{s['k']} Langevin steps (alpha {s['step_size']:g}, sigma {s['noise_scale']:g}) per batch, "
                f"{chains}")
    return f"PCD-{s['k']} ({s['num_chains']} chains)" if s["persistent"] else f"CD-{s['k']}"


# -- evaluation -----------------------------------------------------------------------------------
def _evaluate(model_name: str, model: ep.Potential, data) -> dict[str, Any]:
    """Test accuracy (jem), or the exact test log-likelihood where log Z can be enumerated."""
    if model_name == "jem":
        return {"test_accuracy": float(jnp.mean(model.classify(data.x_test) == data.y_test)),
                "val_accuracy": float(jnp.mean(model.classify(data.x_val) == data.y_val))}
    out: dict[str, Any] = {}
    try:
        log_z = float(ep.log_partition(model))
    except ValueError as exc:
        out["exact_log_z"] = None
        out["note"] = " ".join(str(exc).split())
        return out
    out["exact_log_z"] = log_z
    for split in ("val", "test"):
        out[f"{split}_log_likelihood"] = float(jnp.mean(ep.log_likelihood(model, getattr(data, f"x_{split}"), log_z)))
    if model.support == ep.Support.BINARY:
        base = ep.BernoulliRBM.base_rate(data.x_train, 1)
        base_ll = float(jnp.mean(ep.log_likelihood(base, data.x_test, float(ep.log_partition(base)))))
        out["independent_pixels_test_log_likelihood"] = base_ll
        out["test_bits_per_pixel"] = -out["test_log_likelihood"] / (data.x_test.shape[1] * math.log(2.0))
    return out


# -- output ---------------------------------------------------------------------------------------
def _print_results(args, s, history, results, seconds, out: Path, model_path: Path, figure_path: Path,
                   record_path: Path) -> None:
    n = len(history.records)
    stopped = {"completed": "completed", "early stopping": f"stopped early ({history.message})",
               "diverged": "DIVERGED (see the warning); kept the last good model"}.get(history.stopped,
                                                                                      history.stopped)
    print(f"({seconds:.1f} s on {jax.default_backend()}, compilation included)")
    print()
    print(f"Epochs: {n} recorded, {stopped}; best epoch {history.best_epoch} by {history.monitor}"
          + (f"; {history.recoveries} divergence recoveries" if history.recoveries else ""))
    if history.records:
        last = history.records[-1]
        best = next((r for r in history.records if r["epoch"] == history.best_epoch), last)
        names = [k for k in last if k.startswith("val_")]
        rows = [[k, f"{best.get(k, float('nan')):.4f}", f"{last[k]:.4f}"] for k in names]
        print(_format_table(["validation metric", f"best (epoch {best['epoch']})", f"last (epoch {last['epoch']})"],
                            rows))
    print()
    if args.model == "jem":
        print(f"Test accuracy {results['test_accuracy']:.4f} (validation {results['val_accuracy']:.4f}) "
              "with the best epoch's model")
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
    print(f"  {figure_path}")
    print(f"  {out / CHECKPOINT}   (--resume continues from it)")
    print(f"  {record_path}   (settings and per-epoch history)")
    if args.quiet:
        return
    model_file = shlex.quote(str(model_path))
    kernel = "" if args.model != "jem" else " --kernel mala"
    hints = [
        (f"{PROG} sample {model_file}{kernel} --out {shlex.quote(str(out / 'samples'))}", "MCMC draws + diagnostics"),
        (f"{PROG} report {shlex.quote(str(out / 'samples'))}", "their HTML report"),
    ]
    if args.model != "jem":
        hints.append((f"{PROG} logz {model_file} --reverse --data digits", "AIS sandwich of log Z"))
    hints.append((f"{PROG} train {args.model} --epochs {2 * s['epochs']} --out {shlex.quote(str(out))} --resume"
                  + _same_options(args), "train longer"))
    width = max(len(c) for c, _ in hints)
    print()
    print("Next steps:")
    for cmd, note in hints:
        print(f"  {cmd.ljust(width)}   # {note}")


def _same_options(args: argparse.Namespace) -> str:
    parts = []
    for flag, value in (("--hidden", args.hidden), ("--gates", args.gates), ("--subspace", args.subspace),
                        ("--lr", args.lr), ("--batch-size", args.batch_size), ("--k", args.k),
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
