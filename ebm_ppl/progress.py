"""Progress bars for compiled loops (``lax.scan``, ``lax.fori_loop``), driven by host callbacks.

Library calls show them only when asked (``progress=True``); the command line asks when stderr is a
terminal.
"""

from __future__ import annotations

import sys
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["progress_scan", "progress_fori_loop"]


def _bar_updater(desc: str) -> Callable:
    """A host callback ``update(i, total)`` that advances a tqdm bar to step ``i`` of ``total``,
    opening it on the first call and closing it at the end (the next run of the same compiled
    program then opens a new one)."""
    from tqdm.auto import tqdm

    bar = {}

    def update(i, total):
        i, total = int(i), int(total)
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=desc, file=sys.stderr, leave=False)
        b = bar["bar"]
        b.update(max(0, min(i + 1, total) - b.n))  # never backwards, should an update arrive late
        if b.n >= total:
            b.close()
            del bar["bar"]

    return update


def _report(update: Callable, i, total, every) -> None:
    """Traced: call ``update(i, total)`` on the host every ``every`` steps and at the last. The
    callback is unordered: XLA refuses ordered effects in a program over several devices (a
    sharded ``ep.sample`` or ``ep.ais``), and the bar only moves forward anyway."""
    jax.lax.cond((i % every == every - 1) | (i == total - 1),
                 lambda: jax.debug.callback(update, i, total), lambda: None)


def progress_scan(body: Callable, carry, xs, *, enabled: bool, desc: str = "", num_updates: int = 50):
    """``jax.lax.scan(body, carry, xs)``, updating a tqdm bar about ``num_updates`` times if enabled.

    ``xs`` is a 1-d array of step indices. The bar lives on the host; each update is one
    ``jax.debug.callback``, so the cost is a handful of host round trips, not one per step.
    """
    if not enabled:
        return jax.lax.scan(body, carry, xs)
    total = int(xs.shape[0])
    every = max(1, total // num_updates)
    update = _bar_updater(desc)

    def wrapped(c, i):
        c, out = body(c, i)
        _report(update, i, total, every)
        return c, out

    return jax.lax.scan(wrapped, carry, jnp.asarray(xs))


def progress_fori_loop(num_steps, body: Callable, carry, *, enabled: bool, desc: str = "", num_updates: int = 50):
    """``jax.lax.fori_loop(0, num_steps, body, carry)`` with a progress bar when enabled.

    ``num_steps`` may be traced (the loop is then a ``while_loop`` and one compiled program
    serves every length); the bar learns the total from the first update.
    """
    if not enabled:
        return jax.lax.fori_loop(0, num_steps, body, carry)
    every = jnp.maximum(1, num_steps // num_updates)
    update = _bar_updater(desc)

    def wrapped(i, c):
        c = body(i, c)
        _report(update, i, num_steps, every)
        return c

    return jax.lax.fori_loop(0, num_steps, wrapped, carry)
