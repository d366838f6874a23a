"""``ebm_ppl.fit``: train an energy model with a gradient estimator and an Optax optimizer.

Epochs run inside one compiled program (:mod:`ebm_ppl.training.epochs`); the run's steps are
:class:`ebm_ppl.training.run.TrainingRun`'s. Where nothing has to
happen between epochs (no per-epoch metrics, monitor, progress bar or checkpoint), one call runs
up to :data:`~ebm_ppl.training.epochs.MAX_FUSED_EPOCHS` epochs; otherwise it runs up to the next
epoch that needs the host. Between calls the run evaluates metrics, keeps the best state by a
monitored metric (early stopping with patience), checkpoints atomically, and guards against
divergence: if the parameters or the metrics become non-finite or explode, it restores the last
good state, halves the step size, re-seeds the sampler and retries; after ``max_retries`` failures
in a row it stops with a message and returns the last good model (saved too, when checkpointing).
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import warnings
from typing import Callable, Literal, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.compiler import sized_by
from ebm_ppl.potentials.base import Potential, check_potential, validate_input
from ebm_ppl.potentials.capabilities import default_frozen
from ebm_ppl.potentials.function import FunctionPotential
from ebm_ppl.random import DEFAULT_IMPL
from ebm_ppl.training.epochs import DEFAULT_OPTIMIZER, MAX_FUSED_EPOCHS
from ebm_ppl.training.estimators import GradientEstimator
from ebm_ppl.training.history import History, Monitor, TrainingDiverged
from ebm_ppl.training.metrics import boltzmann_metrics
from ebm_ppl.training.rows import bucket_rows
from ebm_ppl.training.run import CHECKPOINT, MODEL, CheckpointWarning, TrainingRun

__all__ = ["fit", "History", "TrainingDiverged", "CheckpointWarning", "MAX_FUSED_EPOCHS", "DEFAULT_OPTIMIZER",
           "CHECKPOINT", "MODEL"]

@sized_by("model")
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
    shard: bool | None = None,
) -> tuple[Potential, History]:
    """Train ``model`` on ``data`` for ``epochs`` epochs.

    Args:
        model: any potential the estimator supports.
        data: ``x`` of shape ``(N, *event_shape)``, or a tuple ``(x, y, ...)`` of arrays sharing
            the leading axis (JEM and the classification RBM take ``(x, y)``); ``x`` is cast to the
            model's floating-point type (they may differ under ``jax_enable_x64``). An estimator
            that reads x alone (CD, PCD, PT-PCD) refuses further arrays unless ``metrics`` is a
            function of your own (it receives them all); labels are checked against the model's
            classes before training.
        estimator: e.g. ``ep.training.pcd(k=1, num_chains=100)`` or ``ep.training.jem(...)``;
            anything with traceable ``init`` and ``update`` (:class:`ebm_ppl.training.GradientEstimator`).
        key: PRNG key; the same key gives the same run, interrupted and resumed or not, and
            whether or not epochs were fused.
        optimizer: any Optax transformation; default :data:`DEFAULT_OPTIMIZER`,
            ``optax.sgd(0.05, momentum=0.5)``. The compiled program is shared by optimizers of
            equal settings (``optax.sgd(0.05)`` written again; compared by the code and values
            their closures hold, :func:`ebm_ppl.training.optimizers.fingerprint`).
        epochs: passes over the data; each drops the last incomplete minibatch.
        batch_size: minibatch size.
        shuffle: draw each epoch's minibatches from a fresh random permutation of the data (the
            default); ``False`` takes them in the data's order every epoch, as scikit-learn's
            ``BernoulliRBM`` does.
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
            ``val_log_likelihood`` (else ``val_pseudo_log_likelihood``, ...) when present. A name
            the first evaluated epoch does not record is an error listing the recorded ones.
        mode: ``"max"`` or ``"min"``: whether larger values of ``monitor`` are better.
        patience: stop after this many epochs without improvement; None never stops early.
        freeze: names of fields to keep fixed (default: the family's ``frozen_fields``, e.g.
            ``sigma`` of a Gaussian-Bernoulli RBM).
        checkpoint_dir: write ``checkpoint.ckpt`` (full training state) every
            ``checkpoint_every`` epochs and at the end, and ``model.ebm`` (the returned model). The
            folder is created and checked for writing before the first epoch; a save that fails
            later is a warning (:class:`CheckpointWarning`), never the loss of the trained model.
        checkpoint_every: see ``checkpoint_dir``.
        resume: continue from ``checkpoint_dir``'s checkpoint when it exists. It must have been
            written by a run with the same ``key``, ``data``, ``validation``, estimator settings,
            optimizer and ``batch_size`` (fingerprints of them are kept in the checkpoint),
            ``shuffle`` and model shapes, and ``epochs`` must be at least its epochs; another is
            refused (it would continue neither run).
        max_retries: divergence recoveries allowed in a row before stopping.
        progress: show a progress bar over epochs with the latest metrics (runs epochs one per call).
        prng_impl: the PRNG implementation training draws from, seeded one-to-one by ``key``
            (:func:`ebm_ppl.random.rekey`; ebm_ppl's Philox-2x32 by default, see :mod:`ebm_ppl.random`);
            None keeps the key's own implementation. Resume with the one the checkpoint was
            written with.
        shard: train data-parallel over every device (of every process under
            ``jax.distributed``): each minibatch's rows and the estimator's chains split over
            them, gradients summed by XLA (docs/training.md, "Many devices"). None (default):
            whenever there are several devices and they divide ``batch_size``; True: the same,
            but an error when they do not; False: one device. Each update then pays a
            cross-device sum, which costs more than it saves on small models (a 64 x 20 PCD
            epoch took 7x longer on 4 forced CPU devices than on one, benchmarks/scaling.py).

    Returns:
        ``(model, history)``: the best model by ``monitor`` (the last if none), and the history.
    """
    settings = _Settings.check(model, data, estimator, validation, metrics, epochs=epochs, batch_size=batch_size,
                               eval_every=eval_every, max_retries=max_retries, checkpoint_every=checkpoint_every,
                               checkpoint_dir=checkpoint_dir, mode=mode, monitor=monitor, patience=patience)
    shuffle, resume, progress = (checks.flag(v, name) for name, v in
                                 (("shuffle", shuffle), ("resume", resume), ("progress", progress)))
    shard = None if shard is None else checks.flag(shard, "shard")
    if resume and checkpoint_dir is None:
        raise ValueError("fit: resume=True needs the checkpoint_dir to resume from")
    if optimizer is not None and not (callable(getattr(optimizer, "init", None))
                                      and callable(getattr(optimizer, "update", None))):
        raise TypeError(f"fit: optimizer must be an optax GradientTransformation (e.g. optax.sgd(0.05)) or None "
                        f"for the default, got {optimizer!r}")
    if freeze is not None:
        freeze = (freeze,) if isinstance(freeze, str) else tuple(freeze)  # "Wb" is one (unknown) name, not W and b
    run = TrainingRun(model, estimator, settings, optimizer=optimizer, key=key, shuffle=shuffle,
               freeze=default_frozen(model) if freeze is None else freeze, prng_impl=prng_impl, shard=shard,
               monitor=Monitor(monitor, mode, None if patience is None else int(patience)))
    if resume:
        run.resume()
    run.train(progress)
    return run.finish()


@dataclasses.dataclass(frozen=True)
class _Settings:
    """The validated arguments of one :func:`fit` call."""

    data: tuple[Array, ...]
    validation: tuple[Array, ...] | None
    metrics: Callable[..., dict[str, float]] | None  # None: no per-epoch metrics
    epochs: int
    batch_size: int
    eval_every: int
    max_retries: int
    checkpoint_dir: str | None
    checkpoint_every: int | None
    evaluating: bool  # metrics, a monitor or early stopping after evaluated epochs

    @classmethod
    def check(cls, model, data, estimator, validation, metrics, *, epochs, batch_size, eval_every, max_retries,
              checkpoint_every, checkpoint_dir, mode, monitor, patience) -> "_Settings":
        check_potential(model, "fit")
        _warn_integer_params(model)
        if not (callable(getattr(estimator, "init", None)) and callable(getattr(estimator, "update", None))):
            raise TypeError(f"fit: estimator must have init and update (e.g. ep.training.pcd()), got {estimator!r}")
        data = _as_tuple(data, model, "data")
        if data[0].shape[0] == 0:
            raise ValueError("fit: data holds no examples")
        validation = None if validation is None else _as_tuple(validation, model, "validation")
        own_metrics = metrics is not None and metrics is not False
        for name, arrays in (("data", data), ("validation", validation)):
            if arrays is not None:
                _check_estimator_data(estimator, model, arrays, name, own_metrics)
        if validation is not None and validation[0].shape[0] == 0:
            raise ValueError("fit: validation holds no examples; pass None for no validation data")
        epochs, batch_size, max_retries, eval_every = (
            checks.int_at_least(value, name, low) for name, value, low in (
                ("epochs", epochs, 1), ("batch_size", batch_size, 1), ("max_retries", max_retries, 0),
                ("eval_every", eval_every, 1)))
        if patience is not None:
            checks.int_at_least(patience, "patience", 1)
        if checkpoint_every is not None:
            checkpoint_every = checks.int_at_least(checkpoint_every, "checkpoint_every", 1)
            if checkpoint_dir is None:
                raise ValueError("checkpoint_every needs checkpoint_dir")
        if batch_size > data[0].shape[0]:
            raise ValueError(f"batch_size={batch_size} exceeds the {data[0].shape[0]} training examples")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if metrics is False and validation is not None:
            raise ValueError("validation data is only scored by the per-epoch metrics, which metrics=False turns off")
        if metrics is False and monitor is None and patience is not None:
            raise ValueError("patience needs a monitored metric: with metrics=False name one of the training means "
                             "as monitor (e.g. monitor='train_free_energy_gap', mode='min')")
        if metrics is not None and metrics is not False and not callable(metrics):
            raise TypeError(f"metrics must be a function, None (the default metrics) or False (none), got {metrics!r}")
        if metrics is not False:
            metrics = metrics or getattr(estimator, "metrics", None) or boltzmann_metrics
        if monitor is not None and not isinstance(monitor, str):
            raise ValueError(f"monitor must be the name of a metric or None, got {monitor!r}")
        _check_memory(model, estimator, data, validation, metrics or None)
        directory = None if checkpoint_dir is None else _writable_dir(checkpoint_dir)
        return cls(data, validation, metrics or None, epochs, batch_size, eval_every, max_retries, directory,
                   checkpoint_every, metrics is not False or monitor is not None)


# -- helpers ------------------------------------------------------------------------------------

#: ``_state_bytes`` of recent (estimator, model structure, data shapes): tracing ``init`` costs
#: milliseconds, a repeated ``fit`` call nothing else (see docs/performance.md)
_STATE_BYTES: dict = {}


def _state_bytes(model: Potential, estimator, data: tuple[Array, ...]) -> int:
    """The bytes of ``estimator.init(key, model, data)``'s arrays, from an abstract trace."""
    shapes = lambda tree: tuple((a.shape, str(a.dtype)) for a in jax.tree.leaves(eqx.filter(tree, eqx.is_array)))  # noqa: E731
    try:
        cache_key = (estimator, jax.tree.structure(model), shapes(model), shapes(data))
        hash(cache_key)
    except TypeError:  # an estimator that cannot be hashed is traced every time
        cache_key = None
    if cache_key is not None and cache_key in _STATE_BYTES:
        return _STATE_BYTES[cache_key]
    state = eqx.filter_eval_shape(estimator.init, jax.random.key(0), model, data)
    arrays = [leaf for leaf in jax.tree.leaves(state) if isinstance(leaf, jax.ShapeDtypeStruct)
              and not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)]
    nbytes = sum(math.prod(a.shape) * a.dtype.itemsize for a in arrays)
    if cache_key is not None:
        if len(_STATE_BYTES) >= 32:
            _STATE_BYTES.pop(next(iter(_STATE_BYTES)))
        _STATE_BYTES[cache_key] = nbytes
    return nbytes


