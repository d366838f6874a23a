"""The JEM objective: a classifier trained as a joint energy model (chapter eq. 6.26-6.31).

Grathwohl et al. (2019), "Your classifier is secretly an energy based model and you should treat
it like one". With logits ``f(x)`` and the marginal energy ``E(x) = -logsumexp_y f(x)[y]``,

    log p(x, y) = log p(y | x) + log p(x),

so the loss of a batch ``(x, y)`` is the cross-entropy plus the negative log-likelihood of x, whose
gradient is estimated with negatives ``x~`` from the model (eq. 6.28-6.31):

    L = L_clf + gen_weight * L_gen (+ energy_l2 * [mean E(x)^2 + mean E(x~)^2]),
    L_clf = mean_i -log softmax(f(x_i))[y_i],
    L_gen = mean_i E(x_i) - mean_j E(stop_gradient(x~_j)).

The negatives come from ``langevin_steps`` steps of the library's unadjusted Langevin kernel
(:mod:`ebm_ppl.kernels.langevin`) on ``log p = -E`` with step size alpha and a separate noise scale
sigma (defaults alpha = 1, sigma = 0.01: a tempered, nearly deterministic dynamics, T = 5e-5),
started either from uniform noise (short-run, Nijkamp et al. 2019) or from a replay buffer
(persistent, as in Grathwohl et al.'s code: a fraction ``reinit_prob`` of the drawn chains restarts
from noise).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.compiler import filter_jit
from ebm_ppl.moves.langevin import run as langevin_run
from ebm_ppl.potentials.base import Potential, is_concrete, validate_input
from ebm_ppl.sharding import shard_rows
from ebm_ppl.training.rows import bucket_rows, masked_mean, pad_rows

__all__ = ["JEMEstimator", "JEMState", "jem", "jem_loss", "langevin_negatives", "replay_negatives",
           "langevin_samples", "jem_metrics"]

#: The number of short-run negatives the per-epoch metrics draw (fewer when the data is smaller).
METRIC_NEGATIVES = 256


class JEMState(NamedTuple):
    """``key``: the sampler's PRNG key; ``buffer``: the replay buffer ``(buffer_size, *event)``
    (persistent mode) or None (short-run)."""

    key: PRNGKeyArray
    buffer: Array | None


# -- the loss -----------------------------------------------------------------------------------------

def jem_loss(
    model: Potential,
    x: Array,
    y: Array,
    x_neg: Array,
    energy_l2: float = 0.0,
    gen_weight: float = 1.0,
) -> tuple[Array, dict[str, Array]]:
    """The JEM loss of one batch with given negatives (eq. 6.26-6.31); pure, differentiable in ``model``.

    Args:
        model: a :class:`ebm_ppl.JEM` (anything with ``net`` mapping one example to K logits).
        x: data ``(B, *event)``.
        y: int labels ``(B,)``.
        x_neg: negatives ``(M, *event)``; gradients do not flow through them (stop_gradient).
        energy_l2: weight of ``mean E(x)^2 + mean E(x_neg)^2`` (keeps energies near 0).
        gen_weight: weight of the generative term L_gen.

    Returns:
        ``(loss, aux)`` with ``aux`` = clf_loss, gen_loss, accuracy, energy_data, energy_neg
        (batch means).
    """
    nll, e_data, e_neg, correct = _per_example(model, x, y, x_neg)
    clf_loss = jnp.mean(nll)
    gen_loss = jnp.mean(e_data) - jnp.mean(e_neg)
    loss = clf_loss + gen_weight * gen_loss
    if not isinstance(energy_l2, (int, float)) or energy_l2:
        loss = loss + energy_l2 * (jnp.mean(e_data**2) + jnp.mean(e_neg**2))
    aux = {"clf_loss": clf_loss, "gen_loss": gen_loss, "accuracy": jnp.mean(correct),
           "energy_data": jnp.mean(e_data), "energy_neg": jnp.mean(e_neg)}
    return loss, aux


def _per_example(model: Potential, x: Array, y: Array, x_neg: Array) -> tuple[Array, Array, Array, Array]:
    """``(nll (B,), e_data (B,), e_neg (M,), correct (B,))``: each example's cross-entropy
    ``-log p(y | x)``, energy ``-logsumexp(logits)`` and 0/1 correctness, the negatives' energies."""
    # one forward pass over data and negatives (a 2B-row matmul per layer beats two B-row ones)
    both = jax.vmap(model.net)(jnp.concatenate([x, jax.lax.stop_gradient(x_neg)]))
    logits, logits_neg = both[: x.shape[0]], both[x.shape[0]:]
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # stable: never log(softmax)
    nll = -jnp.take_along_axis(log_probs, y[:, None], axis=-1)[:, 0]
    correct = (jnp.argmax(logits, axis=-1) == y).astype(logits.dtype)
    return nll, -jax.nn.logsumexp(logits, axis=-1), -jax.nn.logsumexp(logits_neg, axis=-1), correct


