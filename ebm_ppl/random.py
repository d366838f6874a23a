"""PRNG implementations for ebm_ppl's stochastic loops.

Block Gibbs, AIS and CD/PCD spend much of their time on random numbers when the model is small
(a 64x20 RBM sweep of 100 chains needs 8,400 uniforms and about 0.5 MFLOP), and a noticeable part
even at 784x500. ebm_ppl therefore brings one generator of its own, registered with JAX's public
extension API (``jax.extend.random.define_prng_impl``) under the name :data:`PHILOX2X32_64`:

* **Philox-2x32-10** (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"; the
  generator family behind cuRAND and numpy's ``Philox``), which costs one 32x32-bit
  multiply per round where Philox-4x32 costs two. JAX's own ``philox2x32`` uses 32-bit keys,
  so collisions among the millions of per-chain, per-step keys a long run splits off become
  likely (birthday bound near 2^16 keys). Here a key is **64 bits**: word 0 keys the Philox
  bijection, word 1 is the high word of its 64-bit counter, and the low counter word indexes the
  numbers drawn. Two keys give overlapping streams only if both words are equal, the same 2^32
  birthday bound as JAX's threefry2x32 and philox4x32 keys. Each 32-bit output is the XOR of the
  block's two words (as JAX's Philox implementations do), so every number is computed inside
  the fused kernel that consumes it; a 64-bit number takes the words of counters ``2i`` and
  ``2i + 1``. So the first ``n`` numbers of a draw do not depend on how many are drawn
  (:func:`prefix_stable`). ``split``, ``fold_in`` and seeding hash with key word 0
  XOR-ed by distinct constants, so a key's draws, its split children and its fold-ins come
  from different Philox keys. The round function reproduces Random123's known-answer vectors
  (tested).

Its speed against JAX's Philox-4x32 (which computes a whole 4-word block per 32-bit number) and
threefry2x32 is in ``docs/performance.md``.

How it is used:

* ``ebm_ppl.sample``, ``ebm_ppl.ais`` and ``ebm_ppl.fit`` re-key the caller's key into :data:`DEFAULT_IMPL` first
  (``prng_impl=None`` keeps the key's own implementation). The mapping is deterministic and
  one-to-one on the key's bits: same key, same result.
* Sharded programs: JAX 0.12 cannot compile its 32-bit ``mulhi`` (``chlo.mulhi``, used by every
  Philox generator) into a program partitioned over devices. :func:`for_sharding` therefore
  turns a :data:`PHILOX2X32_64` key into its twin :data:`PHILOX2X32_64_SPMD`, which draws
  **the same numbers** with the high word taken from a 64-bit product (plain multiply and
  shift, which the partitioner handles) at about 5-10% more time per number; the sharded
  ``ebm_ppl`` programs do that, so their results do not depend on the number of devices.
  JAX's own Philox keys cannot be sharded (:func:`is_shardable`).
* To draw from it directly: ``jax.random.key(seed, impl=ebm_ppl.random.philox2x32_64)`` or
  ``ebm_ppl.random.rekey(key)``; every ``jax.random`` function then works as usual.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.extend.random as jex_random
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import PRNGKeyArray

__all__ = ["DEFAULT_IMPL", "PHILOX2X32_64", "PHILOX2X32_64_SPMD", "philox2x32_64", "philox2x32_64_spmd", "rekey",
           "is_shardable", "prefix_stable", "for_sharding", "from_sharding", "is_key", "philox2x32_block", "mulhi_wide"]

#: The name of ebm_ppl's Philox-2x32-10 generator with 64-bit keys.
PHILOX2X32_64 = "philox2x32_64"

#: The name of its twin for sharded programs: the same numbers, another ``mulhi``.
PHILOX2X32_64_SPMD = "philox2x32_64_spmd"

#: The generator ``ebm_ppl.sample``, ``ebm_ppl.ais`` and ``ebm_ppl.fit`` draw from by default.
DEFAULT_IMPL = PHILOX2X32_64

_ROUNDS = 10
_MULTIPLIER = np.uint32(0xD256D193)  # Random123's PHILOX_M2x32_0
_WEYL = np.uint32(0x9E3779B9)  # Random123's PHILOX_W32_0: the key's increment between rounds
# XOR-ed into key word 0 so that the numbers a key draws, the keys it splits into, the key it
# folds data into and the keys made from seeds come from different Philox keys (hex digits of pi)
_SPLIT, _FOLD_IN, _SEED = np.uint32(0x243F6A88), np.uint32(0x85A308D3), np.uint32(0x13198A2E)


def mulhi_wide(a, b):
    """``lax.mulhi`` of uint32 arrays as the high word of their 64-bit product: the same bits, in
    operations JAX's SPMD partitioner compiles (64-bit types inside the function only)."""
    with jax.enable_x64(True):
        product = lax.mul(lax.convert_element_type(a, np.uint64), lax.convert_element_type(b, np.uint64))
        return lax.convert_element_type(lax.shift_right_logical(product, np.uint64(32)), np.uint32)


