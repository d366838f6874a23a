"""Exact sums over finite state spaces in bounded memory.

``log sum_i exp(f(i))`` over ``i = 0 .. num_terms - 1`` is accumulated chunk by chunk inside a
``lax.scan`` with a running log-sum-exp, so 2^24 terms need memory for one chunk only.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

__all__ = ["DEFAULT_MAX_TERMS", "MAX_EXACT_STATES", "check_enumerable", "logsumexp_over_indices", "index_to_bits",
           "all_binary_states", "sample_binary_states"]

#: Largest state space :func:`ebm_ppl.log_partition` enumerates unless told otherwise (2^26).
DEFAULT_MAX_TERMS = 2**26
#: Largest state space exact samplers enumerate (their log-probabilities are held in memory).
MAX_EXACT_STATES = 2**22


def check_enumerable(num_terms: int, max_terms: int | None, what: str) -> None:
    """Refuse, with a message naming the size, an enumeration larger than ``max_terms``."""
    limit = DEFAULT_MAX_TERMS if max_terms is None else int(max_terms)
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


def sample_binary_states(key: PRNGKeyArray, log_weight: Callable[[Array], Array], num_bits: int, num: int,
                         dtype, what: str) -> Array:
    """``num`` exact draws from ``p(x) ∝ exp(log_weight(x))`` over ``{0, 1}^num_bits`` by
    enumerating all states (at most :data:`MAX_EXACT_STATES`); ``log_weight: (S, n) -> (S,)``.
    Returns ``(num, num_bits)`` in ``dtype``."""
    check_enumerable(2**num_bits, MAX_EXACT_STATES, f"exact samples of {what}")
    states = all_binary_states(num_bits, dtype)
    return states[jax.random.categorical(key, log_weight(states), shape=(int(num),))]
