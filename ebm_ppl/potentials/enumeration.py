"""Exact sums over finite state spaces in bounded memory.

``log sum_i exp(f(i))`` over ``i = 0 .. num_terms - 1`` is accumulated chunk by chunk inside a
``lax.scan`` with a running log-sum-exp, so 2^24 terms need memory for one chunk only.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl import checks

__all__ = ["DEFAULT_MAX_TERMS", "MAX_EXACT_STATES", "check_enumerable", "check_chunk_size",
           "logsumexp_over_indices", "index_to_bits", "index_to_states", "all_binary_states", "log_weights",
           "sample_indices", "sample_binary_states", "sample_states", "check_num"]

#: Largest state space :func:`ebm_ppl.log_partition` enumerates unless told otherwise (2^26).
DEFAULT_MAX_TERMS = 2**26
#: Largest state space exact samplers enumerate (their log-probabilities are held in memory).
MAX_EXACT_STATES = 2**22


def check_enumerable(num_terms: int, max_terms: int | None, what: str, samples: bool = False) -> None:
    """Refuse, with a message naming the size, an enumeration larger than ``max_terms`` (None:
    :data:`DEFAULT_MAX_TERMS`; else a positive integer); ``samples``: for exact samples (whose
    limit, :data:`MAX_EXACT_STATES`, is fixed) rather than log Z."""
    limit = DEFAULT_MAX_TERMS if max_terms is None else checks.positive_int(max_terms, "max_terms")
    if num_terms > limit and samples:
        raise ValueError(f"{what} need enumerating {_pow2(num_terms)} states; the limit is {_pow2(limit)}. "
                         "Draw approximate samples with ebm_ppl.sample(...) instead")
    if num_terms > limit:
        raise ValueError(
            f"exact log Z needs {_pow2(num_terms)} terms ({what}); the limit is {_pow2(limit)} "
            "(max_terms). Use ebm_ppl.ais(...) for an estimate, or raise max_terms if you can wait."
        )


def _pow2(n: int) -> str:
    e = math.log2(n) if n > 0 else 0
    return f"2^{int(e)}" if float(e).is_integer() else f"{n:.3g}"


def index_to_bits(index: Array, num_bits: int, dtype=None) -> Array:
    """Binary expansion (least significant bit first): ``(...,) int -> (..., num_bits)`` of 0/1."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    shifts = jnp.arange(num_bits, dtype=index.dtype)
    return ((index[..., None] >> shifts) & 1).astype(dtype)


