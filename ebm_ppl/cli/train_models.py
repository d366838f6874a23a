"""The models ``ebm-ppl train`` trains: their default settings, data, initial models, estimators,
descriptions and held-out evaluation, each keyed by the MODEL argument."""

from __future__ import annotations

import argparse
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

import ebm_ppl as ep
from ebm_ppl.cli.helpers import describe_model

__all__ = ["MODELS", "DEFAULTS", "DATA_TEXT", "OPTIMIZERS", "OPTIMIZER_NAMES", "settings", "load_data",
           "initial_model", "fit_arrays", "estimator", "describe", "estimator_text", "evaluate", "monitor"]

MODELS = ("rbm", "grbm", "subspace-rbm", "class-rbm", "jem")
#: Sigma of the Gaussian-Bernoulli RBM's visible units, fixed during training (fit freezes it).
GRBM_SIGMA = 0.4
JEM_TRAIN_NOISE = 0.03
INIT_SCALE = 0.01

#: Per-model defaults; every one can be overridden by its option. The JEM trains every epoch and
#: keeps the best by validation accuracy (no early stopping; see benchmarks/README.md).
DEFAULTS: dict[str, dict[str, Any]] = {
    "rbm": {"epochs": 50, "lr": 0.1, "batch_size": 100, "k": 1, "hidden": 16, "optimizer": "sgd",
            "patience": None},
    "grbm": {"epochs": 50, "lr": 3e-3, "batch_size": 100, "k": 1, "hidden": 16, "optimizer": "adam",
             "patience": None},
    "subspace-rbm": {"epochs": 50, "lr": 0.1, "batch_size": 100, "k": 1, "gates": 8, "subspace": 2,
                     "optimizer": "sgd", "patience": None},
    "class-rbm": {"epochs": 50, "lr": 0.01, "batch_size": 100, "k": 1, "hidden": 20, "optimizer": "adam",
                  "patience": None, "objective": "hybrid", "alpha": 0.01},
    "jem": {"epochs": 40, "lr": 1e-3, "batch_size": 64, "k": 20, "hidden": 512, "optimizer": "adamax",
            "patience": None},
}
#: The training data of each model, in words.
DATA_TEXT = {
    "rbm": "digits, binarized (pixel >= 8)",
    "subspace-rbm": "digits, binarized (pixel >= 8)",
    "grbm": "digits, scaled to [-1, 1]",
    "class-rbm": "digits, binarized (pixel >= 8), with their labels",
    "jem": f"digits, scaled to [-1, 1], Gaussian noise {JEM_TRAIN_NOISE} on the training images",
}
OPTIMIZERS = {
    "sgd": lambda lr: optax.sgd(lr, momentum=0.5),
    "adam": optax.adam,
    "adamax": optax.adamax,
}
OPTIMIZER_NAMES = {"sgd": "SGD (momentum 0.5)", "adam": "Adam", "adamax": "Adamax"}


