"""PRNG implementations for ebm_ppl's stochastic loops.

Block Gibbs, AIS and CD/PCD spend much of their time on random numbers when the model is small
(a 64x20 RBM sweep of 100 chains needs 8,400 uniforms and about 0.5 MFLOP). On CPU, JAX's
Philox-4x32-10 (Salmon et al. 2011, the generator behind cuRAND and numpy's ``Philox``; 64-bit key,
passes BigCrush) makes large batches of numbers about twice as fast as JAX's default
threefry2x32. Measured here (2 cores, ``benchmarks/``): a bare block-Gibbs kernel loop with the
step keys split up front, 1.6x (64x20) and 1.2x (784x500) faster; AIS about 1.2x faster on a
784x500 RBM and even to 1.25x on a 64x20 one (it draws a block of temperatures' numbers per
call); PCD-1 training about even; a whole ``ebm_ppl.sample`` call 1.23x (64x20) and 1.08x
(784x500). So:

* ``ebm_ppl.ais`` and ``ebm_ppl.fit`` re-key the caller's key into :data:`DEFAULT_IMPL` first
  (``prng_impl=None`` keeps the key's own implementation). The mapping is deterministic and
  one-to-one on the key's bits: same key, same result.
* ``ebm_ppl.sample`` keeps the key's implementation unless ``prng_impl`` is given, because its
  chains may be sharded over devices and JAX 0.12 cannot compile Philox in a sharded program (its
  ``mulhi`` does not lower under SPMD partitioning); a Philox key with sharded chains is refused
  with a clear error. On one device ``prng_impl="philox4x32"`` is the faster choice.

Philox-2x32 is faster still, but its 32-bit key space makes collisions among the millions of
per-chain, per-step keys a long run splits off likely (birthday bound at 2^16 keys), so it is
never the default.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

__all__ = ["DEFAULT_IMPL", "rekey", "is_shardable"]

DEFAULT_IMPL = "philox4x32"


@functools.cache
def _key_shape(impl: str) -> tuple[int, ...]:
    return tuple(jax.random.key_data(jax.random.key(0, impl=impl)).shape)


def rekey(key: PRNGKeyArray, impl: str | None = DEFAULT_IMPL) -> PRNGKeyArray:
    """``key`` as a typed key of implementation ``impl`` (None: unchanged, only typed).

    Accepts typed keys and legacy raw ``uint32`` keys (``jax.random.PRNGKey``). A key already of
    ``impl`` is returned as is; otherwise the new key's data are the old key's data when the
    shapes match (threefry2x32 -> philox4x32: the same 64 bits), else bits drawn from the key.
    Works on a single key (shape ``()``) inside ``jit``.
    """
    if isinstance(key, jax.Array) and not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.dtype != jnp.uint32 or key.ndim != 1:
            raise TypeError(f"expected a PRNG key (jax.random.key(seed)), got an array of shape {key.shape} "
                            f"and dtype {key.dtype}")
        key = jax.random.wrap_key_data(key)
    elif not (isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise TypeError(f"expected a PRNG key (jax.random.key(seed)), got {type(key).__name__}")
    if key.shape != ():
        raise ValueError(f"expected a single PRNG key, got a key array of shape {key.shape}")
    if impl is None or str(jax.random.key_impl(key)) == impl:
        return key
    shape = _key_shape(impl)
    data = jax.random.key_data(key)
    if data.shape != shape:
        data = jax.random.bits(key, shape, jnp.uint32)
    return jax.random.wrap_key_data(data, impl=impl)


def is_shardable(key: PRNGKeyArray) -> bool:
    """Whether programs drawing from ``key`` compile when sharded over devices (not Philox)."""
    return not str(jax.random.key_impl(key)).startswith("philox")