def index_to_states(index: Array, values: tuple[float, ...], size: int, dtype=None) -> Array:
    """The state numbered ``index`` of ``size`` coordinates that each take one of ``values``
    (``index``'s digits in base ``len(values)``, least significant first, mapped to the values):
    ``(...,) int -> (..., size)``. For ``values == (0, 1)`` these are :func:`index_to_bits`."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    base = len(values)
    if base == 2:
        bits = index_to_bits(index, size, dtype)
        return bits if values == (0.0, 1.0) else values[0] + (values[1] - values[0]) * bits
    digits = (index[..., None] // base ** jnp.arange(size, dtype=index.dtype)) % base
    return jnp.asarray(values, dtype)[digits]


def all_binary_states(num_bits: int, dtype=None) -> Array:
    """All ``2**num_bits`` binary vectors, shape ``(2**num_bits, num_bits)`` (small n only)."""
    return index_to_bits(jnp.arange(2**num_bits, dtype=jnp.int32), num_bits, dtype)


def logsumexp_over_indices(
    log_term: Callable[[Array], Array], num_terms: int, chunk_size: int = 2**14
) -> Array:
    """``log sum_{i < num_terms} exp(log_term(i))`` with ``log_term: (chunk,) int32 -> (chunk,)``.

    Indices past ``num_terms`` in the last chunk are masked out. Compiled once per call site.
    """
    if num_terms >= 2**31:
        raise ValueError(f"cannot enumerate {num_terms} terms (indices are int32)")
    chunk = int(min(chunk_size, num_terms))
    num_chunks = -(-num_terms // chunk)
    dtype = jnp.result_type(float)

    def body(carry, c):
        running_max, running_sum = carry
        idx = c * chunk + jnp.arange(chunk, dtype=jnp.int32)
        terms = log_term(jnp.minimum(idx, num_terms - 1)).astype(dtype)
        terms = jnp.where(idx < num_terms, terms, -jnp.inf)
        new_max = jnp.maximum(running_max, jnp.max(terms))
        safe_max = jnp.where(jnp.isfinite(new_max), new_max, 0.0)
        running_sum = running_sum * jnp.exp(running_max - safe_max) + jnp.sum(jnp.exp(terms - safe_max))
        return (new_max, running_sum), None

    init = (jnp.asarray(-jnp.inf, dtype), jnp.asarray(0.0, dtype))
    (m, s), _ = jax.lax.scan(body, init, jnp.arange(num_chunks, dtype=jnp.int32))
    return m + jnp.log(s)


def log_weights(log_term: Callable[[Array], Array], num_terms: int, chunk_size: int = 2**14) -> Array:
    """``log_term(i)`` for every ``i < num_terms``, shape ``(num_terms,)``, evaluated ``chunk_size``
    indices at a time (``log_term: (chunk,) int32 -> (chunk,)``), so the intermediate arrays of
    one chunk bound the memory."""
    chunk = int(min(chunk_size, num_terms))
    num_chunks = -(-num_terms // chunk)
    index = jnp.minimum(jnp.arange(num_chunks * chunk, dtype=jnp.int32), num_terms - 1)
    return jax.lax.map(log_term, index.reshape(num_chunks, chunk)).reshape(-1)[:num_terms]


def sample_indices(key: PRNGKeyArray, log_weights: Array, num: int, batch_size: int = 256) -> Array:
    """``num`` independent draws of an index ``i`` with probability ``∝ exp(log_weights[i])``;
    ``(S,) -> (num,)`` int32.

    Two exact categorical draws per sample, first of a block of about ``sqrt(S)`` indices (by the
    blocks' log-sum-exp), then of an index inside it, ``batch_size`` samples at a time: memory
    ``batch_size * 2 sqrt(S)`` whatever ``num`` is (one categorical over all S indices would
    hold ``num x S`` numbers). Jit-compatible; ``num`` is static.
    """
    size = log_weights.shape[0]
    block = 1 << max(0, (size - 1).bit_length() + 1) // 2
    blocks = -(-size // block)
    padded = jnp.full(blocks * block, -jnp.inf, log_weights.dtype).at[:size].set(log_weights).reshape(blocks, block)
    block_log_weights = jax.nn.logsumexp(padded, axis=1)

    def draw(k):
        k_block, k_index = jax.random.split(k)
        b = jax.random.categorical(k_block, block_log_weights)
        return b * block + jax.random.categorical(k_index, padded[b])

    keys = jax.random.split(key, int(num))
    return jax.lax.map(draw, keys, batch_size=batch_size).astype(jnp.int32)


def sample_binary_states(key: PRNGKeyArray, log_weight: Callable[[Array], Array], num_bits: int, num: int,
                         dtype, what: str) -> Array:
    """``num`` exact draws from ``p(x) ∝ exp(log_weight(x))`` over ``{0, 1}^num_bits`` by
    enumerating the states (at most :data:`MAX_EXACT_STATES`) in chunks;
    ``log_weight: (chunk, num_bits) -> (chunk,)``. Returns ``(num, num_bits)`` in ``dtype``."""
    return sample_states(key, log_weight, (0.0, 1.0), num_bits, num, dtype, what)


def sample_states(key: PRNGKeyArray, log_weight: Callable[[Array], Array], values: tuple[float, ...], size: int,
                  num: int, dtype, what: str) -> Array:
    """``num`` exact draws from ``p(x) ∝ exp(log_weight(x))`` over ``values^size`` (the states of
    :func:`index_to_states`, at most :data:`MAX_EXACT_STATES` of them) by enumeration in chunks;
    ``log_weight: (chunk, size) -> (chunk,)``. Returns ``(num, size)`` in ``dtype``."""
    num_states = len(values) ** size
    check_enumerable(num_states, MAX_EXACT_STATES, f"exact samples of {what}", samples=True)
    weights = log_weights(lambda index: log_weight(index_to_states(index, values, size, dtype)), num_states)
    if not isinstance(weights, jax.core.Tracer):  # concrete: refuse weights no draw could follow
        concrete = np.asarray(weights)
        if np.isnan(concrete).any() or not (concrete > -np.inf).any():
            problem = ("the energy is NaN at some states" if np.isnan(concrete).any()
                       else "the energy is +inf at every state")
            raise ValueError(f"exact samples of {what}: {problem}")
    return index_to_states(sample_indices(key, weights, num), values, size, dtype)


def check_num(num, owner: str, event_size: int = 1) -> int:
    """``num`` as a non-negative int (NumPy and 0-d JAX integers accepted), after refusing draws
    of ``event_size`` values each that would not fit in memory; ValueError naming ``owner``."""
    num = checks.non_negative_int(num, f"{owner}: num")
    itemsize = np.dtype(jnp.result_type(float)).itemsize
    checks.check_memory(num * event_size * itemsize, f"{num} draws x {event_size} values x {itemsize} bytes",
                        owner=owner)
    return num


def check_chunk_size(chunk_size) -> int:
    """``chunk_size`` of an enumeration as a positive int; ValueError otherwise."""
    return checks.positive_int(chunk_size, "chunk_size")
