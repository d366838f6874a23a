"""One :func:`ebm_ppl.fit` run as named steps: resume, train groups of epochs (evaluate, monitor,
checkpoint, recover from divergence), finish (the best model and the files)."""

from __future__ import annotations

import hashlib
import math
import os
import sys
import warnings
from typing import Callable

import equinox as eqx
import jax
import numpy as np

from ebm_ppl.io import save
from ebm_ppl.potentials.base import Potential
from ebm_ppl.random import for_sharding, from_sharding, is_key, rekey
from ebm_ppl.sharding import axis_sharding, is_writer, onto_mesh, to_host
from ebm_ppl.training import epochs as compiled
from ebm_ppl.training.checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from ebm_ppl.training.epochs import DEFAULT_OPTIMIZER, EXPLOSION, MAX_FUSED_EPOCHS, TrainState
from ebm_ppl.training.history import History, Monitor, TrainingDiverged
from ebm_ppl.training.metrics import boltzmann_metrics, padded_boltzmann_metrics
from ebm_ppl.training.optimizers import guarded, settings_digest
from ebm_ppl.training.rows import bucket_rows, pad_rows

__all__ = ["TrainingRun", "CheckpointWarning", "CHECKPOINT", "MODEL", "data_fingerprint"]

#: File names inside ``checkpoint_dir``.
CHECKPOINT = "checkpoint.ckpt"
MODEL = "model.ebm"
_PACKAGE = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))),)  # warnings point at the caller's line, outside ebm_ppl


class CheckpointWarning(RuntimeWarning):
    """A checkpoint or the final model could not be written; training went on, the model is returned."""