# -- the samplers -------------------------------------------------------------------------------------

def langevin_negatives(
    key: PRNGKeyArray, model: Potential, x0: Array, steps: int, step_size: float, noise_scale: float | None
) -> Array:
    """``steps`` unadjusted Langevin steps (the library kernel, log p = -E) from every row of
    ``x0`` ``(N, *event)``; returns ``(N, *event)``.

    Chain i runs :func:`ebm_ppl.moves.langevin.run` with key ``jax.random.split(key, N)[i]``
    (vmapped over chains, ``lax.scan`` over steps): ``steps`` gradient evaluations per chain, the
    same moves as the kernel's ``init`` + ``steps`` ``step`` calls without the gradient at the end.
    """
    if steps == 0:
        return x0
    chain = functools.partial(langevin_run, logdensity_fn=model.logdensity_fn(), num_steps=steps,
                              step_size=step_size, noise_scale=noise_scale)
    # chains over the devices of a sharded ep.fit (no-op elsewhere)
    return shard_rows(jax.vmap(chain)(shard_rows(jax.random.split(key, x0.shape[0])), shard_rows(x0)))


def _uniform(key: PRNGKeyArray, shape: tuple[int, ...], dtype, low: float, high: float) -> Array:
    return jax.random.uniform(key, shape, dtype, minval=low, maxval=high)


def replay_negatives(
    key: PRNGKeyArray,
    model: Potential,
    buffer: Array,
    num: int,
    *,
    reinit_prob: float,
    init_low: float,
    init_high: float,
    steps: int,
    step_size: float,
    noise_scale: float | None,
) -> tuple[Array, Array, Array]:
    """Negatives from a replay buffer (Grathwohl et al. 2019; Du & Mordatch 2019).

    Draws ``num`` distinct buffer indices, restarts each drawn chain from uniform noise on
    ``[init_low, init_high]`` with probability ``reinit_prob``, runs Langevin, and writes the results
    back at the drawn indices. (Distinct indices, unlike the reference code's draw with
    replacement, make the write-back well defined.)

    Returns:
        ``(x_neg (num, *event), new_buffer, indices (num,))``.
    """
    k_idx, k_mask, k_noise, k_run = jax.random.split(key, 4)
    idx = jax.random.choice(k_idx, buffer.shape[0], (num,), replace=False)
    start = buffer[idx]
    restart = jax.random.uniform(k_mask, (num,)) < reinit_prob
    noise = _uniform(k_noise, start.shape, start.dtype, init_low, init_high)
    mask = restart.reshape((num,) + (1,) * (start.ndim - 1))
    x_neg = langevin_negatives(k_run, model, jnp.where(mask, noise, start), steps, step_size, noise_scale)
    return x_neg, buffer.at[idx].set(x_neg), idx


@filter_jit
def _samples(key, model, num: int, init, steps: int, step_size: float, noise_scale, low: float, high: float):
    k_init, k_run = jax.random.split(key)
    if init is None:
        init = _uniform(k_init, (num, *model.event_shape), jnp.result_type(float), low, high)
    return langevin_negatives(k_run, model, init, steps, step_size, noise_scale)


