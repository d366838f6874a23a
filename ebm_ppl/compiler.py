"""XLA options for ebm_ppl's own compiled loops.

On CPU, XLA vectorizes its elementwise kernels (random-number generation, sigmoids, the Bernoulli
draws) for 256-bit registers by default, even where the processor has 512-bit AVX-512 registers
(on some older Intel parts wide instructions lower the clock). These loops are dominated by such
kernels when the model is small, so on a host with AVX-512 ebm_ppl compiles its own programs
(``ebm_ppl.sample``'s run, ``ebm_ppl.ais``, ``ebm_ppl.fit``'s epochs) with
``xla_cpu_prefer_vector_width=512`` (the speed-ups are in ``docs/performance.md``). The option
only changes how XLA vectorizes: results are bitwise identical (tested). It is passed per program (``jax.jit(compiler_options=...)``), so
nothing else in the process changes, and GPU/TPU compilers ignore it. JAX accepts compiler options only on an outermost ``jit``: a
function wrapped by :func:`filter_jit` that is called under a trace (a user's ``jit``, ``vmap``,
``grad``) compiles as part of that program, without them.

``EBM_PPL_CPU_VECTOR_WIDTH`` (read at import) overrides the choice: ``256`` gives XLA's default,
``512`` forces the wide form.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import equinox as eqx

try:  # whether a trace is active; JAX has no public API for it
    from jax._src.core import trace_state_clean as _outside_any_trace
except ImportError:  # pragma: no cover - a future JAX moved it: always compile the plain program
    def _outside_any_trace() -> bool:
        return False

__all__ = ["COMPILER_OPTIONS", "filter_jit"]

_ENV = "EBM_PPL_CPU_VECTOR_WIDTH"


def _host_has_avx512() -> bool:
    """Whether the CPU has AVX-512 (its ``avx512f`` flag in ``/proc/cpuinfo``); False where that
    file does not exist (XLA's default vector width is then kept)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " avx512f" in line for line in f)
    except OSError:
        return False


def _options() -> dict[str, Any]:
    width = os.environ.get(_ENV, "").strip()
    if width:
        if width not in ("256", "512"):
            raise ValueError(f"{_ENV} must be 256 or 512, got {width!r}")
        return {} if width == "256" else {"xla_cpu_prefer_vector_width": 512}
    return {"xla_cpu_prefer_vector_width": 512} if _host_has_avx512() else {}


#: The XLA options ebm_ppl's compiled loops use (empty: XLA's defaults).
COMPILER_OPTIONS: dict[str, Any] = _options()


def filter_jit(fun: Callable | None = None, **jit_kwargs):
    """:func:`equinox.filter_jit` with :data:`COMPILER_OPTIONS` when called outside any trace, plain
    ``filter_jit`` under one (where JAX refuses compiler options); usable bare or with arguments."""
    if fun is None:
        return lambda f: filter_jit(f, **jit_kwargs)
    plain = eqx.filter_jit(fun, **jit_kwargs)
    tuned = plain
    if COMPILER_OPTIONS:
        tuned = eqx.filter_jit(fun, **{"compiler_options": dict(COMPILER_OPTIONS), **jit_kwargs})

    @functools.wraps(fun)
    def call(*args, **kwargs):
        return (tuned if _outside_any_trace() else plain)(*args, **kwargs)

    call.top_level, call.nested = tuned, plain  # the two compiled functions (for tests and benchmarks)
    return call
