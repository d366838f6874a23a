"""``ebm_ppl.fit``: train an energy model with a gradient estimator and an Optax optimizer.

Epochs run inside one compiled program: a ``lax.while_loop`` over epochs, each a ``lax.scan`` over
shuffled minibatches, which also checks the parameters and the epoch's mean step metrics for
divergence, so the host fetches one small result per call. Where nothing has to happen between
epochs (no per-epoch metrics, monitor, progress bar or checkpoint), one call runs up to
:data:`MAX_FUSED_EPOCHS` epochs; otherwise it runs up to the next epoch that needs the host. The
program is module-level and takes the estimator and the optimizer as arguments, so a later ``fit``
with equal estimator settings, the same optimizer object and the same shapes compiles nothing.

Between calls the loop evaluates metrics, keeps the best state by a monitored validation metric
(early stopping with patience), checkpoints atomically, and guards against divergence: if the
parameters or the metrics become non-finite or explode, it restores the last good state, halves
the step size, re-seeds the sampler and retries; after ``max_retries`` failures in a row it stops
with a message and returns the last good model (saved too, when checkpointing).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from typing import Any, Callable, Literal, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.compiler import filter_jit
from ebm_ppl.potentials.base import Potential, validate_input
from ebm_ppl.potentials.capabilities import default_frozen
from ebm_ppl.random import DEFAULT_IMPL, rekey
from ebm_ppl.training.checkpoint import load_checkpoint, save_checkpoint
from ebm_ppl.training.estimators import GradientEstimator
from ebm_ppl.training.metrics import boltzmann_metrics, boltzmann_metrics_sets

__all__ = ["fit", "History", "TrainingDiverged", "MAX_FUSED_EPOCHS"]

EXPLOSION = 1e8  # |parameter| or |metric| beyond this counts as divergence (Grathwohl et al.'s guard)
CHECKPOINT = "checkpoint.ckpt"
MODEL = "model.ebm"
#: The most epochs one compiled call runs. Fixed, so that every call, fused or not, runs the same
#: compiled program (the results do not depend on how the epochs were grouped into calls).
MAX_FUSED_EPOCHS = 64
#: ``optax.sgd(0.05, momentum=0.5)``: one object, so that fits with the default optimizer share
#: their compiled program.
DEFAULT_OPTIMIZER = optax.sgd(0.05, momentum=0.5)


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
    shuffle: bool = True,
    validation: ArrayLike | tuple[ArrayLike, ...] | None = None,
    metrics: Callable[..., dict[str, float]] | Literal[False] | None = None,
    eval_every: int = 1,
    monitor: str | None = None,
    mode: str = "max",
    patience: int | None = None,
    freeze: Sequence[str] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    max_retries: int = 3,
    progress: bool = False,
    prng_impl: str | None = DEFAULT_IMPL,
) -> tuple[Potential, History]:
    """Train ``model`` on ``data`` for ``epochs`` epochs.

    Args:
        model: any potential the estimator supports.
        data: ``x`` of shape ``(N, *event_shape)``, or a tuple ``(x, y, ...)`` of arrays sharing
            the leading axis (JEM takes ``(x, y)``).
        estimator: e.g. ``ep.training.pcd(k=1, num_chains=100)`` or ``ep.training.jem(...)``;
            anything with traceable ``init`` and ``update`` (:class:`ebm_ppl.training.GradientEstimator`).
        key: PRNG key; the same key gives the same run, interrupted and resumed or not, and
            whether or not epochs were fused.
        optimizer: any Optax transformation; default :data:`DEFAULT_OPTIMIZER`,
            ``optax.sgd(0.05, momentum=0.5)``. The compiled program is cached per optimizer
            *object* (Optax transformations are closures, compared by identity): reuse one
            object across calls to skip compiling.
        epochs: passes over the data; each drops the last incomplete minibatch.
        batch_size: minibatch size.
        shuffle: draw each epoch's minibatches from a fresh random permutation of the data (the
            default); ``False`` takes them in the data's order every epoch, as scikit-learn's
            ``BernoulliRBM`` does (it saves sorting the indices, about 40 us per epoch of 1,000
            examples on CPU).
        validation: data in the same form as ``data`` for the ``val_`` metrics.
        metrics: ``metrics(model, data_tuple, key, prefix) -> dict`` evaluated on the training
            data (prefix ``"train_"``) and the validation data (``"val_"``); default: the
            estimator's own, else reconstruction error, pseudo-likelihood and the exact
            log-likelihood when log Z is enumerable (:func:`ebm_ppl.training.boltzmann_metrics`,
            one log Z per evaluation). ``False``: none; the history then holds the training means
            of the estimator's step metrics (``train_free_energy_gap``, ...), which every epoch
            records anyway, and epochs run fused.
        eval_every: evaluate metrics, the monitor and early stopping every ``eval_every`` epochs
            (and after the last); the epochs between run fused.
        monitor: the metric that selects the best epoch and drives early stopping; default
            ``val_log_likelihood`` (else ``val_pseudo_log_likelihood``) when present.
        mode: ``"max"`` or ``"min"``: whether larger values of ``monitor`` are better.
        patience: stop after this many epochs without improvement; None never stops early.
        freeze: names of fields to keep fixed (default: ``sigma`` of a Gaussian-Bernoulli RBM).
        checkpoint_dir: write ``checkpoint.ckpt`` (full training state) every
            ``checkpoint_every`` epochs and at the end, and ``model.ebm`` (the returned model).
        checkpoint_every: see ``checkpoint_dir``.
        resume: continue from ``checkpoint_dir``'s checkpoint when it exists.
        max_retries: divergence recoveries allowed in a row before stopping.
        progress: show a progress bar over epochs with the latest metrics (runs epochs one per call).
        prng_impl: the PRNG implementation training draws from, seeded one-to-one by ``key``
            (:func:`ebm_ppl.random.rekey`; ebm_ppl's Philox-2x32 by default, see :mod:`ebm_ppl.random`);
            None keeps the key's own implementation. Resume with the one the checkpoint was
            written with.

    Returns:
        ``(model, history)``: the best model by ``monitor`` (the last if none), and the history.
    """
    if not isinstance(model, Potential):
        raise TypeError(f"fit expects an ebm_ppl.Potential, got {type(model).__name__}")
    data = _as_tuple(data, model, "data")
    validation = None if validation is None else _as_tuple(validation, model, "validation")
    n = data[0].shape[0]
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("max_retries", max_retries, 0),
                             ("eval_every", eval_every, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, (int, np.integer)) or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be an integer >= 1, got {checkpoint_every!r}")
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    if checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError("checkpoint_every needs checkpoint_dir")
    if metrics is False and validation is not None:
        raise ValueError("validation data is only scored by the per-epoch metrics, which metrics=False turns off")
    if metrics is False and monitor is None and patience is not None:
        raise ValueError("patience needs a monitored metric: with metrics=False name one of the training means "
                         "as monitor (e.g. monitor='train_free_energy_gap', mode='min')")
    if metrics is not None and metrics is not False and not callable(metrics):
        raise TypeError(f"metrics must be a function, None (the default metrics) or False (none), got {metrics!r}")
    if metrics is not False:
        metrics = metrics or getattr(estimator, "metrics", None) or boltzmann_metrics
    freeze = default_frozen(model) if freeze is None else tuple(freeze)
    optimizer = _guarded(DEFAULT_OPTIMIZER if optimizer is None else optimizer)

    params, static = eqx.partition(model, eqx.is_inexact_array)
    frozen_mask = _freeze_mask(params, freeze)
    state, key_loop = _init_state(params, static, estimator, optimizer, data, key, prng_impl)

    history, start_epoch, retries, best_value = History(), 0, 0, None
    ckpt_path = None if checkpoint_dir is None else os.path.join(os.fspath(checkpoint_dir), CHECKPOINT)
    if checkpoint_dir is not None:
        os.makedirs(checkpoint_dir, exist_ok=True)
        if resume and os.path.exists(ckpt_path):
            state, meta = load_checkpoint(ckpt_path, state)
            if meta.get("shuffle", True) != bool(shuffle):  # absent in checkpoints written before it was kept
                raise ValueError(f"checkpoint {ckpt_path!r} was written by a run with "
                                 f"shuffle={meta.get('shuffle', True)}; resuming with shuffle={bool(shuffle)} "
                                 "would not continue that run")
            history = History(meta["records"], meta["monitor"], meta["best_epoch"])
            start_epoch, best_value = meta["epoch"] + 1, meta["best_value"]
    bar = _progress_bar(progress, epochs, start_epoch)
    # the host acts after an epoch that is evaluated (metrics, monitor, early stopping), shown or
    # checkpointed; the epochs up to such an epoch run in one call
    evaluating = metrics is not False or monitor is not None

    def evaluated(e: int) -> bool:  # metrics, monitor and early stopping after epoch e
        return evaluating and ((e + 1) % eval_every == 0 or e == epochs - 1)

    def needs_host(e: int) -> bool:
        return (e == epochs - 1 or bar is not None or evaluated(e)
                or bool(ckpt_path and checkpoint_every and (e + 1) % checkpoint_every == 0))

    tries = max_retries + 1
    epoch = start_epoch
    while epoch < epochs:
        stop = epoch + 1
        while stop < min(epochs, epoch + MAX_FUSED_EPOCHS) and not needs_host(stop - 1):
            stop += 1
        plan = np.array([epoch, stop - epoch, retries, tries], np.int32)
        carry, means, done = _run_epochs(static, estimator, optimizer, frozen_mask, batch_size, bool(shuffle),
                                         MAX_FUSED_EPOCHS,
                                         (state.params, state.opt_state, state.estimator_state), data, key_loop, plan)
        means, done = jax.device_get((means, done))
        done = int(done)
        new_state = state._replace(params=carry[0], opt_state=carry[1], estimator_state=carry[2])
        records = [{"epoch": e, **{f"train_{k}": float(v[i]) for k, v in means.items()}}
                   for i, e in enumerate(range(epoch, epoch + done))]
        failed = epoch + done < stop
        if not failed and evaluated(stop - 1) and metrics is not False:  # keyed like the epoch's shuffle
            records[-1].update(_evaluate(metrics, eqx.combine(carry[0], static), data, validation, key_loop,
                                         (stop - 1) * tries + (retries if stop - 1 == epoch else 0)))
            if not _finite(records[-1]):  # the whole call is rejected: it is retried from its start
                failed, done, records, new_state = True, 0, [], state
        if done:
            retries = 0
            state = new_state
            history.records.extend(records)
            record = records[-1]
            if not failed and evaluated(stop - 1):
                history.monitor = monitor = monitor or _default_monitor(record)
                value = record.get(monitor) if monitor else None
                if value is not None and (best_value is None or (value > best_value if mode == "max" else value < best_value)):
                    best_value, history.best_epoch = value, record["epoch"]
                    state = state._replace(best_params=state.params)
            if bar is not None:
                bar.update(done)
                bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k.startswith("val_")} or None)
            if ckpt_path and checkpoint_every and (epoch + done) % checkpoint_every == 0:
                _write_checkpoint(ckpt_path, state, history, record["epoch"], best_value, bool(shuffle))
            epoch += done
            if (patience is not None and history.best_epoch is not None and not failed
                    and record["epoch"] - history.best_epoch >= patience):
                history.stopped = "early stopping"
                history.message = f"no improvement of {monitor} for {patience} epochs"
                break
        if failed:
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
    if bar is not None:
        bar.close()

    best = state.best_params if history.best_epoch is not None else state.params
    final = eqx.combine(best, static)
    if ckpt_path:
        if history.records:
            _write_checkpoint(ckpt_path, state, history, history.records[-1]["epoch"], best_value, bool(shuffle))
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


@functools.lru_cache(maxsize=32)
def _guarded_cached(optimizer):
    return optax.chain(optimizer, optax.inject_hyperparams(optax.scale)(step_size=1.0))


def _guarded(optimizer) -> optax.GradientTransformation:
    """``optimizer`` followed by a scale the divergence guard halves; one object per optimizer
    object, so the compiled program (which takes it as a static argument) is reused."""
    try:
        return _guarded_cached(optimizer)
    except TypeError:  # unhashable: no caching
        return _guarded_cached.__wrapped__(optimizer)


# The compiled programs of a run. They are module-level and take the model's static part, the
# estimator and the optimizer as (static) arguments, so a later call with equal ones and the same
# shapes reuses the compiled code.

@filter_jit
def _init_state(params, static, estimator, optimizer, data: tuple[Array, ...], key, prng_impl: str | None):
    """The initial training state and the key of the epoch loop, from the user's ``key``."""
    key_init, key_loop = jax.random.split(rekey(key, prng_impl))
    model = eqx.combine(params, static)
    return _TrainState(params, optimizer.init(params), estimator.init(key_init, model, data), params), key_loop


@filter_jit
def _run_epochs(static, estimator, optimizer, frozen_mask, batch_size: int, shuffle: bool, capacity: int, carry,
                data: tuple[Array, ...], key_loop: PRNGKeyArray, plan):
    """Run epochs ``start, ..., start + num - 1`` (``plan = [start, num, retries, tries]``, int32)
    until one diverges, each a ``lax.scan`` over ``N // batch_size`` minibatches (shuffled, or in
    the data's order when ``shuffle`` is False).

    Epoch ``e`` shuffles with ``fold_in(key_loop, e * tries + r)``'s first half, ``r`` = ``retries``
    for the first epoch and 0 after it, so a run does not depend on how its epochs are grouped.

    Returns:
        ``(carry, means, done)``: ``carry = (params, opt_state, estimator_state)`` after the
        ``done`` good epochs, and each step metric's epoch means, shape ``(capacity,)``, valid in
        ``[:done]``. ``done < num`` means epoch ``start + done`` diverged (non-finite or exploding
        parameters or means) and was discarded.
    """
    start, num, retries, tries = plan[0], plan[1], plan[2], plan[3]
    n = data[0].shape[0]
    num_batches = n // batch_size

    def one_epoch(carry, key):
        if shuffle:
            perm = jax.random.permutation(key, n)[: num_batches * batch_size].reshape(num_batches, batch_size)
            batches = tuple(a[perm] for a in data)
        else:
            batches = tuple(a[: num_batches * batch_size].reshape(num_batches, batch_size, *a.shape[1:])
                            for a in data)

        def step(carry, batch):
            params, opt_state, est_state = carry
            grads, est_state, step_metrics = estimator.update(eqx.combine(params, static), batch, est_state)
            grads = eqx.filter(grads, eqx.is_inexact_array)
            if any(jax.tree.leaves(frozen_mask)):
                grads = jax.tree.map(lambda g, frozen: jnp.zeros_like(g) if frozen else g, grads, frozen_mask)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (eqx.apply_updates(params, updates), opt_state, est_state), step_metrics

        carry, per_step = jax.lax.scan(step, carry, batches)
        return carry, jax.tree.map(jnp.mean, per_step)

    def body(loop):
        i, _, carry, buffer = loop
        epoch_key = jax.random.fold_in(key_loop, (start + i) * tries + jnp.where(i == 0, retries, 0))
        new_carry, means = one_epoch(carry, jax.random.split(epoch_key)[0])
        good = _healthy(new_carry[0], means)
        carry = jax.tree.map(lambda new, old: jax.lax.select(good, new, old), new_carry, carry)
        buffer = jax.tree.map(lambda b, m: b.at[i].set(m), buffer, means)
        return i + good.astype(i.dtype), good, carry, buffer

    shapes = jax.eval_shape(one_epoch, carry, key_loop)[1]
    buffer = jax.tree.map(lambda s: jnp.zeros((capacity, *s.shape), s.dtype), shapes)
    loop = (jnp.zeros((), jnp.int32), jnp.array(True), carry, buffer)
    done, _, carry, buffer = jax.lax.while_loop(lambda loop: loop[1] & (loop[0] < num), body, loop)
    return carry, buffer, done


def _evaluate(metrics, model: Potential, data, validation, key_loop, index: int) -> dict[str, float]:
    """The epoch's metrics on the training and validation data, keyed by ``fold_in(key_loop, index)``'s
    second half; the default Boltzmann metrics in one compiled call with one log Z."""
    key = jax.random.split(jax.random.fold_in(key_loop, index))[1]
    sets = {"train_": data} if validation is None else {"train_": data, "val_": validation}
    if metrics is boltzmann_metrics:
        return boltzmann_metrics_sets(model, sets, key)
    out = {}
    for prefix, d in sets.items():
        out.update(metrics(model, d, key, prefix))
    return out


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


def _healthy(params, means) -> Array:
    """Traced: True when every parameter is finite and at most EXPLOSION in magnitude and every
    mean is finite and below it (NaN fails both comparisons)."""
    ok = jnp.array(True)
    for leaf in jax.tree.leaves(eqx.filter(params, eqx.is_inexact_array)):
        ok = ok & jnp.all(jnp.abs(leaf) <= EXPLOSION)
    for value in jax.tree.leaves(means):
        ok = ok & jnp.all(jnp.abs(value) < EXPLOSION)
    return ok


def _finite(record: dict[str, float]) -> bool:
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


def _write_checkpoint(path: str, state: _TrainState, history: History, epoch: int, best_value,
                      shuffle: bool) -> None:
    meta = {"epoch": epoch, "records": history.records, "monitor": history.monitor,
            "best_epoch": history.best_epoch, "best_value": best_value, "shuffle": shuffle}
    save_checkpoint(path, state, meta)


def _progress_bar(enabled: bool, epochs: int, start: int):
    if not enabled:
        return None
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=epochs, initial=start, desc="training", unit="epoch", file=sys.stderr)
