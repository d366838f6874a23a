"""The compiled part of :func:`ebm_ppl.fit`: the training state and groups of epochs in one program.

A call of :func:`run_epochs` runs a ``lax.while_loop`` over epochs, each a loop over
minibatches, and checks the parameters and the epoch's mean step metrics for divergence after
every epoch, so the host fetches one small result per call. The programs are module-level and
take the model's static part, the estimator and the optimizer as static arguments, so a later
call with equal ones and the same shapes reuses the compiled code; the data arrive padded to a
bucket of rows (:mod:`ebm_ppl.training.rows`), so a new data size within the bucket does too.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl.compiler import filter_jit
from ebm_ppl.random import for_sharding, from_sharding, is_key, rekey
from ebm_ppl.sharding import rows_over, shard_rows
from ebm_ppl.training.rows import masked_mean, shuffled_rows

__all__ = ["TrainState", "EXPLOSION", "MAX_FUSED_EPOCHS", "DEFAULT_OPTIMIZER", "freeze_mask", "init_state",
           "run_epochs", "healthy", "scale_step"]

#: |parameter| or |metric| beyond this counts as divergence (Grathwohl et al.'s guard).
EXPLOSION = 1e8
#: The most epochs one compiled call runs. Fixed, so that every call, fused or not, runs the same
#: compiled program (the results do not depend on how the epochs were grouped into calls).
MAX_FUSED_EPOCHS = 64
#: ``optax.sgd(0.05, momentum=0.5)``: one object, so that fits with the default optimizer share
#: their compiled program.
DEFAULT_OPTIMIZER = optax.sgd(0.05, momentum=0.5)


class TrainState(eqx.Module):
    """Everything a run carries between epochs (and a checkpoint stores): the parameters, the
    optimizer's and the estimator's states, and the best parameters so far."""

    params: Any
    opt_state: Any
    estimator_state: Any
    best_params: Any

    def replace(self, **changes: Any) -> "TrainState":
        return dataclasses.replace(self, **changes)


def scale_step(state: TrainState, factor: float) -> TrainState:
    """``state`` with the guard's step size multiplied by ``factor``."""
    inner, guard = state.opt_state
    hyper = dict(guard.hyperparams)
    hyper["step_size"] = hyper["step_size"] * factor
    return state.replace(opt_state=(inner, guard._replace(hyperparams=hyper)))


def freeze_mask(params: Any, freeze: Sequence[str]) -> Any:
    """A pytree of ``params``'s structure, True in the fields named in ``freeze``; ValueError for
    a name ``params`` has no field of."""
    unknown = [f for f in freeze if not hasattr(params, f)]
    if unknown:
        raise ValueError(f"freeze: {type(params).__name__} has no field(s) {unknown}")
    mask = jax.tree.map(lambda _: False, params)
    for name in freeze:
        mask = eqx.tree_at(lambda m, name=name: getattr(m, name), mask,
                           replace_fn=lambda sub: jax.tree.map(lambda _: True, sub))
    return mask


def healthy(params: Any, means: Any) -> Array:
    """Traced: True when every parameter is finite and at most :data:`EXPLOSION` in magnitude and
    every mean is finite and below it (NaN fails both comparisons)."""
    ok = jnp.array(True)
    for leaf in jax.tree.leaves(eqx.filter(params, eqx.is_inexact_array)):
        ok = ok & jnp.all(jnp.abs(leaf) <= EXPLOSION)
    for value in jax.tree.leaves(means):
        ok = ok & jnp.all(jnp.abs(value) < EXPLOSION)
    return ok


@filter_jit
def init_state(params, static, estimator, optimizer, data: tuple[Array, ...], key, prng_impl: str | None,
               num_rows: Array | None = None):
    """The initial :class:`TrainState` and the key of the epoch loop, from the user's ``key``.
    With ``num_rows`` (int32, traced) ``data`` are padded past that many rows, and the estimator
    reads only those (it declares ``init_takes_num_rows``), so one program
    serves every data size of a bucket."""
    key_init, key_loop = jax.random.split(rekey(key, prng_impl))
    model = eqx.combine(params, static)
    state = (estimator.init(key_init, model, data) if num_rows is None
             else estimator.init(key_init, model, data, num_rows=num_rows))
    return TrainState(params, optimizer.init(params), state, params), key_loop


def _map_keys(fn, tree):
    return jax.tree.map(lambda leaf: fn(leaf) if is_key(leaf) else leaf, tree)


