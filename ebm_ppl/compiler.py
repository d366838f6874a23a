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

Start-up: every new process compiles its programs again (about a second each for an AIS run or a
sampler). :func:`enable_persistent_cache` keeps them on disk with JAX's own persistent compilation
cache, so a later process loads them instead (a cold ``ep.ais`` at 100 chains x 1000 temperatures
on a 64x20 RBM: 1.9 s the first time, 0.4 s from the cache, Intel Xeon). The ``ebm-ppl`` command
enables it in :func:`cache_dir`'s folder unless ``--no-compile-cache`` or
``EBM_PPL_COMPILE_CACHE=off``; library calls leave JAX's settings alone unless asked.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable

import equinox as eqx

try:  # whether a trace is active; JAX has no public API for it
    from jax._src.core import trace_state_clean as _outside_any_trace
except ImportError:  # pragma: no cover - a future JAX moved it: always compile the plain program
    def _outside_any_trace() -> bool:
        return False

__all__ = ["COMPILER_OPTIONS", "filter_jit", "enable_persistent_cache", "cache_dir", "CACHE_ENV"]

#: Environment variable naming the compile cache's folder for the command line; ``off`` (or
#: ``0``, ``false``, ``no``) disables the cache.
CACHE_ENV = "EBM_PPL_COMPILE_CACHE"
_OFF = ("0", "off", "false", "no")

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


def cache_dir() -> Path | None:
    """The compile cache's folder: ``$EBM_PPL_COMPILE_CACHE`` if set (None when it says ``off``),
    else ``$XDG_CACHE_HOME/ebm_ppl/xla`` (``~/.cache/ebm_ppl/xla``)."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ebm_ppl" / "xla"


def enable_persistent_cache(path: str | os.PathLike | None = None, *, min_compile_time: float = 0.0) -> Path:
    """Keep compiled programs on disk (JAX's persistent compilation cache) so that later
    processes load them instead of compiling again; returns the folder.

    Args:
        path: the cache folder, created if missing; default :func:`cache_dir`'s (the environment
            variable's, or ``~/.cache/ebm_ppl/xla``).
        min_compile_time: programs that compiled faster than this (seconds) are not stored; 0
            stores all (JAX's own default is 1 s, which skips most of ebm_ppl's programs).

    Raises:
        OSError: the folder cannot be created or written.

    This sets JAX's ``jax_compilation_cache_dir`` for the whole process; call it before the first
    compilation (at the start of a script). The cache's entries are keyed by the program, the
    compiler options and the JAX version, so a stale entry is never used.
    """
    folder = Path(path).expanduser() if path is not None else cache_dir()
    if folder is None:
        raise ValueError(f"enable_persistent_cache: {CACHE_ENV} disables the cache; pass a path to enable it anyway")
    import jax

    if jax.config.jax_compilation_cache_dir == str(folder):  # already on, in this folder: nothing to check again
        jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time))
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"enable_persistent_cache: cannot write to {folder}")
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time))
    return folder