def langevin_samples(
    key: PRNGKeyArray,
    model: Potential,
    num: int,
    *,
    steps: int = 20,
    step_size: float = 1.0,
    noise_scale: float | None = 0.01,
    init: ArrayLike | None = None,
    init_low: float = -1.0,
    init_high: float = 1.0,
) -> Array:
    """``num`` samples of ``model`` by ``steps`` unadjusted Langevin steps (x' = x + alpha grad log p
    + sigma xi; JEM's defaults alpha = 1, sigma = 0.01), from uniform noise on
    ``[init_low, init_high]`` or from ``init`` ``(num, *event)``; returns ``(num, *event_shape)``."""
    if not isinstance(model, Potential):
        raise TypeError(f"langevin_samples expects an ebm_ppl.Potential, got {type(model).__name__}")
    num = checks.int_at_least(num, "num", 1)
    steps = checks.int_at_least(steps, "steps", 0)
    step_size, noise_scale, low, high = _check_sampler(step_size, noise_scale, init_low, init_high,
                                                       "langevin_samples")
    size = math.prod(model.event_shape)
    checks.check_memory(2 * num * size * jnp.dtype(jnp.result_type(float)).itemsize,
                        f"{num} samples x {size} values, and their gradients", owner="langevin_samples")
    if init is not None:
        init = validate_input(init, model.event_shape, model.support, name="init", owner="langevin_samples")
        init = init.astype(jnp.result_type(float))
        if init.shape != (num, *model.event_shape):
            raise ValueError(f"langevin_samples: init must have shape {(num, *model.event_shape)}, got {init.shape}")
    return _samples(key, model, num, init, steps, step_size, noise_scale, low, high)


# -- per-epoch metrics --------------------------------------------------------------------------------

@filter_jit
def _metric_values(model, x, y, n, key, num_neg: int, steps: int, step_size: float, noise_scale, low, high):
    """clf_loss, gen_loss and accuracy of the first ``n`` (traced) rows of ``x`` and ``y``, padded
    to a bucket of rows (:mod:`ebm_ppl.training.rows`), with the first ``min(n, num_neg)`` of
    ``num_neg`` short-run negatives."""
    k_init, k_run = jax.random.split(key)
    x0 = _uniform(k_init, (num_neg, *x.shape[1:]), x.dtype, low, high)
    x_neg = langevin_negatives(k_run, model, x0, steps, step_size, noise_scale)
    nll, e_data, e_neg, correct = _per_example(model, x, y, x_neg)
    gen = masked_mean(e_data, n) - masked_mean(e_neg, jnp.minimum(n, num_neg))
    return masked_mean(nll, n), gen, masked_mean(correct, n)


def jem_metrics(
    *,
    steps: int = 20,
    step_size: float = 1.0,
    noise_scale: float | None = 0.01,
    init_low: float = -1.0,
    init_high: float = 1.0,
    num_negatives: int = METRIC_NEGATIVES,
) -> Callable[..., dict[str, float]]:
    """``metrics(model, (x, y), key, prefix)`` for :func:`ebm_ppl.fit`: the cross-entropy
    ``clf_loss`` and ``accuracy`` over all of (x, y), the ``gen_loss`` L_gen = mean E(x) - mean
    E(x~) with ``min(N, num_negatives)`` short-run negatives from uniform noise (the same for a
    given key), and ``loss`` = clf_loss + gen_loss, the curves of the chapter's Fig. 6.2. The data
    are padded to a bucket of rows (:mod:`ebm_ppl.training.rows`), so one compiled program serves
    data sizes up to 25% apart."""
    steps = checks.int_at_least(steps, "jem_metrics: steps", 0)
    num_negatives = checks.int_at_least(num_negatives, "jem_metrics: num_negatives", 1)
    step_size, noise_scale, init_low, init_high = _check_sampler(step_size, noise_scale, init_low, init_high,
                                                                 "jem_metrics")

    def metrics(model: Potential, data: tuple[Array, ...], key: PRNGKeyArray, prefix: str) -> dict[str, float]:
        x, y = jnp.asarray(data[0]), jnp.asarray(data[1])
        n, size = x.shape[0], bucket_rows(x.shape[0], key)  # one program per bucket of rows
        x, y = pad_rows((x, y), size)
        clf, gen, acc = _metric_values(model, x, y, jnp.int32(n), key, min(size, num_negatives), steps,
                                       float(step_size), noise_scale, float(init_low), float(init_high))
        clf, gen = float(clf), float(gen)
        return {f"{prefix}loss": clf + gen, f"{prefix}clf_loss": clf, f"{prefix}gen_loss": gen,
                f"{prefix}accuracy": float(acc)}

    metrics.pads_rows = True  # a padded copy of the data per call (ep.fit's memory check counts it)
    return metrics