def philox2x32_block(key, hi, lo, mulhi=lax.mulhi):
    """Philox-2x32 with ``_ROUNDS`` rounds: key word ``key``, counter ``(hi, lo)`` (uint32 arrays
    that broadcast) -> the two uint32 words of the output block."""
    key = jnp.asarray(key, np.uint32)
    for r in range(_ROUNDS):
        if r:
            key = key + _WEYL
        product_hi = mulhi(jnp.asarray(_MULTIPLIER), hi)
        hi, lo = product_hi ^ key ^ lo, hi * _MULTIPLIER
    return hi, lo


def _seed(seed: jax.Array, mulhi=lax.mulhi) -> jax.Array:
    seed = jnp.asarray(seed)
    high = (lax.shift_right_logical(seed, jnp.asarray(32, seed.dtype)) if seed.dtype.itemsize == 8
            else jnp.zeros((), seed.dtype))
    words = philox2x32_block(_SEED, lax.convert_element_type(high, np.uint32),
                        lax.convert_element_type(seed, np.uint32), mulhi)
    return jnp.stack(words)


def _split(key: jax.Array, shape: tuple[int, ...], mulhi=lax.mulhi) -> jax.Array:
    index = lax.iota(np.uint32, math.prod(shape))
    words = philox2x32_block(key[0] ^ _SPLIT, key[1], index, mulhi)
    return jnp.stack(words, axis=-1).reshape(*shape, 2)


def _fold_in(key: jax.Array, data: jax.Array, mulhi=lax.mulhi) -> jax.Array:
    return jnp.stack(philox2x32_block(key[0] ^ _FOLD_IN, key[1], jnp.asarray(data, np.uint32), mulhi))


def _random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...], mulhi=lax.mulhi) -> jax.Array:
    size = math.prod(shape)
    words = 2 * size if bit_width == 64 else size
    if words > 2**32:
        raise ValueError(f"{PHILOX2X32_64}: at most 2**32 32-bit words per draw, asked for {words}")
    hi, lo = philox2x32_block(key[0], key[1], lax.iota(np.uint32, words), mulhi)
    bits = hi ^ lo
    if bit_width == 64:  # number i from words 2i (high) and 2i + 1: the first n do not depend on the size
        wide = lax.convert_element_type(bits, np.uint64).reshape(size, 2)
        bits = lax.shift_left(wide[:, 0], np.uint64(32)) | wide[:, 1]
    elif bit_width != 32:
        bits = lax.convert_element_type(bits, np.dtype(f"uint{bit_width}"))
    return bits.reshape(shape)


def _define(name: str, mulhi):
    """The implementation with ``mulhi``; each function one jitted program, so that key
    operations outside ``jit`` (splitting the caller's key) dispatch once instead of once per
    operation of the ten rounds (inside ``jit`` they inline)."""
    return jex_random.define_prng_impl(
        key_shape=(2,), seed=jax.jit(functools.partial(_seed, mulhi=mulhi)),
        split=jax.jit(functools.partial(_split, mulhi=mulhi), static_argnums=1),
        random_bits=jax.jit(functools.partial(_random_bits, mulhi=mulhi), static_argnums=(1, 2)),
        fold_in=jax.jit(functools.partial(_fold_in, mulhi=mulhi)), name=name, tag=name)


#: ebm_ppl's Philox-2x32-10 with 64-bit keys, for ``impl=`` of ``jax.random.key`` and friends.
philox2x32_64 = _define(PHILOX2X32_64, lax.mulhi)

