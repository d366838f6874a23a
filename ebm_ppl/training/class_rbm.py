"""Training objectives of the classification RBM (Larochelle & Bengio 2008, Sec. 3-4).

For labelled data (x, y):

* ``"discriminative"``: ``-mean log p(y | x)``, exact (p(y | x) is a softmax over the K labels),
  so its gradient is exact too;
* ``"generative"``: ``-mean log p(x, y)``, whose gradient ``E_data[grad F(x, y)] - E_model[grad
  F(x, y)]`` takes its model term from persistent labelled chains advanced by ``k`` Gibbs sweeps
  (h | x, y, then x | h and y | h);
* ``"hybrid"``: discriminative + ``alpha`` x generative (their best objective on MNIST).

The estimator returns gradients with the model's structure (any Optax optimizer applies them)
and, as ``metrics``, the exact accuracy, the mean label log-likelihood and, where log Z
enumerates in at most 2^20 terms, the exact pixel log-likelihood ``log p(x)``.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.compiler import filter_jit
from ebm_ppl.potentials.base import Potential
from ebm_ppl.sharding import shard_rows
from ebm_ppl.training.metrics import EXACT_LL_MAX_TERMS
from ebm_ppl.training.rows import bucket_rows, masked_mean, pad_rows

__all__ = ["ClassRBMEstimator", "ClassRBMState", "class_rbm", "OBJECTIVES"]

OBJECTIVES = ("discriminative", "generative", "hybrid")


class ClassRBMState(NamedTuple):
    """key: the sampler's key; chains: persistent labelled chains ``(x (C, D), y (C,) int32)``."""

    key: PRNGKeyArray
    chains: tuple[Array, Array]


def _label_nlls(model: Potential, x: Array, y: Array) -> Array:
    """``-log p(y | x)`` of each example, ``(B,)``."""
    log_p = jax.nn.log_softmax(model.label_logits(x), axis=-1)
    return -jnp.take_along_axis(log_p, y[:, None], axis=-1)[:, 0]


def _label_nll(model: Potential, x: Array, y: Array) -> Array:
    return jnp.mean(_label_nlls(model, x, y))