def _check_memory(model: Potential, estimator, data: tuple[Array, ...], validation: tuple[Array, ...] | None,
                  metrics: Callable | None) -> None:
    """Refuse, before anything is allocated, a run whose training state would not fit: the
    estimator's state (PCD's chains, JEM's replay buffer; its shapes from ``init`` traced
    abstractly), four copies of the parameters (the model, the optimizer's moments, the best) and
    the copies of the data padded to a bucket of rows: fit's own, the validation data's for the
    default metrics, and the copies metrics that pad their input (``pads_rows``: JEM's and the
    classification RBM's) make during an evaluation."""
    state_bytes = _state_bytes(model, estimator, data)
    param_bytes = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_array)))
    sets = [data, *([] if validation is None else [validation])]
    if metrics is boltzmann_metrics:
        padded = [data] + [arrays[:1] for arrays in sets[1:]]  # only the images are evaluated
    else:
        pads = getattr(getattr(metrics, "__func__", metrics), "pads_rows", False)  # a method: its function's
        padded = [data] + (sets if pads else [])
    data_bytes = sum(_padded_bytes(arrays) for arrays in padded)
    checks.check_memory(state_bytes + 4 * param_bytes + data_bytes,
                        f"the estimator's state of {checks.format_bytes(state_bytes)}, 4 copies of "
                        f"{checks.format_bytes(param_bytes)} of parameters and {checks.format_bytes(data_bytes)} "
                        "of data padded to a bucket of rows", owner="fit")