# -- the estimator ------------------------------------------------------------------------------------

def jem(
    *,
    langevin_steps: int = 20,
    step_size: float = 1.0,
    noise_scale: float | None = 0.01,
    buffer_size: int = 10_000,
    reinit_prob: float = 0.05,
    persistent: bool = False,
    energy_l2: float = 0.0,
    gen_weight: float = 1.0,
    init_low: float = -1.0,
    init_high: float = 1.0,
) -> JEMEstimator:
    """The JEM gradient estimator for :func:`ebm_ppl.fit` on data ``(x, y)`` (Grathwohl et al. 2019).

    Args:
        langevin_steps: Langevin steps per batch (20 in the chapter).
        step_size: alpha, the gradient step of the Langevin update (1.0).
        noise_scale: sigma, the noise std (0.01); None means sqrt(2 alpha), proper Langevin.
        buffer_size: replay-buffer size (persistent mode).
        reinit_prob: probability that a drawn buffer chain restarts from noise (persistent mode).
        persistent: False: short-run chains from uniform noise each batch; True: replay buffer.
        energy_l2: weight of the energy-magnitude penalty ``mean E(x)^2 + mean E(x~)^2``.
        gen_weight: weight of L_gen; 0 trains a plain classifier (negatives still drawn).
        init_low: lower end of the uniform noise the chains start from.
        init_high: upper end of that noise.

    Returns:
        :class:`JEMEstimator` (``init``, ``update``, ``metrics``). Step metrics: loss, clf_loss, gen_loss,
        accuracy, energy_data, energy_neg. Epoch metrics: see :func:`jem_metrics` (short-run
        negatives in both modes, so curves compare across modes).
    """
    langevin_steps = checks.int_at_least(langevin_steps, "langevin_steps", 0)
    buffer_size = checks.int_at_least(buffer_size, "buffer_size", 1)
    step_size, noise_scale, low, high = _check_sampler(step_size, noise_scale, init_low, init_high, "jem")
    energy_l2 = checks.non_negative_float(energy_l2, "jem: energy_l2")
    gen_weight = checks.non_negative_float(gen_weight, "jem: gen_weight")
    reinit_prob = checks.number(reinit_prob, "jem: reinit_prob")
    if not 0 <= reinit_prob <= 1:
        raise ValueError(f"jem: reinit_prob must lie in [0, 1], got {reinit_prob!r}")
    persistent = checks.flag(persistent, "jem: persistent")
    return JEMEstimator(langevin_steps, step_size, noise_scale, buffer_size, reinit_prob, persistent,
                        energy_l2, gen_weight, low, high)