#: :data:`philox2x32_64`'s twin for programs sharded over devices: every key, split, fold-in and
#: number equal to it, ``mulhi`` computed through a 64-bit product (see :func:`for_sharding`).
philox2x32_64_spmd = _define(PHILOX2X32_64_SPMD, mulhi_wide)

_OWN_IMPLS = {PHILOX2X32_64: philox2x32_64, PHILOX2X32_64_SPMD: philox2x32_64_spmd}


def _impl_name(impl) -> str:
    return impl if isinstance(impl, str) else str(impl)


@functools.cache
def _key_shape(impl) -> tuple[int, ...]:
    return tuple(jax.random.key_data(jax.random.key(0, impl=impl)).shape)


def rekey(key: PRNGKeyArray, impl=DEFAULT_IMPL) -> PRNGKeyArray:
    """``key`` as a typed key of implementation ``impl`` (None: unchanged, only typed).

    ``impl`` is a name (``"philox2x32_64"``, or one of JAX's: ``"threefry2x32"``,
    ``"philox4x32"``, ...) or an implementation object. Accepts typed keys and legacy raw
    ``uint32`` keys (``jax.random.PRNGKey``). A key already of ``impl`` is returned as is;
    otherwise the new key's data are the old key's data when the shapes match (threefry2x32 ->
    philox2x32_64: the same 64 bits), else bits drawn from the key. Works on a single key (shape
    ``()``) inside ``jit``.
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
    if impl is None or str(jax.random.key_impl(key)) == _impl_name(impl):
        return key
    impl = _OWN_IMPLS.get(impl, impl) if isinstance(impl, str) else impl
    try:
        shape = _key_shape(impl)
    except ValueError as exc:  # JAX's message lists its own implementations only
        raise ValueError(f"{exc} Or ebm_ppl's own {PHILOX2X32_64!r} (the default) or {PHILOX2X32_64_SPMD!r}, or "
                         "None for the key's own implementation.") from None
    data = jax.random.key_data(key)
    if data.shape != shape:
        data = jax.random.bits(key, shape, jnp.uint32)
    return jax.random.wrap_key_data(data, impl=impl)


def is_key(leaf) -> bool:
    """Whether ``leaf`` is a typed PRNG key array (``jax.random.key``'s kind, any shape)."""
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def is_shardable(key: PRNGKeyArray) -> bool:
    """Whether programs drawing from ``key`` compile when sharded over devices: JAX's threefry and
    rbg keys and :data:`philox2x32_64_spmd`, not JAX's Philox keys nor :data:`philox2x32_64`
    (:func:`for_sharding` turns the latter into its twin)."""
    name = str(jax.random.key_impl(key))
    return name == PHILOX2X32_64_SPMD or not name.startswith("philox")


def prefix_stable(key: PRNGKeyArray) -> bool:
    """Whether ``key``'s draws are prefix-stable: the first ``n`` numbers of a draw of ``m > n``
    (of shape ``(m, ...)``) are the draw of ``n``. True for :data:`philox2x32_64` (and its twin) and
    for JAX's threefry2x32 while ``jax_threefry_partitionable`` is on (JAX's default); False for
    every other implementation (not known to be). Programs padded to a bucket of sizes
    (``ebm_ppl.fit``'s rows) rely on it to draw what an unpadded program draws."""
    name = str(jax.random.key_impl(key))
    return name in _OWN_IMPLS or (name == "threefry2x32" and bool(jax.config.jax_threefry_partitionable))


def for_sharding(key: PRNGKeyArray) -> PRNGKeyArray:
    """``key`` (any shape) ready for a program sharded over devices: a :data:`philox2x32_64` key
    becomes the :data:`philox2x32_64_spmd` key of the same data, which draws the same numbers;
    every other key is returned as is."""
    if str(jax.random.key_impl(key)) != PHILOX2X32_64:
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=philox2x32_64_spmd)



def from_sharding(key: PRNGKeyArray) -> PRNGKeyArray:
    """The inverse of :func:`for_sharding`: a :data:`philox2x32_64_spmd` key back as the
    :data:`philox2x32_64` key of the same data (what checkpoints store); others as they are."""
    if str(jax.random.key_impl(key)) != PHILOX2X32_64_SPMD:
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=philox2x32_64)
