"""The chain (or example) axis laid over every device, with JAX's own sharding machinery.

``ebm_ppl.sample``, ``ebm_ppl.ais``/``reverse_ais`` and ``ebm_ppl.fit`` run one program
partitioned by XLA's SPMD partitioner over a one-axis mesh of all devices (of every process under
``jax.distributed``): the arrays whose leading axis is independent work (chains, minibatch rows)
are sharded along it, everything else is replicated, and reductions over the axis (the gradient
of a minibatch mean, the log-weights' summaries) become cross-device sums that XLA inserts.

Inside ``ebm_ppl.fit``'s program, the arrays an estimator holds per chain (PCD's persistent chains,
JEM's Langevin negatives) are laid over the devices with :func:`shard_rows`, which an estimator
written by a user can call the same way (it does nothing outside a sharded training program).

Random numbers: keys are drawn exactly as on one device; ebm_ppl's Philox key becomes its twin
that JAX can partition (:func:`ebm_ppl.random.for_sharding`, the same numbers), so a sharded run
draws what the one-device run draws. Its results equal the one-device run's up to floating-point
rounding: XLA's CPU matrix products round by the number of rows each device holds, and reductions
over the sharded axis add in another order (identical in the tests' small models; a Gibbs draw
whose probability sits on a rounding boundary can flip, after which that chain takes another,
equally exact, path). JAX's own Philox keys cannot be partitioned; with those the
work stays on one device.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl.random import for_sharding, is_shardable

__all__ = ["AXIS", "axis_sharding", "sharded_key", "place", "onto_mesh", "constrain", "shard_rows", "rows_over",
           "to_host",
           "is_writer"]

#: The mesh axis name.
AXIS = "chains"


def axis_sharding(size: int, key: PRNGKeyArray | None = None) -> NamedSharding | None:
    """The sharding of a leading axis of ``size`` over every device, or None: one device, a size
    the devices do not divide, or a ``key`` that cannot be drawn from in a sharded program."""
    devices = jax.devices()
    if len(devices) == 1 or size % len(devices):
        return None
    if key is not None and not is_shardable(for_sharding(key)):
        return None
    mesh = jax.make_mesh((len(devices),), (AXIS,), devices=devices, axis_types=(AxisType.Auto,))
    return NamedSharding(mesh, PartitionSpec(AXIS))


def sharded_key(key: PRNGKeyArray, sharding: NamedSharding | None) -> PRNGKeyArray:
    """``key`` for a program sharded by ``sharding`` (:func:`ebm_ppl.random.for_sharding`); as is for None."""
    return key if sharding is None else for_sharding(key)


def place(arrays: Sequence[Array], sharding: NamedSharding | None, axis: int = 0) -> tuple[Array, ...]:
    """Committed global arrays with ``axis`` laid over ``sharding``'s devices; as given for None.
    Every process holds the same full arrays (they derive from the same key and data), so each
    fills its own devices' shards from them."""
    if sharding is None:
        return tuple(arrays)
    spec = NamedSharding(sharding.mesh, PartitionSpec(*([None] * axis), AXIS))
    return tuple(jax.make_array_from_callback(a.shape, spec, lambda index, a=a: a[index]) for a in arrays)


def onto_mesh(tree, sharding: NamedSharding | None):
    """``tree`` (a model, data, a path) ready for a program sharded by ``sharding``: arrays
    committed to other devices than its mesh's (a model put on one GPU by ``jax.device_put``),
    which a sharded program would refuse, become uncommitted copies (through the host), which JAX
    places where each program needs them; uncommitted arrays, arrays already on the mesh, arrays
    spread over processes and PRNG keys are left as they are; all of ``tree`` as given for None."""
    if sharding is None:
        return tree
    devices = set(sharding.mesh.devices.flat)

    def move(a):
        if (isinstance(a, jax.Array) and a.committed and a.is_fully_addressable and a.sharding.device_set != devices
                and not jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)):
            return jax.device_put(np.asarray(a))
        return a

    return jax.tree.map(move, tree)


def constrain(a: Array, sharding: NamedSharding | None, axis: int = 0) -> Array:
    """Traced: ``a`` with its ``axis`` laid over ``sharding``'s devices; unchanged for None."""
    if sharding is None:
        return a
    spec = PartitionSpec(*([None] * axis), AXIS)
    return jax.lax.with_sharding_constraint(a, NamedSharding(sharding.mesh, spec))


_ROWS: contextvars.ContextVar[NamedSharding | None] = contextvars.ContextVar("ebm_ppl_rows", default=None)


@contextlib.contextmanager
def rows_over(sharding: NamedSharding | None) -> Iterator[None]:
    """While tracing a program sharded by ``sharding``, make :func:`shard_rows` lay arrays over its
    devices (``ebm_ppl.fit`` traces its epochs inside this)."""
    token = _ROWS.set(sharding)
    try:
        yield
    finally:
        _ROWS.reset(token)


def shard_rows(x: Array, axis: int = 0) -> Array:
    """Traced: ``x`` with its ``axis`` (one row per chain or example) laid over the devices of the
    sharded program being traced, when they divide it; unchanged otherwise (one device, or not
    inside such a program). A sharding constraint never changes values, only where they live."""
    sharding = _ROWS.get()
    if sharding is None or x.ndim <= axis or x.shape[axis] % sharding.mesh.size:
        return x
    return constrain(x, sharding, axis)


def to_host(x) -> np.ndarray:
    """A numpy copy of ``x``; an array spread over several processes is gathered first (a
    collective: every process must call it)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
        from jax.experimental import multihost_utils

        x = multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(jax.device_get(x))


def is_writer() -> bool:
    """Whether this process writes the files of a run all processes share (process 0)."""
    return jax.process_index() == 0