class TrainingRun:
    """One training run: its state on the device, its history and monitor on the host."""

    def __init__(self, model, estimator, settings, *, optimizer, key, shuffle, freeze, prng_impl,
                 monitor: Monitor, shard: bool | None = None):
        self.settings, self.estimator, self.shuffle, self.monitor = settings, estimator, shuffle, monitor
        self.optimizer = guarded(DEFAULT_OPTIMIZER if optimizer is None else optimizer)
        # minibatch rows (and the estimator's chains) over every device when they divide the batch
        self.sharding = None if shard is False else axis_sharding(settings.batch_size, rekey(key, prng_impl))
        if shard and self.sharding is None and jax.device_count() > 1:
            raise ValueError(f"fit: shard=True, but the {jax.device_count()} devices do not divide "
                             f"batch_size={settings.batch_size} (or the key's generator cannot be sharded)")
        model = onto_mesh(model, self.sharding)  # a model committed to one device joins the mesh
        params, self.static = eqx.partition(model, eqx.is_inexact_array)
        self.frozen_mask = compiled.freeze_mask(params, freeze)
        # the data in a bucket of rows: one compiled epoch program serves every size of the bucket,
        # and one initial-state program too where the estimator reads only the first rows of padded data
        self.rows = settings.data[0].shape[0]
        self.padded = onto_mesh(pad_rows(settings.data, bucket_rows(self.rows, rekey(key, prng_impl))), self.sharding)
        padded_init = getattr(estimator, "init_takes_num_rows", False)
        self.state, self.key_loop = compiled.init_state(
            params, self.static, estimator, self.optimizer,
            self.padded if padded_init else onto_mesh(settings.data, self.sharding), key,
            prng_impl, jax.numpy.asarray(self.rows, jax.numpy.int32) if padded_init else None)
        if settings.metrics is boltzmann_metrics:  # evaluated in buckets of rows too
            self.metric_sets = {"train_": (self.padded[0], self.rows)}
            if settings.validation is not None:
                x = settings.validation[0]
                self.metric_sets["val_"] = (pad_rows((x,), bucket_rows(x.shape[0], self.key_loop))[0], x.shape[0])
        self.history, self.epoch, self.retries = History(), 0, 0
        self.checkpointing = settings.checkpoint_dir is not None
        # which key the run follows, kept in its checkpoints (a hash: the key itself is not stored)
        self.key_fingerprint = hashlib.sha256(np.asarray(jax.random.key_data(self.key_loop)).tobytes()).hexdigest()[:16]
        # and which data: a run resumed on other data would continue neither run (hashing reads
        # them once, about 1 GB/s, only when checkpointing)
        self.data_fingerprints = ({name: data_fingerprint(arrays) for name, arrays in
                                   (("data", settings.data), ("validation", settings.validation)) if arrays is not None}
                                  if self.checkpointing else {})
        # and which settings (None: one that cannot be described the same way in another process)
        self.settings_fingerprints = {"estimator": settings_digest(estimator), "batch_size": settings.batch_size,
                                      "optimizer": settings_digest(DEFAULT_OPTIMIZER if optimizer is None else optimizer),
                                      "freeze": sorted(map(str, freeze)), "mode": monitor.mode,
                                      "patience": monitor.patience, "eval_every": settings.eval_every,
                                      # the monitor asked for: a name, or the default chosen at the first
                                      # evaluation ("<auto>"), or none where nothing is evaluated
                                      "monitor": monitor.name or ("<auto>" if settings.evaluating else "<none>")}

    # -- the steps ---------------------------------------------------------------------------------
    def resume(self) -> None:
        """Continue from ``checkpoint_dir``'s checkpoint when there is one."""
        path = self._path(CHECKPOINT)
        if path is None or not os.path.exists(path):
            return
        meta = read_checkpoint_metadata(path)  # the run's settings first: they explain a mismatch best
        if meta.get("shuffle", True) != self.shuffle:  # absent in checkpoints written before it was kept
            raise ValueError(f"checkpoint {path!r} was written by a run with shuffle={meta.get('shuffle', True)}; "
                             f"resuming with shuffle={self.shuffle} would not continue that run")
        asked = meta.get("settings_fingerprints", {}).get("monitor", "<auto>")  # "<auto>": before it was kept
        if self.monitor.name is not None:  # None continues with the checkpoint's monitor
            was = meta["monitor"] if asked == "<auto>" else None if asked == "<none>" else asked
            if asked == "<none>" or (was is not None and was != self.monitor.name):
                raise ValueError(f"checkpoint {path!r} was written by a run monitoring "
                                 f"{'nothing' if asked == '<none>' else repr(was)}; resuming with "
                                 f"monitor={self.monitor.name!r} would select and stop by another metric than that "
                                 "run. Pass the monitor the run started with (or None)")
        for name, fingerprint in meta.get("settings_fingerprints", {}).items():  # absent before they were kept
            if name == "monitor":  # compared above
                continue
            now = self.settings_fingerprints.get(name)
            # a digest is None where a setting cannot be described alike in another process: not compared
            comparable = name in _SHOWN_SETTINGS or None not in (fingerprint, now)
            if comparable and fingerprint != now:
                what = (f"{name}={fingerprint!r} (now {now!r})" if name in _SHOWN_SETTINGS else
                        f"another {name} (or by a version of optax or ebm_ppl whose functions are named otherwise)")
                raise ValueError(f"checkpoint {path!r} was written by a run with {what}; resuming with this one would "
                                 "continue neither run. Pass the settings the run started with, or start a new run "
                                 "from its model (model.ebm, ep.load) in another checkpoint_dir")
        stored = meta.get("data_fingerprints")
        for name in ("data", "validation") if stored is not None else ():  # absent before they were kept
            was, now = stored.get(name), self.data_fingerprints.get(name)
            if was != now:
                mismatch = (f"on other {name} (their sizes or values differ); resuming on this {name}" if was and now
                            else f"with {name}; resuming without it" if was else f"without {name}; resuming with it")
                raise ValueError(f"checkpoint {path!r} was written by a run {mismatch} would continue neither run. "
                                 f"Pass the {name} the run started with, or start a new run from its model "
                                 "(model.ebm, ep.load) in another checkpoint_dir")
        self.state, meta = load_checkpoint(path, self.state)  # shapes, types and the key's generator
        if meta.get("key_fingerprint", self.key_fingerprint) != self.key_fingerprint:  # absent before it was kept
            raise ValueError(f"checkpoint {path!r} was written by a run with another key; resuming with this one "
                             "would continue neither run (its minibatches and samplers would follow the new key). "
                             "Pass the key the run started with, or train from scratch in another checkpoint_dir")
        if meta["epoch"] + 1 > self.settings.epochs:
            raise ValueError(f"checkpoint {path!r} already holds {meta['epoch'] + 1} epochs, more than "
                             f"epochs={self.settings.epochs}; pass epochs >= {meta['epoch'] + 1} to resume it (a run "
                             "that finished also left its model in model.ebm)")
        # absent before they were kept: a run that had stopped early or diverged is finished too
        self.history = History(meta["records"], meta["monitor"], meta["best_epoch"],
                               stopped=meta.get("stopped", "completed"), message=meta.get("message", ""),
                               recoveries=meta.get("recoveries", 0))
        self.epoch, self.monitor.best_value = meta["epoch"] + 1, meta["best_value"]
        if self.monitor.name is None:
            self.monitor.name = meta["monitor"]

    def train(self, progress: bool) -> None:
        """Run groups of epochs until the last, early stopping, or repeated divergence."""
        if self.history.stopped != "completed":  # a resumed run that had stopped early or diverged: finished
            self.bar = None
            return
        self.bar = _progress_bar(progress, self.settings.epochs, self.epoch)
        try:
            while self.epoch < self.settings.epochs:
                stop = self._group_end(self.epoch)
                done, records, new_state = self._train_group(stop)
                complete = bool(records) and self.epoch + done == stop  # else it diverged, or its metrics did
                if done and self._accept(done, records, new_state, complete=complete):
                    break
                if not complete and not self._recover():
                    break
        except KeyboardInterrupt:
            # Ctrl-C keeps the epochs accepted so far: checkpointed, resume continues after them
            # (not in the middle of a recovery, whose retry count a checkpoint does not keep; one
            # process only: under jax.distributed the others may not have stopped, and gathering
            # the state would wait for them)
            if self.checkpointing and self._consistent() and self.retries == 0 and jax.process_count() == 1:
                self._write_checkpoint()
            raise
        finally:
            if self.bar is not None:
                self.bar.close()

    def finish(self) -> tuple[Potential, History]:
        """The best model (the last if nothing was monitored) and the history; the final
        checkpoint and ``model.ebm`` written when checkpointing."""
        best = self.state.best_params if self.history.best_epoch is not None else self.state.params
        final = eqx.combine(self._local(best), self.static)
        if self.checkpointing:
            if self.history.records:
                self._write_checkpoint()
            if is_writer():
                self._guard_save(lambda: save(self._path(MODEL), final, metadata={
                    "epochs": len(self.history.records), "best_epoch": self.history.best_epoch,
                    "stopped": self.history.stopped}), MODEL)
        return final, self.history

    # -- inside train ------------------------------------------------------------------------------
    def _consistent(self) -> bool:
        """Whether the state, the epoch count and the history agree (they do between groups)."""
        return bool(self.history.records) and self.history.records[-1]["epoch"] + 1 == self.epoch

    def _evaluated(self, e: int) -> bool:
        """Whether metrics, the monitor and early stopping run after epoch ``e``."""
        s = self.settings
        return s.evaluating and ((e + 1) % s.eval_every == 0 or e == s.epochs - 1)

    def _needs_host(self, e: int) -> bool:
        every = self.settings.checkpoint_every
        return (e == self.settings.epochs - 1 or self.bar is not None or self._evaluated(e)
                or bool(self.checkpointing and every and (e + 1) % every == 0))

    def _group_end(self, epoch: int) -> int:
        """One past the last epoch of the group that starts at ``epoch``: up to the next epoch the
        host acts after, at most :data:`MAX_FUSED_EPOCHS`."""
        stop = epoch + 1
        while stop < min(self.settings.epochs, epoch + MAX_FUSED_EPOCHS) and not self._needs_host(stop - 1):
            stop += 1
        return stop

    def _train_group(self, stop: int) -> tuple[int, list[dict[str, float]], TrainState]:
        """Run epochs ``self.epoch .. stop - 1``; return how many were good, their records (the
        last one evaluated when due) and the state after them. Non-finite metrics reject the
        whole group (0 good epochs)."""
        s, epoch, tries = self.settings, self.epoch, self.settings.max_retries + 1
        plan = np.array([epoch, stop - epoch, self.retries, tries, self.rows], np.int32)
        carry, means, done = compiled.run_epochs(
            self.static, self.estimator, self.optimizer, self.frozen_mask, s.batch_size, self.shuffle,
            MAX_FUSED_EPOCHS, (self.state.params, self.state.opt_state, self.state.estimator_state), self.padded,
            self.key_loop, plan, self.sharding)
        means, done = jax.device_get((means, done))
        done = int(done)
        new_state = self.state.replace(params=carry[0], opt_state=carry[1], estimator_state=carry[2])
        records = [{"epoch": e, **{f"train_{k}": float(v[i]) for k, v in means.items()}}
                   for i, e in enumerate(range(epoch, epoch + done))]
        if epoch + done == stop and self._evaluated(stop - 1) and s.metrics is not None:
            index = (stop - 1) * tries + (self.retries if stop - 1 == epoch else 0)  # keyed like the epoch's shuffle
            model = eqx.combine(self._local(carry[0]), self.static)
            records[-1].update(self._evaluate(model, index))
            if not _finite(records[-1]):
                return 0, [], self.state
        return done, records, new_state

    def _accept(self, done: int, records, new_state: TrainState, *, complete: bool) -> bool:
        """Keep the good epochs; monitor, show and checkpoint them. Returns whether to stop early
        (checked after a ``complete`` group only)."""
        self.retries = 0
        self.history.records.extend(records)
        record = records[-1]
        if complete and self._evaluated(record["epoch"]) and self.monitor.update(record, self.history):
            new_state = new_state.replace(best_params=new_state.params)
        if self.bar is not None:
            self.bar.update(done)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k.startswith("val_")} or None)
        # state and epoch in one statement, last: a Ctrl-C before it leaves them a group behind the
        # records, which _consistent tells (no checkpoint is then written from them)
        self.state, self.epoch = new_state, self.epoch + done
        every = self.settings.checkpoint_every
        if self.checkpointing and every and self.epoch % every == 0:
            self._write_checkpoint()
        return complete and self.monitor.exhausted(record["epoch"], self.history)

    def _recover(self) -> bool:
        """After a diverged group: restore the last good state with half the step size and a
        re-seeded sampler; False (and a warning) after ``max_retries`` failures in a row."""
        self.retries += 1
        max_retries = self.settings.max_retries
        if self.retries > max_retries:
            self.history.stopped = "diverged"
            self.history.message = (f"training diverged at epoch {self.epoch} {max_retries + 1} times in a row "
                                    "(non-finite or exploding parameters/metrics) despite lowering the step size; "
                                    "stopped and kept the last good model")
            warnings.warn(self.history.message, TrainingDiverged, skip_file_prefixes=_PACKAGE)
            return False
        self.history.recoveries += 1
        state = compiled.scale_step(self.state, 0.5)
        if hasattr(state.estimator_state, "key"):
            est = state.estimator_state
            # through the partitionable twin: after a sharded group the key is replicated over the devices
            key = from_sharding(jax.random.fold_in(for_sharding(est.key), self.retries))
            state = state.replace(estimator_state=est._replace(key=key))
        self.state = state
        return True

    def _local(self, params):
        """``params`` as arrays of this process's default device: after a sharded group they are
        replicated over every device, and a program given them would run on all of them (where
        ebm_ppl's default Philox cannot be compiled; the user's next call should not have to know)."""
        if self.sharding is None:
            return params
        return jax.tree.map(lambda a: jax.numpy.asarray(to_host(a)) if isinstance(a, jax.Array) else a, params)

    def _evaluate(self, model: Potential, index: int) -> dict[str, float]:
        """The epoch's metrics on the training and validation data, keyed by ``fold_in(key_loop,
        index)``'s second half; the default Boltzmann metrics in one compiled call with one log Z."""
        s = self.settings
        key = jax.random.split(jax.random.fold_in(self.key_loop, index))[1]
        if s.metrics is boltzmann_metrics:
            return padded_boltzmann_metrics(model, self.metric_sets, key)
        sets = {"train_": s.data} if s.validation is None else {"train_": s.data, "val_": s.validation}
        out = {}
        for prefix, d in sets.items():
            values = s.metrics(model, d, key, prefix)
            if not isinstance(values, dict):
                raise TypeError(f"fit: metrics must return a dict of numbers, got {type(values).__name__}")
            for name, value in values.items():
                try:
                    out[name] = float(value)
                except (TypeError, ValueError):
                    raise TypeError(f"fit: metric {name!r} is not a number ({value!r})") from None
        return out

    # -- files -------------------------------------------------------------------------------------
    def _path(self, name: str) -> str | None:
        return None if self.settings.checkpoint_dir is None else os.path.join(self.settings.checkpoint_dir, name)

    def _write_checkpoint(self) -> None:
        meta = {"epoch": self.history.records[-1]["epoch"], "records": self.history.records,
                "monitor": self.history.monitor, "best_epoch": self.history.best_epoch,
                "best_value": self.monitor.best_value, "shuffle": self.shuffle,
                "key_fingerprint": self.key_fingerprint, "data_fingerprints": self.data_fingerprints,
                "settings_fingerprints": self.settings_fingerprints, "stopped": self.history.stopped,
                "message": self.history.message, "recoveries": self.history.recoveries}
        state = _gathered(self.state)  # every process takes part; process 0 writes
        if is_writer():
            self._guard_save(lambda: save_checkpoint(self._path(CHECKPOINT), state, meta), CHECKPOINT)

    def _guard_save(self, write: Callable[[], None], what: str) -> None:
        """Run ``write``; a failure becomes a :class:`CheckpointWarning` (training and the
        returned model do not depend on the files)."""
        try:
            write()
        except (OSError, ValueError) as exc:
            warnings.warn(f"fit: could not write {what} in {self.settings.checkpoint_dir!r} ({exc}); training "
                          "continues and the trained model is returned", CheckpointWarning,
                          skip_file_prefixes=_PACKAGE)


#: Settings a refused resume names with their checkpoint's value (the others by a fingerprint).
_SHOWN_SETTINGS = ("batch_size", "freeze", "mode", "patience", "eval_every")


def _gathered(state: TrainState) -> TrainState:
    """``state`` with arrays spread over several processes gathered to numpy (keys kept)."""
    return jax.tree.map(lambda leaf: leaf if is_key(leaf) or not isinstance(leaf, jax.Array) else to_host(leaf),
                        state)


def data_fingerprint(arrays: tuple) -> str:
    """A hash of ``arrays`` (shapes, types and values), as kept in checkpoints."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(to_host(a))
        digest.update(f"{a.shape}{a.dtype.str};".encode())
        digest.update(a.reshape(-1).view(np.uint8))  # bytes of any type (bfloat16 has no buffer format)
    return digest.hexdigest()[:16]


def _finite(record: dict[str, float]) -> bool:
    return all(math.isfinite(v) and abs(v) < EXPLOSION for v in record.values())


def _progress_bar(enabled: bool, epochs: int, start: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=epochs, initial=start, desc="training", unit="epoch", file=sys.stderr)
