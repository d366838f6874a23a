"""A progress bar for ``lax.scan`` loops, driven by host callbacks (off by default)."""

from __future__ import annotations

import sys
from typing import Callable

import jax
import jax.numpy as jnp


def progress_scan(body: Callable, carry, xs, *, enabled: bool, desc: str = "", num_updates: int = 50):
    """``jax.lax.scan(body, carry, xs)``, updating a tqdm bar about ``num_updates`` times if enabled.

    ``xs`` is a 1-d array of step indices. The bar lives on the host; each update is one
    ``jax.debug.callback``, so the cost is a handful of host round trips, not one per step.
    """
    if not enabled:
        return jax.lax.scan(body, carry, xs)
    from tqdm.auto import tqdm

    total = int(xs.shape[0])
    every = max(1, total // num_updates)
    bar = {}

    def _update(i):
        i = int(i)
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=desc, file=sys.stderr, leave=False)
        b = bar["bar"]
        b.update(min(i + 1, total) - b.n)
        if b.n >= total:  # done: the next run of the same compiled program opens a new bar
            b.close()
            del bar["bar"]

    def wrapped(c, i):
        c, out = body(c, i)
        jax.lax.cond((i % every == every - 1) | (i == total - 1),
                     lambda: jax.debug.callback(_update, i, ordered=True), lambda: None)
        return c, out

    return jax.lax.scan(wrapped, carry, jnp.asarray(xs))


def progress_fori_loop(num_steps, body: Callable, carry, *, enabled: bool, desc: str = "", num_updates: int = 50):
    """``jax.lax.fori_loop(0, num_steps, body, carry)`` with a progress bar when enabled.

    ``num_steps`` may be traced (the loop is then a ``while_loop`` and one compiled program
    serves every length); the bar learns the total from the first update.
    """
    if not enabled:
        return jax.lax.fori_loop(0, num_steps, body, carry)
    from tqdm.auto import tqdm

    bar = {}

    def _update(i, total):
        i, total = int(i), int(total)
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=desc, file=sys.stderr, leave=False)
        b = bar["bar"]
        b.update(min(i + 1, total) - b.n)
        if b.n >= total:
            b.close()
            del bar["bar"]

    every = jnp.maximum(1, num_steps // num_updates)

    def wrapped(i, c):
        c = body(i, c)
        jax.lax.cond((i % every == every - 1) | (i == num_steps - 1),
                     lambda: jax.debug.callback(_update, i, num_steps, ordered=True), lambda: None)
        return c

    return jax.lax.fori_loop(0, num_steps, wrapped, carry)