class JEMEstimator(eqx.Module):
    """The JEM gradient estimator (``init``, ``update``, as :class:`ebm_ppl.training.GradientEstimator`)
    with its per-epoch ``metrics(model, data, key, prefix)``, which :func:`ebm_ppl.fit` uses by
    default. Build it with :func:`jem`; its settings are static fields, so two estimators of equal
    settings are equal and share ``fit``'s compiled program across calls."""

    langevin_steps: int = eqx.field(static=True)
    step_size: float = eqx.field(static=True)
    noise_scale: float | None = eqx.field(static=True)
    buffer_size: int = eqx.field(static=True)
    reinit_prob: float = eqx.field(static=True)
    persistent: bool = eqx.field(static=True)
    energy_l2: float = eqx.field(static=True)
    gen_weight: float = eqx.field(static=True)
    init_low: float = eqx.field(static=True)
    init_high: float = eqx.field(static=True)

    init_takes_num_rows = True  # see ebm_ppl.training.GradientEstimator (its init reads no rows)
    data_arrays = 2  # (x, y)

    def check_data(self, model: Potential, data: tuple[Array, ...], name: str) -> None:
        """Refuse, before training, labels that are not integers 0 .. K-1, one per row of x (a
        label -1 would train as K-1 by negative indexing)."""
        y, n, k = data[1], data[0].shape[0], getattr(model, "num_classes", None)
        if y.shape != (n,) or not jnp.issubdtype(y.dtype, jnp.integer):
            raise ValueError(f"fit: the labels of {name} must be integers of shape ({n},), one label number per "
                             f"example (not one-hot rows: take y.argmax(-1)), got {y.dtype} {y.shape}")
        values = np.asarray(y) if k is not None and y.size and is_concrete(y) else None
        if values is not None and (values.min() < 0 or values.max() >= k):
            raise ValueError(f"fit: the labels of {name} must lie in 0 .. {k - 1} (the model's {k} classes), got "
                             f"range [{int(values.min())}, {int(values.max())}]")

    def init(self, key: PRNGKeyArray, model: Potential, data: Any = None, num_rows: Array | None = None) -> JEMState:
        """The state: the sampler's key, and the replay buffer ``(buffer_size, *event)`` of uniform
        noise in persistent mode."""
        if not hasattr(model, "net") or not hasattr(model, "num_classes"):
            raise TypeError(f"jem: the JEM objective needs a classifier potential (ebm_ppl.JEM), got "
                            f"{type(model).__name__}")
        if data is not None and (not isinstance(data, tuple) or len(data) < 2):
            raise ValueError("jem: the data must be a tuple (x, y) of images and integer labels")
        if data is not None and not jnp.issubdtype(jnp.asarray(data[1]).dtype, jnp.integer):
            raise ValueError(f"jem: labels y must be integers, got dtype {jnp.asarray(data[1]).dtype}")
        if not self.persistent:
            return JEMState(key, None)
        key, sub = jax.random.split(key)
        dtype = jnp.asarray(data[0]).dtype if data is not None else jnp.result_type(float)
        return JEMState(key, _uniform(sub, (self.buffer_size, *model.event_shape), dtype, self.init_low,
                                      self.init_high))

    def update(self, model: Potential, batch: tuple[Array, ...], state: JEMState):
        """Gradients of L_clf + L_gen on the batch ``(x (B, *event), y (B,))``, the new state and the
        step metrics (loss, clf_loss, gen_loss, accuracy, energy_data, energy_neg)."""
        x, y = batch[0], batch[1]
        key, sub = jax.random.split(state.key)
        if self.persistent:
            if x.shape[0] > state.buffer.shape[0]:
                raise ValueError(f"jem: batch size {x.shape[0]} exceeds buffer_size {state.buffer.shape[0]}")
            x_neg, buffer, _ = replay_negatives(sub, model, state.buffer, x.shape[0], reinit_prob=self.reinit_prob,
                                                init_low=self.init_low, init_high=self.init_high,
                                                steps=self.langevin_steps, step_size=self.step_size,
                                                noise_scale=self.noise_scale)
        else:
            k_init, k_run = jax.random.split(sub)
            x0 = _uniform(k_init, x.shape, x.dtype, self.init_low, self.init_high)
            x_neg = langevin_negatives(k_run, model, x0, self.langevin_steps, self.step_size, self.noise_scale)
            buffer = None
        grad_fn = eqx.filter_value_and_grad(jem_loss, has_aux=True)
        (loss, aux), grads = grad_fn(model, x, y, x_neg, self.energy_l2, self.gen_weight)
        return grads, JEMState(key, buffer), {"loss": loss, **aux}

    def metrics(self, model: Potential, data: tuple[Array, ...], key: PRNGKeyArray, prefix: str) -> dict[str, float]:
        """:func:`jem_metrics` with this estimator's sampler settings (short-run negatives in both
        modes, so curves compare across modes)."""
        return jem_metrics(steps=self.langevin_steps, step_size=self.step_size, noise_scale=self.noise_scale,
                           init_low=self.init_low, init_high=self.init_high)(model, data, key, prefix)

    metrics.pads_rows = True


# -- argument checks ----------------------------------------------------------------------------------

def _check_sampler(step_size, noise_scale, low, high, owner: str) -> tuple[float, float | None, float, float]:
    """The Langevin settings as Python numbers: ``(step_size, noise_scale, init_low, init_high)``."""
    step_size = checks.positive_float(step_size, f"{owner}: step_size")
    noise_scale = None if noise_scale is None else checks.non_negative_float(noise_scale, f"{owner}: noise_scale")
    low, high = checks.number(low, f"{owner}: init_low"), checks.number(high, f"{owner}: init_high")
    if not low < high:
        raise ValueError(f"{owner}: need init_low < init_high, got {low!r}, {high!r}")
    return step_size, noise_scale, low, high