def _misplaced_options(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``(flag, the models it applies to)`` for each given option that does not apply to the model."""
    model = args.model
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
    if model == "class-rbm" and args.persistent is not None:
        misplaced.append(("--persistent" if args.persistent else "--cd",
                          "rbm, grbm, subspace-rbm (class-rbm's generative part always keeps 100 labelled chains)"))
    if model != "class-rbm":
        misplaced += [(flag, "class-rbm") for flag, v in (("--objective", args.objective), ("--alpha", args.alpha))
                      if v is not None]
    return misplaced


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings: the model's defaults overridden by the options; refuses options that do
    not apply to the model (one line, exit 2)."""
    model = args.model
    d = DEFAULTS[model]
    misplaced = _misplaced_options(args)
    if misplaced:
        flag, where = misplaced[0]
        raise ValueError(f"{flag} applies to {where}, not to {model}")

    def given(name: str) -> Any:
        value = getattr(args, name)
        return d[name] if value is None else value

    s: dict[str, Any] = {"model": model, "data": args.data, "seed": args.seed, "epochs": given("epochs"),
                         "lr": given("lr"), "batch_size": given("batch_size"), "k": given("k"),
                         "optimizer": d["optimizer"], "patience": given("patience")}
    if model == "subspace-rbm":
        s.update(gates=given("gates"), subspace=given("subspace"))
    else:
        s["hidden"] = given("hidden")
    if model == "class-rbm":
        s.update(objective=given("objective"), alpha=given("alpha"), num_chains=100)
    elif model == "jem":
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


def load_data(model: str, seed: int):
    """The digits as ``model`` trains on them (:data:`DATA_TEXT`)."""
    if model in ("rbm", "subspace-rbm", "class-rbm"):
        return ep.data.digits(binarize=True)
    if model == "grbm":
        return ep.data.digits(scale="signed")
    return ep.data.digits(scale="signed", train_noise=JEM_TRAIN_NOISE,
                          key=jax.random.fold_in(jax.random.key(seed), 3))


def initial_model(model: str, s: dict[str, Any], data, key) -> ep.Potential:
    """The untrained model of settings ``s``; RBM visible biases from the training data's marginals
    (Hinton's guide, Sec. 8.1)."""
    n_visible = data.x_train.shape[1]
    if model == "rbm":
        return ep.BernoulliRBM.init(key, n_visible, s["hidden"], scale=INIT_SCALE, data=data.x_train)
    if model == "subspace-rbm":
        return ep.SubspaceRBM.init(key, n_visible, s["gates"], s["subspace"], scale=INIT_SCALE, data=data.x_train)
    if model == "class-rbm":
        return ep.ClassRBM.init(key, n_visible, s["hidden"], 10, scale=INIT_SCALE, data=data.x_train)
    if model == "grbm":
        init = ep.GaussianBernoulliRBM.init(key, n_visible, s["hidden"], scale=INIT_SCALE, data=data.x_train)
        return ep.GaussianBernoulliRBM(init.W, init.b, init.c, jnp.full(n_visible, s["sigma"], init.W.dtype))
    return ep.JEM.init(key, n_visible, 10, width=s["hidden"], depth=s["depth"], activation=s["activation"])


def fit_arrays(model: str, data):
    """``(training data, validation data)`` as :func:`ebm_ppl.fit` takes them for ``model``."""
    if model in ("jem", "class-rbm"):
        return (data.x_train, data.y_train), (data.x_val, data.y_val)
    return data.x_train, data.x_val


def estimator(model: str, s: dict[str, Any]):
    """The gradient estimator of settings ``s``: the JEM or classification-RBM objective, PCD-k or CD-k."""
    if model == "class-rbm":
        return ep.training.class_rbm(s["objective"], alpha=s["alpha"], k=s["k"], num_chains=s["num_chains"])
    if model == "jem":
        extra = {"buffer_size": s["buffer_size"], "reinit_prob": s["reinit_prob"]} if s["persistent"] else {}
        return ep.training.jem(langevin_steps=s["k"], step_size=s["step_size"], noise_scale=s["noise_scale"],
                               persistent=s["persistent"], **extra)
    if s["persistent"]:
        return ep.training.pcd(k=s["k"], num_chains=s["num_chains"])
    return ep.training.cd(k=s["k"])


def describe(model: ep.Potential, s: dict[str, Any]) -> str:
    """The model of settings ``s`` in a few words."""
    if s["model"] == "subspace-rbm":
        return f"64 visible x {s['gates']} gates x {s['subspace']} subspace units, binary"
    if s["model"] == "class-rbm":
        return f"64 pixels + 10 labels x {s['hidden']} hidden units, binary"
    if s["model"] == "jem":
        return "-".join(["64", *[str(s["hidden"])] * s["depth"], "10"]) + f" {s['activation'].upper()} classifier"
    return describe_model(model)


def estimator_text(s: dict[str, Any]) -> str:
    """The estimator of settings ``s`` in a few words."""
    if s["model"] == "class-rbm":
        text = f"{s['objective']} objective"
        if s["objective"] != "discriminative":
            weight = f", weight {s['alpha']:g}" if s["objective"] == "hybrid" else ""
            text += f" (generative part by PCD-{s['k']} with {s['num_chains']} labelled chains{weight})"
        return text
    if s["model"] == "jem":
        chains = "replay buffer of 10000" if s["persistent"] else "short-run chains from uniform noise"
        return (f"{s['k']} Langevin steps (alpha {s['step_size']:g}, sigma {s['noise_scale']:g}) per batch, "
                f"{chains}")
    return f"PCD-{s['k']} ({s['num_chains']} chains)" if s["persistent"] else f"CD-{s['k']}"


def evaluate(model_name: str, model: ep.Potential, data) -> dict[str, Any]:
    """Test accuracy (jem, class-rbm), and the exact test log-likelihood where log Z can be
    enumerated (the pixels' for class-rbm)."""
    if model_name == "jem":
        return {"test_accuracy": float(jnp.mean(model.classify(data.x_test) == data.y_test)),
                "val_accuracy": float(jnp.mean(model.classify(data.x_val) == data.y_val))}
    out: dict[str, Any] = {}
    if model_name == "class-rbm":
        out = {"test_accuracy": float(jnp.mean(model.predict(data.x_test) == data.y_test)),
               "val_accuracy": float(jnp.mean(model.predict(data.x_val) == data.y_val))}
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


def monitor(model: str, s: dict[str, Any]) -> str | None:
    """The metric that picks the best epoch: validation accuracy for a classification RBM trained
    (partly) discriminatively; None (fit's default) otherwise."""
    if model == "class-rbm" and s["objective"] != "generative":
        return "val_accuracy"
    return None