class ClassRBMEstimator(eqx.Module):
    """The objectives of the module docstring as a value (static settings: equal settings share
    :func:`ebm_ppl.fit`'s compiled code)."""

    objective: str = eqx.field(static=True)
    alpha: float = eqx.field(static=True)
    k: int = eqx.field(static=True)
    num_chains: int = eqx.field(static=True)

    init_takes_num_rows = True  # see ebm_ppl.training.GradientEstimator
    data_arrays = 2  # (x, y)

    def check_data(self, model: Potential, data: tuple[Array, ...], name: str) -> None:
        """Refuse, before training, labels that are not the model's label numbers 0 .. K-1, one per
        row of x (a label -1 would train as K-1 by negative indexing, 0.5 as 0, K as nothing)."""
        if callable(getattr(model, "check_labels", None)):  # else init refuses the model
            model.check_labels(data[1], data[0].shape[:1], owner="fit", name=f"the labels of {name}")

    def init(self, key: PRNGKeyArray, model: Potential, data: tuple[Array, ...] | None = None,
             num_rows: Array | None = None) -> ClassRBMState:
        """The key and ``num_chains`` labelled chains started at random rows of ``data = (x, y)``."""
        if not (callable(getattr(model, "label_logits", None)) and callable(getattr(model, "joint_sweep", None))):
            raise TypeError(f"class_rbm: the objective needs a classification RBM (ebm_ppl.ClassRBM), got "
                            f"{type(model).__name__}")
        if not isinstance(data, tuple) or len(data) < 2:
            raise ValueError("class_rbm: the data must be (x, y): images and integer labels")
        key, sub = jax.random.split(key)
        rows = jax.random.randint(sub, (self.num_chains,), 0, data[0].shape[0] if num_rows is None else num_rows)
        return ClassRBMState(key, (jnp.asarray(data[0])[rows], jnp.asarray(data[1])[rows].astype(jnp.int32)))

    def update(self, model: Potential, batch: tuple[Array, ...], state: ClassRBMState):
        """Gradients of the objective on the batch ``(x (B, D), y (B,))``; metrics ``label_nll``
        (-mean log p(y | x)) and ``free_energy_gap`` (mean F(x, y) of data minus chains)."""
        x, y = batch[0], batch[1].astype(jnp.int32)
        key, sub = jax.random.split(state.key)
        chains = jax.tree.map(shard_rows, state.chains)  # over the devices of a sharded ep.fit
        if self.objective != "discriminative":
            def sweep(carry, step_key):
                return model.joint_sweep(step_key, *carry), None

            chains, _ = jax.lax.scan(sweep, chains, jax.random.split(sub, self.k))
        x_model, y_model = jax.lax.stop_gradient(chains)

        def loss(m):
            nll = _label_nll(m, x, y)
            gap = jnp.mean(m.free_energy_joint(x, y)) - jnp.mean(m.free_energy_joint(x_model, y_model))
            total = {"discriminative": nll, "generative": gap, "hybrid": nll + self.alpha * gap}[self.objective]
            return total, (nll, gap)

        (_, (nll, gap)), grads = eqx.filter_value_and_grad(loss, has_aux=True)(model)
        return grads, ClassRBMState(key, chains), {"label_nll": nll, "free_energy_gap": gap}

    def metrics(self, model: Potential, data: tuple[Array, ...], key: PRNGKeyArray, prefix: str) -> dict[str, float]:
        """Accuracy, mean log p(y | x) and (log Z permitting) the mean log p(x) of ``data = (x, y)``;
        the data padded to a bucket of rows (:mod:`ebm_ppl.training.rows`: one compiled program
        serves data sizes up to 25% apart)."""
        x, y = jnp.asarray(data[0]), jnp.asarray(data[1]).astype(jnp.int32)
        x, y = pad_rows((x, y), bucket_rows(x.shape[0]))  # no random draws: any key's runs can pad
        values = _metric_values(model, x, y, jnp.int32(data[0].shape[0]))
        return {f"{prefix}{name}": float(v) for name, v in jax.device_get(values).items()}

    metrics.pads_rows = True  # a padded copy of the data per call (ep.fit's memory check counts it)


@filter_jit
def _metric_values(model: Potential, x: Array, y: Array, n: Array) -> dict[str, Array]:
    """The metrics of the first ``n`` (traced) rows of ``x`` and ``y``."""
    out = {"accuracy": masked_mean(jnp.argmax(model.label_logits(x), axis=-1) == y, n),
           "label_log_likelihood": -masked_mean(_label_nlls(model, x, y), n)}
    try:  # the size check is static: it raises while tracing, before any enumeration
        log_z = model.log_partition(max_terms=EXACT_LL_MAX_TERMS)
    except ValueError:
        return out
    out["log_likelihood"] = masked_mean(-jax.vmap(model.unbatched_energy)(x), n) - log_z
    return out


def class_rbm(objective: str = "hybrid", *, alpha: float = 0.01, k: int = 1, num_chains: int = 100) -> ClassRBMEstimator:
    """The classification RBM's training objective: ``"discriminative"``, ``"generative"`` or
    ``"hybrid"`` (discriminative + ``alpha`` x generative), the generative part by PCD-``k`` with
    ``num_chains`` labelled chains. Train with ``ep.fit(model, (x, y), ep.training.class_rbm(), ...)``."""
    if objective not in OBJECTIVES:
        raise ValueError(f"class_rbm: objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    alpha = checks.non_negative_float(alpha, "class_rbm: alpha")
    return ClassRBMEstimator(objective, alpha, checks.positive_int(k, "class_rbm: k"),
                             checks.positive_int(num_chains, "class_rbm: num_chains"))
