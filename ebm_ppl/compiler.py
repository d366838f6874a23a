"""XLA options for ebm_ppl's own compiled loops, chosen for the host and the model's size.

Vector width. On CPU, XLA vectorizes its elementwise kernels (random-number generation, sigmoids,
the Bernoulli draws) for 256-bit registers by default, even where the processor has 512-bit
AVX-512 registers (on some older Intel parts wide instructions lower the clock). These loops are
dominated by such kernels when the model is small, so on a host with AVX-512 ebm_ppl compiles its
own programs (``ebm_ppl.sample``'s run, ``ebm_ppl.ais``, ``ebm_ppl.fit``'s epochs) with
``xla_cpu_prefer_vector_width=512``. ``EBM_PPL_CPU_VECTOR_WIDTH`` (read at import) overrides the
choice: ``256`` gives XLA's default, ``512`` forces the wide form.

Dot library. XLA computes a program's matrix products with YNNPACK by default; on Intel CPUs
oneDNN is 1.1-1.4x faster for products of more than a few million flops (a 784 x 500 RBM's Gibbs
sweep over 100 chains: 1.2x; a JEM epoch: 1.1x) and slower for the smallest (a 64 x 20 RBM's:
0.75x). So on an Intel host, the programs of a model with at least
:data:`LARGE_MODEL_PARAMETERS` parameters compile their products with oneDNN
(:data:`LARGE_MODEL_OPTIONS`); ``sample``, ``ais``, ``reverse_ais`` and ``fit`` choose by their
model (:func:`sized_by`). Not while JAX's persistent compilation cache is on (the ``ebm-ppl``
command's default): XLA cannot store oneDNN's programs, and start-up wins there. On other hosts
(AMD measured YNNPACK ahead) nothing changes. ``EBM_PPL_CPU_DOTS`` (read at import) overrides the
choice: ``ynnpack`` never uses oneDNN, ``onednn`` uses it for large models on any x86 Linux host,
cache or not. The measurements are in ``docs/performance.md``; ``benchmarks/xla_cpu_options.py``
repeats them on any machine.

The vector width only changes how XLA vectorizes: results are bitwise identical (tested).
oneDNN's products round differently from YNNPACK's in some shapes, so results of large models
agree to float rounding, not always bit for bit (tested): energies and AIS weights within about
1e-7 relative (a 784 x 500 RBM's AIS log Z 980.74680 vs 980.74672), JEM's parameters within
4e-7 after 5 epochs; Bernoulli draws, thresholds of probabilities, were the same in every case
tried. A given host, model and setting always gives the same result. The options are
passed per program (``jax.jit(compiler_options=...)``), so nothing else in the process changes,
and only when JAX's default backend is the CPU: GPU/TPU programs compile with their backend's
defaults. JAX accepts compiler options only on an outermost ``jit``: a function wrapped by
:func:`filter_jit` that is called under a trace (a user's ``jit``, ``vmap``, ``grad``) compiles
as part of that program, without them.

Start-up: every new process compiles its programs again (about a second each for an AIS run or a
sampler). :func:`enable_persistent_cache` keeps them on disk with JAX's own persistent compilation
cache, so a later process loads them instead (a cold ``ep.ais`` at 100 chains x 1000 temperatures
on a 64x20 RBM: 1.9 s the first time, 0.4 s from the cache, Intel Xeon). The ``ebm-ppl`` command
enables it in :func:`cache_dir`'s folder unless ``--no-compile-cache`` or
``EBM_PPL_COMPILE_CACHE=off``; library calls leave JAX's settings alone unless asked.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import equinox as eqx

from ebm_ppl import checks

try:  # whether a trace is active; JAX has no public API for it
    from jax._src.core import trace_state_clean as _outside_any_trace
except ImportError:  # pragma: no cover - a future JAX moved it: always compile the plain program
    def _outside_any_trace() -> bool:
        return False

__all__ = ["COMPILER_OPTIONS", "LARGE_MODEL_OPTIONS", "LARGE_MODEL_PARAMETERS", "filter_jit", "options_for",
           "for_model", "num_parameters", "sized_by", "options_in_effect", "size_bucket", "enable_persistent_cache",
           "cache_dir", "CACHE_ENV"]

#: Environment variable naming the compile cache's folder for the command line; ``off`` (or
#: ``0``, ``false``, ``no``) disables the cache.
CACHE_ENV = "EBM_PPL_COMPILE_CACHE"
_OFF = ("0", "off", "false", "no")

_ENV = "EBM_PPL_CPU_VECTOR_WIDTH"
_DOTS_ENV = "EBM_PPL_CPU_DOTS"


def _cpuinfo(field: str) -> str:
    """The first ``field`` line's value in ``/proc/cpuinfo`` ("" where that file or line does not
    exist: the host's choices then stay XLA's defaults)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() == field:
                    return value.strip()
    except OSError:
        pass
    return ""