def _padded_bytes(arrays: tuple[Array, ...]) -> int:
    """The bytes of ``arrays``' copy padded to :func:`ebm_ppl.training.rows.bucket_rows` rows (0
    when their rows fill the bucket: nothing is copied)."""
    n = arrays[0].shape[0]
    size = bucket_rows(n)
    return 0 if size == n else sum(size * math.prod(a.shape[1:]) * a.dtype.itemsize for a in arrays)


def _writable_dir(directory: str | os.PathLike) -> str:
    """``directory`` created if needed; a PermissionError before any training when it cannot be
    written (a run whose checkpoints cannot be saved is refused up front)."""
    path = os.fspath(directory)
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(errno.ENOTDIR, "checkpoint_dir exists and is not a directory", path)
    os.makedirs(path, exist_ok=True)
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "checkpoint_dir is not writable (checked before training)", path)
    return path


def _warn_integer_params(model: Potential) -> None:
    """Warn that a function potential's integer parameters (``params={"J": 1}``) stay as they are:
    fit trains floating-point ones only (an integer may be an index the energy needs)."""
    if not isinstance(model, FunctionPotential):
        return
    leaves = jax.tree_util.tree_flatten_with_path(model.params)[0]
    names = [jax.tree_util.keystr(path) for path, leaf in leaves
             if hasattr(leaf, "dtype") and not jnp.issubdtype(leaf.dtype, jnp.inexact)]
    if names:
        warnings.warn(f"fit: the parameters {', '.join(names)} are integers (or booleans) and are not trained; "
                      "only floating-point ones are (write 1.0, not 1, for a number to train)", UserWarning,
                      skip_file_prefixes=(checks.PACKAGE_DIR,))