@filter_jit
def run_epochs(static, estimator, optimizer, frozen_mask, batch_size: int, shuffle: bool, capacity: int, carry,
               data: tuple[Array, ...], key_loop: PRNGKeyArray, plan, sharding=None):
    """Run epochs ``start, ..., start + num - 1`` (``plan = [start, num, retries, tries, n]``,
    int32) until one diverges, each a loop over the ``n // batch_size`` minibatches of the first
    ``n`` rows of ``data`` (shuffled, or in the data's order when ``shuffle`` is False). ``data``
    holds :func:`ebm_ppl.training.rows.bucket_rows` rows (:func:`~ebm_ppl.training.rows.pad_rows`),
    so one compiled program serves every ``n`` of a bucket; the padding is never read.

    Epoch ``e`` shuffles with ``fold_in(key_loop, e * tries + r)``'s first half, ``r`` = ``retries``
    for the first epoch and 0 after it, so a run does not depend on how its epochs are grouped;
    its order is ``jax.random.permutation(key, n)``'s (:func:`~ebm_ppl.training.rows.shuffled_rows`).

    With ``sharding`` (:func:`ebm_ppl.sharding.axis_sharding`), each minibatch's rows and the
    arrays the estimator lays out with :func:`ebm_ppl.sharding.shard_rows` are split over its
    devices, the rest replicated; XLA sums the gradients across devices. Keys are drawn from
    through their partitionable twin inside and returned as they came, so the state (and a
    checkpoint of it) does not depend on the device count.

    Returns:
        ``(carry, means, done)``: ``carry = (params, opt_state, estimator_state)`` after the
        ``done`` good epochs, and each step metric's epoch means, shape ``(capacity,)``, valid in
        ``[:done]``. ``done < num`` means epoch ``start + done`` diverged (non-finite or exploding
        parameters or means) and was discarded.
    """
    if plan.shape != (5,):
        raise ValueError(f"run_epochs: plan must be [start, num, retries, tries, n], got shape {plan.shape}")
    if sharding is None:
        return _epochs(static, estimator, optimizer, frozen_mask, batch_size, shuffle, capacity, carry, data,
                       key_loop, plan)
    with rows_over(sharding):
        carry, buffer, done = _epochs(static, estimator, optimizer, frozen_mask, batch_size, shuffle, capacity,
                                      _map_keys(for_sharding, carry), data, for_sharding(key_loop), plan)
    return _map_keys(from_sharding, carry), buffer, done


def _epochs(static, estimator, optimizer, frozen_mask, batch_size, shuffle, capacity, carry, data, key_loop, plan):
    start, num, retries, tries, n = plan[0], plan[1], plan[2], plan[3], plan[4]
    size = data[0].shape[0]  # the bucket's rows; the first n are the data
    num_batches = n // batch_size
    # the epoch's per-step metrics, one slot per minibatch of the largest data of the bucket
    step_shapes = jax.eval_shape(lambda: estimator.update(
        eqx.combine(carry[0], static), tuple(a[:batch_size] for a in data), carry[2])[2])

    def one_epoch(carry, key):
        order = shuffled_rows(key, n, size) if shuffle else None

        def step(i, loop):
            (params, opt_state, est_state), per_step = loop
            if shuffle:
                rows = lax.dynamic_slice_in_dim(order, i * batch_size, batch_size)
                batch = tuple(a[rows] for a in data)
            else:
                batch = tuple(lax.dynamic_slice_in_dim(a, i * batch_size, batch_size) for a in data)
            batch = tuple(shard_rows(a) for a in batch)
            grads, est_state, step_metrics = estimator.update(eqx.combine(params, static), batch, est_state)
            grads = eqx.filter(grads, eqx.is_inexact_array)
            if any(jax.tree.leaves(frozen_mask)):
                grads = jax.tree.map(lambda g, frozen: jnp.zeros_like(g) if frozen else g, grads, frozen_mask)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            per_step = jax.tree.map(lambda b, m: b.at[i].set(m), per_step, step_metrics)
            return (eqx.apply_updates(params, updates), opt_state, est_state), per_step

        per_step = jax.tree.map(lambda s: jnp.zeros((size // batch_size, *s.shape), s.dtype), step_shapes)
        carry, per_step = lax.fori_loop(0, num_batches, step, (carry, per_step))
        return carry, jax.tree.map(lambda b: masked_mean(b, num_batches), per_step)

    def body(loop):
        i, _, carry, buffer = loop
        epoch_key = jax.random.fold_in(key_loop, (start + i) * tries + jnp.where(i == 0, retries, 0))
        new_carry, means = one_epoch(carry, jax.random.split(epoch_key)[0])
        good = healthy(new_carry[0], means)
        carry = jax.tree.map(lambda new, old: lax.select(good, new, old), new_carry, carry)
        buffer = jax.tree.map(lambda b, m: b.at[i].set(m), buffer, means)
        return i + good.astype(i.dtype), good, carry, buffer

    means = jax.eval_shape(lambda: jax.tree.map(lambda s: masked_mean(jnp.zeros((1, *s.shape), s.dtype), 1),
                                                step_shapes))  # the epoch means' shapes, without tracing an epoch
    buffer = jax.tree.map(lambda s: jnp.zeros((capacity, *s.shape), s.dtype), means)
    loop = (jnp.zeros((), jnp.int32), jnp.array(True), carry, buffer)
    done, _, carry, buffer = lax.while_loop(lambda loop: loop[1] & (loop[0] < num), body, loop)
    return carry, buffer, done
