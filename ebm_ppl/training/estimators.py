"""Log-likelihood gradient estimators for energy models, in Optax's ``init``/``update`` shape.

For p(x) = exp(-F(x)) / Z the gradient of the mean negative log-likelihood of a batch is
(chapter eq. 6.40-6.43)

    grad NLL = E_data[grad F(x)] - E_model[grad F(x)],

whose second term needs model samples. An estimator supplies them from a Markov chain:

* :func:`cd` (contrastive divergence, Hinton 2002): k Gibbs sweeps started at the batch;
* :func:`pcd` (persistent CD, Tieleman 2008): k sweeps of chains carried in the state.

Both return gradients with the model's pytree structure, so any Optax optimizer (with weight
decay, momentum, schedules) applies them; nothing of that is re-written here. Both work for every
potential with block conditionals (the RBM family) and for binary potentials through site Gibbs.
The estimate is ``grad [mean F(x_data) - mean F(stop_gradient(x_model))]``; for latent-variable
models grad F is the exact conditional expectation of the joint-energy gradient, i.e. the usual
CD update with hidden probabilities.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.moves import gibbs
from ebm_ppl.potentials.base import Potential
from ebm_ppl.potentials.capabilities import has_closed_form_gradient
from ebm_ppl.sharding import shard_rows
from ebm_ppl.training.rows import random_rows

__all__ = ["GradientEstimator", "CDEstimator", "PCDEstimator", "CDState", "PCDState", "cd", "pcd", "gibbs_sweeps", "grads_and_metrics",
           "free_energy_gap"]


class GradientEstimator(NamedTuple):
    """``init(key, model, data) -> state``; ``update(model, batch, state) -> (grads, state, metrics)``.

    An estimator whose ``init`` also takes ``num_rows`` (an int32 scalar, traced) and then reads
    only the first ``num_rows`` rows of ``data`` says so with a class attribute
    ``init_takes_num_rows = True``; :func:`ebm_ppl.fit` then gives it the data padded to a bucket
    of rows, so its initial state compiles once per bucket rather than once per data size.

    Two optional attributes let :func:`ebm_ppl.fit` refuse, before training, data the estimator
    would misread: ``data_arrays``, how many arrays of the data it reads (1: ``x``; 2: ``(x, y)``),
    and ``check_data(model, arrays, name)``, which raises a ValueError for values it cannot train
    on (labels out of range), ``name`` being ``"data"`` or ``"validation"``.

    ``batch`` is a tuple of arrays (``(x,)`` for unsupervised models, ``(x, y)`` for JEM);
    ``metrics`` is a dict of scalars averaged over an epoch by :func:`ebm_ppl.fit`. Both functions
    are traced (:func:`ebm_ppl.fit` compiles them). Any object with these two methods is an
    estimator; :func:`cd` and :func:`pcd` return Equinox modules with static settings, so two
    estimators of equal settings are equal and share ``fit``'s compiled code, whereas this tuple
    compares its functions by identity.
    """

    init: Callable[..., Any]
    update: Callable[..., tuple[Any, Any, dict[str, Array]]]


class CDState(NamedTuple):
    key: PRNGKeyArray


class PCDState(NamedTuple):
    key: PRNGKeyArray
    chains: Array


def gibbs_sweeps(key: PRNGKeyArray, model: Potential, xs: Array, k: int) -> Array:
    """``k`` Gibbs sweeps of every row of ``xs`` ``(N, *event)`` under ``model``: block Gibbs
    where there are conditionals, systematic-scan site Gibbs for other discrete potentials
    (:func:`ebm_ppl.moves.gibbs.gibbs_sweeps`)."""
    gibbs.check_gibbs(model, "CD/PCD", " (train real energies with the JEM objective and Langevin)")
    return gibbs.gibbs_sweeps(key, model, xs, k)


def free_energy_gap(model: Potential, x_data: Array, x_model: Array) -> Array:
    """``mean F(x_data) - mean F(x_model)``: its gradient is the NLL gradient estimate."""
    f = jax.vmap(model.unbatched_energy)
    return jnp.mean(f(x_data)) - jnp.mean(f(jax.lax.stop_gradient(x_model)))


def grads_and_metrics(model: Potential, x_data: Array, x_model: Array) -> tuple[Any, dict[str, Array]]:
    """The NLL gradient estimate from data ``(B, *event)`` and negatives ``(N, *event)`` (the
    model's closed form where it has one, else autodiff of the free-energy gap), and the gap."""
    if has_closed_form_gradient(model):
        grads, gap = model.contrastive_gradient(x_data, x_model)
    else:
        gap, grads = eqx.filter_value_and_grad(free_energy_gap)(model, x_data, x_model)
    return grads, {"free_energy_gap": gap}


class CDEstimator(eqx.Module):
    """CD-k as a value: an Equinox module whose only field, ``k``, is static, so equal settings
    compare and hash equal and :func:`ebm_ppl.fit` reuses its compiled epoch across calls."""

    k: int = eqx.field(static=True)

    def __check_init__(self):
        checks.positive_int(self.k, "k")

    init_takes_num_rows = True  # see GradientEstimator
    data_arrays = 1  # x alone (see GradientEstimator)

    def init(self, key: PRNGKeyArray, model: Potential, data: Any = None, num_rows: Array | None = None) -> CDState:
        """The state: the sampler's key."""
        return CDState(key)

    def update(self, model: Potential, batch: tuple[Array, ...], state: CDState):
        """Gradients of the batch ``(x (B, *event), ...)``: negatives from ``k`` sweeps started at x."""
        key, sub = jax.random.split(state.key)
        x = batch[0]
        negatives = gibbs_sweeps(sub, model, x, self.k)
        grads, metrics = grads_and_metrics(model, x, negatives)
        return grads, CDState(key), metrics


class PCDEstimator(eqx.Module):
    """Persistent CD-k as a value (static ``k`` and ``num_chains``; see :class:`CDEstimator`)."""

    k: int = eqx.field(static=True)
    num_chains: int = eqx.field(static=True)

    def __check_init__(self):
        checks.positive_int(self.k, "k")
        checks.positive_int(self.num_chains, "num_chains")

    init_takes_num_rows = True  # see GradientEstimator
    data_arrays = 1  # x alone (see GradientEstimator)

    def init(self, key: PRNGKeyArray, model: Potential, data: Array | tuple[Array, ...] | None = None,
             num_rows: Array | None = None) -> PCDState:
        """The state: a key and ``num_chains`` chains ``(num_chains, *event)``, started at random
        rows of ``data`` (its first ``num_rows``) when given, else at the potential's default
        starts (fair coin flips for binary support, standard normals for real)."""
        key, sub = jax.random.split(key)
        if data is not None:
            x = jnp.asarray(data[0] if isinstance(data, tuple) else data)
            chains = random_rows(sub, x, self.num_chains, num_rows)
        else:
            chains = model.initial_positions(sub, self.num_chains)
        return PCDState(key, chains)

    def update(self, model: Potential, batch: tuple[Array, ...], state: PCDState):
        """Gradients of the batch ``(x (B, *event), ...)``: negatives are the chains after ``k`` more sweeps."""
        key, sub = jax.random.split(state.key)
        chains = shard_rows(gibbs_sweeps(sub, model, shard_rows(state.chains), self.k))
        grads, metrics = grads_and_metrics(model, batch[0], chains)
        return grads, PCDState(key, chains), metrics


def cd(k: int = 1) -> CDEstimator:
    """CD-k: negatives from ``k`` Gibbs sweeps started at the batch (Hinton 2002)."""
    return CDEstimator(checks.positive_int(k, "k"))


def pcd(k: int = 1, num_chains: int = 100) -> PCDEstimator:
    """Persistent CD-k: ``num_chains`` chains kept in the state and advanced ``k`` sweeps per
    update (Tieleman 2008). Chains start at random rows of the training data when given, else at
    fair coin flips (binary) or standard normals (real)."""
    return PCDEstimator(checks.positive_int(k, "k"), checks.positive_int(num_chains, "num_chains"))

