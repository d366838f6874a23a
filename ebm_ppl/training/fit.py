"""``ebm_ppl.fit``: train an energy model with a gradient estimator and an Optax optimizer.

Each epoch is one compiled ``lax.scan`` over shuffled minibatches. Between epochs the loop
evaluates metrics, keeps the best state by a monitored validation metric (early stopping with
patience), checkpoints atomically, and guards against divergence: if the parameters or the
metrics become non-finite or explode, it restores the last good state, halves the step size,
re-seeds the sampler and retries; after ``max_retries`` failures in a row it stops with a message
and returns the last good model (saved too, when checkpointing).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from typing import Any, Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.potentials.base import Potential, validate_input
from ebm_ppl.potentials.gaussian_bernoulli_rbm import GaussianBernoulliRBM
from ebm_ppl.training.checkpoint import load_checkpoint, save_checkpoint
from ebm_ppl.training.estimators import GradientEstimator
from ebm_ppl.training.metrics import boltzmann_metrics

__all__ = ["fit", "History", "TrainingDiverged"]

EXPLOSION = 1e8  # |parameter| or |metric| beyond this counts as divergence (Grathwohl et al.'s guard)
CHECKPOINT = "checkpoint.ckpt"
MODEL = "model.ebm"


class TrainingDiverged(RuntimeWarning):
    """Training stopped after repeated divergence; the last good model was kept."""


@dataclasses.dataclass
class History:
    """Per-epoch metrics (``records``: one dict per completed epoch), the best epoch by the
    monitored metric, why training stopped (``"completed"``, ``"early stopping"``,
    ``"diverged"``), and how many times the divergence guard restored a good state."""

    records: list[dict[str, float]] = dataclasses.field(default_factory=list)
    monitor: str | None = None
    best_epoch: int | None = None
    stopped: str = "completed"
    message: str = ""
    recoveries: int = 0

    def __getitem__(self, name: str) -> np.ndarray:
        """The values of metric ``name`` over epochs (NaN where absent)."""
        return np.array([r.get(name, np.nan) for r in self.records])

    @property
    def metric_names(self) -> list[str]:
        return sorted({k for r in self.records for k in r})


def fit(
    model: Potential,
    data: ArrayLike | tuple[ArrayLike, ...],
    estimator: GradientEstimator,
    *,
    key: PRNGKeyArray,
    optimizer: optax.GradientTransformation | None = None,
    epochs: int = 10,
    batch_size: int = 100,
    validation: ArrayLike | tuple[ArrayLike, ...] | None = None,
    metrics: Callable[..., dict[str, float]] | None = None,
    monitor: str | None = None,
    mode: str = "max",
    patience: int | None = None,
    freeze: Sequence[str] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    max_retries: int = 3,
    progress: bool = False,
) -> tuple[Potential, History]:
    """Train ``model`` on ``data`` for ``epochs`` epochs.

    Args:
        model: any potential the estimator supports.
        data: ``x`` of shape ``(N, *event_shape)``, or a tuple ``(x, y, ...)`` of arrays sharing
            the leading axis (JEM takes ``(x, y)``).
        estimator: e.g. ``ep.training.pcd(k=1, num_chains=100)`` or ``ep.training.jem(...)``.
        key: PRNG key; the same key gives the same run, interrupted and resumed or not.
        optimizer: any Optax transformation; default ``optax.sgd(0.05, momentum=0.5)``.
        epochs: passes over the data; each drops the last incomplete minibatch.
        batch_size: minibatch size.
        validation: data in the same form as ``data`` for the ``val_`` metrics.
        metrics: ``metrics(model, data_tuple, key, prefix) -> dict`` evaluated after each epoch
            on the training data (prefix ``"train_"``) and the validation data (``"val_"``);
            default: the estimator's own, else reconstruction error, pseudo-likelihood and the
            exact log-likelihood when log Z is enumerable.
        monitor: the metric that selects the best epoch and drives early stopping; default
            ``val_log_likelihood`` (else ``val_pseudo_log_likelihood``) when present.
        mode: ``"max"`` or ``"min"``: whether larger values of ``monitor`` are better.
        patience: stop after this many epochs without improvement; None never stops early.
        freeze: names of fields to keep fixed (default: ``sigma`` of a Gaussian-Bernoulli RBM).
        checkpoint_dir: write ``checkpoint.ckpt`` (full training state) every
            ``checkpoint_every`` epochs and at the end, and ``model.ebm`` (the returned model).
        resume: continue from ``checkpoint_dir``'s checkpoint when it exists.
        max_retries: divergence recoveries allowed in a row before stopping.
        progress: show a progress bar over epochs with the latest metrics.

    Returns:
        ``(model, history)``: the best model by ``monitor`` (the last if none), and the history.
    """
    if not isinstance(model, Potential):
        raise TypeError(f"fit expects an ebm_ppl.Potential, got {type(model).__name__}")
    data = _as_tuple(data, model, "data")
    validation = None if validation is None else _as_tuple(validation, model, "validation")
    n = data[0].shape[0]
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("max_retries", max_retries, 0)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    if checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError("checkpoint_every needs checkpoint_dir")
    metrics = metrics or getattr(estimator, "metrics", None) or boltzmann_metrics
    freeze = tuple(("sigma",) if freeze is None and isinstance(model, GaussianBernoulliRBM) else (freeze or ()))
    optimizer = optax.chain(
        optimizer if optimizer is not None else optax.sgd(0.05, momentum=0.5),
        optax.inject_hyperparams(optax.scale)(step_size=1.0),  # the divergence guard halves this
    )

    params, static = eqx.partition(model, eqx.is_inexact_array)
    frozen_mask = _freeze_mask(params, freeze)
    key_init, key_loop = jax.random.split(key)
    state = _TrainState(params, optimizer.init(params), estimator.init(key_init, model, data), params)
    run_epoch = _epoch_runner(static, estimator, optimizer, frozen_mask, batch_size)

    history, start_epoch, retries, best_value = History(), 0, 0, None
    ckpt_path = None if checkpoint_dir is None else os.path.join(os.fspath(checkpoint_dir), CHECKPOINT)
    if checkpoint_dir is not None:
        os.makedirs(checkpoint_dir, exist_ok=True)
        if resume and os.path.exists(ckpt_path):
            state, meta = load_checkpoint(ckpt_path, state)
            history = History(meta["records"], meta["monitor"], meta["best_epoch"])
            start_epoch, best_value = meta["epoch"] + 1, meta["best_value"]
    bar = _progress_bar(progress, epochs, start_epoch)

    epoch = start_epoch
    while epoch < epochs:
        epoch_key = jax.random.fold_in(key_loop, epoch * (max_retries + 1) + retries)
        k_epoch, k_metrics = jax.random.split(epoch_key)
        new_state, train_means = run_epoch(state, data, k_epoch)
        new_model = eqx.combine(new_state.params, static)
        record = {"epoch": epoch, **{f"train_{k}": float(v) for k, v in train_means.items()}}
        if _healthy(new_state.params, record):
            record.update(metrics(new_model, data, k_metrics, "train_"))
            if validation is not None:
                record.update(metrics(new_model, validation, k_metrics, "val_"))
        if not _healthy(new_state.params, record):
            retries += 1
            if retries > max_retries:
                history.stopped = "diverged"
                history.message = (f"training diverged at epoch {epoch} {max_retries + 1} times in a row "
                                   "(non-finite or exploding parameters/metrics) despite lowering the step "
                                   "size; stopped and kept the last good model")
                warnings.warn(history.message, TrainingDiverged, stacklevel=2)
                break
            history.recoveries += 1
            state = _scale_step(state, 0.5)  # restore the last good state, halve the step, re-seed
            if hasattr(state.estimator_state, "key"):
                est_state = state.estimator_state
                state = state._replace(estimator_state=est_state._replace(
                    key=jax.random.fold_in(est_state.key, retries)))
            continue
        retries = 0
        state = new_state
        history.records.append(record)
        history.monitor = monitor = monitor or _default_monitor(record)
        value = record.get(monitor) if monitor else None
        if value is not None and (best_value is None or (value > best_value if mode == "max" else value < best_value)):
            best_value, history.best_epoch = value, epoch
            state = state._replace(best_params=state.params)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k.startswith("val_")} or None)
        if ckpt_path and checkpoint_every and (epoch + 1) % checkpoint_every == 0:
            _write_checkpoint(ckpt_path, state, history, epoch, best_value)
        if patience is not None and history.best_epoch is not None and epoch - history.best_epoch >= patience:
            history.stopped = "early stopping"
            history.message = f"no improvement of {monitor} for {patience} epochs"
            break
        epoch += 1
    if bar is not None:
        bar.close()

    best = state.best_params if history.best_epoch is not None else state.params
    final = eqx.combine(best, static)
    if ckpt_path:
        if history.records:
            _write_checkpoint(ckpt_path, state, history, history.records[-1]["epoch"], best_value)
        from ebm_ppl.io import save

        save(os.path.join(os.fspath(checkpoint_dir), MODEL), final,
             metadata={"epochs": len(history.records), "best_epoch": history.best_epoch, "stopped": history.stopped})
    return final, history


class _TrainState(eqx.Module):
    params: Any
    opt_state: Any
    estimator_state: Any
    best_params: Any

    def _replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _epoch_runner(static, estimator: GradientEstimator, optimizer, frozen_mask, batch_size: int):
    @eqx.filter_jit
    def run_epoch(state: _TrainState, data: tuple[Array, ...], key: PRNGKeyArray):
        n = data[0].shape[0]
        num_batches = n // batch_size
        perm = jax.random.permutation(key, n)[: num_batches * batch_size].reshape(num_batches, batch_size)
        batches = tuple(a[perm] for a in data)

        def step(carry, batch):
            params, opt_state, est_state = carry
            grads, est_state, step_metrics = estimator.update(eqx.combine(params, static), batch, est_state)
            grads = eqx.filter(grads, eqx.is_inexact_array)
            grads = jax.tree.map(lambda g, frozen: jnp.where(frozen, 0.0, g), grads, frozen_mask)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (eqx.apply_updates(params, updates), opt_state, est_state), step_metrics

        carry = (state.params, state.opt_state, state.estimator_state)
        (params, opt_state, est_state), per_step = jax.lax.scan(step, carry, batches)
        means = jax.tree.map(jnp.mean, per_step)
        return state._replace(params=params, opt_state=opt_state, estimator_state=est_state), means

    return run_epoch


def _as_tuple(data, model: Potential, name: str) -> tuple[Array, ...]:
    arrays = tuple(data) if isinstance(data, (tuple, list)) else (data,)
    x = validate_input(arrays[0], model.event_shape, model.support, name=name, owner="fit")
    if x.ndim != len(model.event_shape) + 1:
        raise ValueError(f"fit: {name} must have shape (N, *event_shape), got {x.shape}")
    rest = tuple(jnp.asarray(a) for a in arrays[1:])
    for a in rest:
        if a.shape[0] != x.shape[0]:
            raise ValueError(f"fit: the arrays of {name} disagree on N ({x.shape[0]} vs {a.shape[0]})")
    return (x, *rest)


def _freeze_mask(params, freeze: tuple[str, ...]):
    unknown = [f for f in freeze if not hasattr(params, f)]
    if unknown:
        raise ValueError(f"freeze: {type(params).__name__} has no field(s) {unknown}")
    mask = jax.tree.map(lambda _: False, params)
    for name in freeze:
        mask = eqx.tree_at(lambda m, name=name: getattr(m, name), mask,
                           replace_fn=lambda sub: jax.tree.map(lambda _: True, sub))
    return mask


def _healthy(params, record: dict[str, float]) -> bool:
    for leaf in jax.tree.leaves(params):
        if not bool(jnp.all(jnp.isfinite(leaf))) or bool(jnp.max(jnp.abs(leaf)) > EXPLOSION):
            return False
    return all(math.isfinite(v) and abs(v) < EXPLOSION for v in record.values())


def _scale_step(state: _TrainState, factor: float) -> _TrainState:
    inner, guard = state.opt_state
    hyper = dict(guard.hyperparams)
    hyper["step_size"] = hyper["step_size"] * factor
    return state._replace(opt_state=(inner, guard._replace(hyperparams=hyper)))


def _default_monitor(record: dict[str, float]) -> str | None:
    for name in ("val_log_likelihood", "val_pseudo_log_likelihood", "val_accuracy", "train_log_likelihood",
                 "train_pseudo_log_likelihood"):
        if name in record:
            return name
    return None


def _write_checkpoint(path: str, state: _TrainState, history: History, epoch: int, best_value) -> None:
    meta = {"epoch": epoch, "records": history.records, "monitor": history.monitor,
            "best_epoch": history.best_epoch, "best_value": best_value}
    save_checkpoint(path, state, meta)


def _progress_bar(enabled: bool, epochs: int, start: int):
    if not enabled:
        return None
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=epochs, initial=start, desc="training", unit="epoch", file=sys.stderr)