def _check_estimator_data(estimator, model: Potential, arrays: tuple[Array, ...], name: str,
                          own_metrics: bool) -> None:
    """Refuse, before training, data the estimator would misread: fewer arrays than it reads
    (its ``data_arrays``), more (ignored, unless a metrics function of the user's own reads them),
    or values its ``check_data`` refuses (labels out of range)."""
    wanted, n = getattr(estimator, "data_arrays", None), len(arrays)
    what = f"the estimator {type(estimator).__name__}"
    if wanted is not None and n < wanted:
        raise ValueError(f"fit: {what} trains on {wanted} arrays, (x, y): images and labels, but {name} holds "
                         f"{n}; pass {name} as a tuple (x, y)")
    if wanted is not None and n > wanted and not own_metrics:
        reads = "x alone" if wanted == 1 else f"the first {wanted} arrays"
        raise ValueError(f"fit: {what} trains on {reads}, and {name} holds {n} arrays: the other {n - wanted} "
                         f"(labels?) would be ignored. Pass {'x' if wanted == 1 else 'those'} only, or an estimator "
                         "that reads labels (ep.training.class_rbm for an ep.ClassRBM, ep.training.jem for ep.JEM); "
                         "a metrics function of your own receives every array")
    check = getattr(estimator, "check_data", None)
    if callable(check):
        check(model, arrays, name)


def _as_tuple(data, model: Potential, name: str) -> tuple[Array, ...]:
    arrays = tuple(data) if isinstance(data, (tuple, list)) else (data,)
    x = validate_input(arrays[0], model.event_shape, model.support, name=name, owner="fit")
    if x.ndim != len(model.event_shape) + 1:
        hint = (f" (a {type(data).__name__} is read as the arrays (x, y, ...); pass rows as one array, "
                "e.g. np.asarray(rows))" if isinstance(data, (tuple, list)) and x.ndim == len(model.event_shape) else "")
        raise ValueError(f"fit: {name} must have shape (N, *event_shape), got {x.shape}{hint}")
    # the data take the model's precision (under jax_enable_x64 they may differ): float32 data
    # would start float32 chains that a float64 model's samplers turn float64, and float64 data
    # would make a float32 model's gradients float64, changes of type no compiled loop can carry
    params = [p.dtype for p in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))]
    if params:
        x = x.astype(jnp.result_type(*params))
    for i, a in enumerate(arrays[1:], 1):
        dtype = a.dtype if isinstance(a, jax.Array) else np.asarray(a).dtype
        if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating) or dtype == bool):
            raise ValueError(f"fit: array {i} of {name} (e.g. the labels) has dtype {dtype}; expected real numbers")
    rest = tuple(jnp.asarray(a) for a in arrays[1:])
    for a in rest:
        if a.shape[0] != x.shape[0]:
            raise ValueError(f"fit: the arrays of {name} disagree on N ({x.shape[0]} vs {a.shape[0]})")
    return (x, *rest)