def _host_has_avx512() -> bool:
    """Whether the CPU has AVX-512 (its ``avx512f`` flag in ``/proc/cpuinfo``)."""
    return "avx512f" in _cpuinfo("flags").split()


def _options() -> dict[str, Any]:
    width = os.environ.get(_ENV, "").strip()
    if width:
        if width not in ("256", "512"):
            raise ValueError(f"{_ENV} must be 256 or 512, got {width!r}")
        return {} if width == "256" else {"xla_cpu_prefer_vector_width": 512}
    return {"xla_cpu_prefer_vector_width": 512} if _host_has_avx512() else {}


#: Matrix products through oneDNN (XLA 0.12's names): oneDNN claims them before YNNPACK, which keeps
#: the rest of its default work (emptying YNNPACK's list too would hand its reductions to XLA's
#: emitter as well, for no gain).
_ONEDNN_DOTS = {"xla_cpu_use_onednn": True,
                "xla_cpu_experimental_onednn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}

#: Models with at least this many parameters (floating-point array elements) compile with
#: :data:`LARGE_MODEL_OPTIONS`: on the Intel Xeon, oneDNN overtook YNNPACK between a 64 x 64 and a
#: 128 x 128 RBM's Gibbs sweep over 100 chains (4096 and 16384 weights).
LARGE_MODEL_PARAMETERS = 8192


def _dots_choice() -> str:
    dots = os.environ.get(_DOTS_ENV, "").strip().lower() or "auto"
    if dots not in ("auto", "ynnpack", "onednn"):
        raise ValueError(f"{_DOTS_ENV} must be auto, ynnpack or onednn, got {dots!r}")
    return dots


def _large_options() -> dict[str, Any]:
    dots = _dots_choice()
    if dots == "auto":
        dots = "onednn" if _cpuinfo("vendor_id") == "GenuineIntel" else "ynnpack"
    return {**COMPILER_OPTIONS, **_ONEDNN_DOTS} if dots == "onednn" and _cpuinfo("flags") else dict(COMPILER_OPTIONS)


try:
    #: The XLA options ebm_ppl's compiled loops use (empty: XLA's defaults).
    COMPILER_OPTIONS: dict[str, Any] = _options()
    #: The XLA options of the programs of a model with at least :data:`LARGE_MODEL_PARAMETERS`
    #: parameters (equal to :data:`COMPILER_OPTIONS` on hosts where they would not help).
    LARGE_MODEL_OPTIONS: dict[str, Any] = _large_options()
    _DOTS_FORCED = _dots_choice() == "onednn"  # else oneDNN gives way to the persistent cache
    _ENV_ERROR: ValueError | None = None
except ValueError as exc:  # a misspelled setting: raised by the first compiled call, not by the import
    COMPILER_OPTIONS, LARGE_MODEL_OPTIONS, _DOTS_FORCED, _ENV_ERROR = {}, {}, False, exc

_LARGE = contextvars.ContextVar("ebm_ppl_large_model", default=False)


def num_parameters(model: Any) -> int:
    """The number of floating-point array elements in ``model``'s pytree (what
    :data:`LARGE_MODEL_PARAMETERS` is compared with; arrays a function closes over are not seen)."""
    import jax

    return sum(int(x.size) for x in jax.tree.leaves(model) if eqx.is_inexact_array(x))


def options_for(model: Any) -> dict[str, Any]:
    """The XLA options ebm_ppl would compile ``model``'s programs with, called here and now (for
    your own ``jax.jit(..., compiler_options=...)`` around its kernels; see :func:`options_in_effect`)."""
    with for_model(model):
        return options_in_effect()


@contextlib.contextmanager
def for_model(model: Any) -> Iterator[None]:
    """Within the block, :func:`filter_jit` programs compile for ``model``'s size: with
    :data:`LARGE_MODEL_OPTIONS` when it has at least :data:`LARGE_MODEL_PARAMETERS` parameters."""
    large = LARGE_MODEL_OPTIONS != COMPILER_OPTIONS and num_parameters(model) >= LARGE_MODEL_PARAMETERS
    token = _LARGE.set(large)
    try:
        yield
    finally:
        _LARGE.reset(token)


def sized_by(name: str) -> Callable[[Callable], Callable]:
    """Decorator: the function's programs compile for the size of its argument ``name`` (a model;
    :func:`for_model`)."""

    def decorate(fun: Callable) -> Callable:
        signature = inspect.signature(fun)

        @functools.wraps(fun)
        def call(*args, **kwargs):
            try:
                model = signature.bind_partial(*args, **kwargs).arguments.get(name)
            except TypeError:  # the call itself is wrong: let the function say how
                return fun(*args, **kwargs)
            with for_model(model):
                return fun(*args, **kwargs)

        return call

    return decorate


@functools.cache
def _backend_is_cpu() -> bool:
    import jax

    return jax.default_backend() == "cpu"


def _persistent_cache_on() -> bool:
    import jax

    return bool(jax.config.jax_compilation_cache_dir)


def options_in_effect() -> dict[str, Any]:
    """The options a :func:`filter_jit` call made here and now compiles with: none under a trace or
    when JAX's default backend is not the CPU, else :data:`COMPILER_OPTIONS` or, inside
    :func:`for_model` of a large model, :data:`LARGE_MODEL_OPTIONS` (unless JAX's persistent
    compilation cache is on: XLA 0.12 cannot store a program with oneDNN's products, so a cached
    process keeps YNNPACK's, unless ``EBM_PPL_CPU_DOTS=onednn`` insists)."""
    if _ENV_ERROR is not None:
        raise _ENV_ERROR
    if not _outside_any_trace() or not _backend_is_cpu():
        return {}
    if not _LARGE.get() or (not _DOTS_FORCED and _persistent_cache_on()):
        return COMPILER_OPTIONS
    return LARGE_MODEL_OPTIONS if _accepted(tuple(sorted(LARGE_MODEL_OPTIONS.items()))) else COMPILER_OPTIONS


@functools.cache
def _accepted(options: tuple) -> bool:
    """Whether this JAX's XLA compiles with ``options`` (XLA renames its experimental options
    between versions; where they are refused, ebm_ppl keeps :data:`COMPILER_OPTIONS`)."""
    import jax
    import jax.numpy as jnp

    x = jnp.zeros((2, 2), jnp.float32)
    try:
        jax.jit(jnp.matmul, compiler_options=dict(options)).lower(x, x).compile()
    except Exception:  # noqa: BLE001 - any refusal means: not these options
        return False
    return True


def filter_jit(fun: Callable | None = None, **jit_kwargs):
    """:func:`equinox.filter_jit` compiled with :func:`options_in_effect` at each call (plain
    ``filter_jit`` under a trace, where JAX refuses compiler options); usable bare or with arguments.

    The result's ``compiled_with(options)`` is the jitted function for given options (one per set
    of options, made on first use), ``top_level`` the one for :data:`COMPILER_OPTIONS` and
    ``nested`` the plain one."""
    if fun is None:
        return lambda f: filter_jit(f, **jit_kwargs)
    plain = eqx.filter_jit(fun, **jit_kwargs)
    variants: dict[tuple, Callable] = {}

    def compiled_with(options: dict[str, Any]) -> Callable:
        if not options:
            return plain
        key = tuple(sorted(options.items()))
        if key not in variants:
            variants[key] = eqx.filter_jit(fun, **{"compiler_options": dict(options), **jit_kwargs})
        return variants[key]

    @functools.wraps(fun)
    def call(*args, **kwargs):
        return compiled_with(options_in_effect())(*args, **kwargs)

    call.compiled_with, call.top_level, call.nested = compiled_with, compiled_with(COMPILER_OPTIONS), plain
    return call


def size_bucket(size: int, minimum: int = 8) -> int:
    """The size a program compiled for ``size`` items is built for: the least ``m * 2**k >= size``
    with ``m`` in 4..7 (at least ``minimum``), so at most 25% more. One compiled program serves
    every size of a bucket (``ebm_ppl.sample``'s draws and ``thin``, ``ebm_ppl.fit``'s rows)."""
    if size <= minimum:
        return minimum
    k = max(0, size.bit_length() - 3)
    return -(-size // 2**k) * 2**k


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
    if path is not None and (not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip()):
        raise ValueError(f"enable_persistent_cache: path must name a folder, got {path!r} (None: the default folder)")
    min_compile_time = checks.non_negative_float(min_compile_time, "enable_persistent_cache: min_compile_time")
    folder = Path(path).expanduser() if path is not None else cache_dir()
    if folder is None:
        raise ValueError(f"enable_persistent_cache: {CACHE_ENV} disables the cache; pass a path to enable it anyway")
    import jax

    if jax.config.jax_compilation_cache_dir == str(folder):  # already on, in this folder: nothing to check again
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"enable_persistent_cache: cannot write to {folder}")
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time)
    return folder
