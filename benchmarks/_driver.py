"""Driver machinery shared by the benchmark scripts in this folder (not a benchmark itself).

Every script measures one peer per process (``script.py --only NAME ...`` prints one
``RESULT {json}`` line) and a driver that runs the peers in rounds, alternating their order,
then prints medians of per-round figures and medians of per-round ratios. This module holds the
parts that are the same in all of them: starting a peer's process and reading its result, the
round order, medians, the machine/load header, and the ``--only``/``--json`` dispatch of ``main``.

benchmarks/ is not a package: the scripts put their own folder on ``sys.path`` and
``import _driver``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

RESULT_PREFIX = "RESULT "


# ------------------------------------------------------------------------------------------------
# one peer per process


def run_peer(script: str, args_list, env_extra: dict | None = None, prefix=()) -> dict:
    """Run ``python script *args_list`` with ``JAX_PLATFORMS=cpu`` (plus ``env_extra``) and return
    the JSON of the last ``RESULT`` line it prints; raise with the tail of stderr if it fails.
    ``prefix``: a command the process runs under (e.g. ``("taskset", "-c", "0")``)."""
    return run_peer_with(sys.executable, script, args_list, env_extra, prefix)


def run_peer_with(python: str, script: str, args_list, env_extra: dict | None = None, prefix=()) -> dict:
    """:func:`run_peer` under another interpreter (a peer's own venv, e.g. PyTorch's)."""
    cmd = [*prefix, python, os.path.abspath(script)] + list(args_list)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env_extra or {})}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def emit_result(res: dict) -> None:
    """Print a peer's measurement as the ``RESULT`` line :func:`run_peer` reads."""
    print(RESULT_PREFIX + json.dumps(res))


def dispatch(args, measure_one, drive) -> dict | None:
    """``main``'s tail: with ``--only``, measure in this process and print ``RESULT``; otherwise
    run the driver and, with ``--json``, also write its summary there."""
    if args.only:
        emit_result(measure_one(args))
        return None
    summary = drive(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return summary


# ------------------------------------------------------------------------------------------------
# rounds and statistics


def round_order(order, r: int) -> list:
    """The peers of round ``r`` (0-based): ``order`` as given in even rounds, reversed in odd ones."""
    order = list(order)
    return order[::-1] if r % 2 else order


def rounds_for(args) -> int:
    """``--quick`` means one round."""
    return 1 if args.quick else args.rounds


def med(xs) -> float:
    """Median of the values that are not None; NaN when there are none."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def median_ratio(pairs) -> float:
    """Median over rounds of ``a / b`` for the per-round pairs ``(a, b)``."""
    return statistics.median(a / b for a, b in pairs)


# ------------------------------------------------------------------------------------------------
# the machine


def cores() -> int:
    return len(os.sched_getaffinity(0))


def load() -> float:
    """1-minute load average."""
    return os.getloadavg()[0]


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def today() -> str:
    return datetime.date.today().isoformat()


def openblas_coretype(default: str | None = "(unset)") -> str | None:
    return os.environ.get("OPENBLAS_CORETYPE", default)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere): benchmark
    figures name the CPU they were measured on."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> tuple[str, str]:
    """``(platform string with the CPU model, python version)``: the callers choose how to lay
    them out."""
    return f"{platform.platform()} [{cpu_model()}]", platform.python_version()


def header(name: str, load0: float, extra: str = "") -> None:
    """The one-line header of ais_speed / rbm_training, and the busy-machine warning."""
    plat, py = machine()
    print(f"# {name} {now()} {plat} python {py} cores {cores()} load {load0:.2f} "
          f"OPENBLAS_CORETYPE={openblas_coretype()}{extra}")
    warn_if_busy(load0, f"# WARNING: machine busy (load {load0:.2f}); numbers are noisy")


def busy(load0: float) -> bool:
    return load0 > 0.5 * cores()


def warn_if_busy(load0: float, message: str) -> None:
    if busy(load0):
        print(message)


def xla_threads() -> str:
    return f"XLA CPU pool over {cores()} cores"


def blas_threads() -> str:
    """The BLAS thread pools numpy/scipy loaded, as threadpoolctl reports them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    pools = {f"{i.get('internal_api')} {i.get('num_threads')} threads (core type {i.get('architecture')})"
             for i in threadpool_info() if i.get("user_api") == "blas"}
    return "; ".join(sorted(pools)) or "no BLAS pool found"


# ------------------------------------------------------------------------------------------------
# JAX helpers shared by the measurements


def jax_compile_log() -> list:
    """Turn on ``jax_log_compiles`` and return a list that collects the seconds of every
    "Finished ... in X sec" record JAX logs (tracing, lowering, compiling); clear it between calls."""
    import logging
    import re

    import jax

    times = []

    class Grab(logging.Handler):
        def emit(self, record):
            m = re.match(r"Finished .* in ([0-9.eE+-]+) sec", record.getMessage())
            if m:
                times.append(float(m.group(1)))

    logger = logging.getLogger("jax")
    logger.addHandler(Grab())
    logger.propagate = False
    jax.config.update("jax_log_compiles", True)
    return times


def matmul_pair_scan(W, length: int):
    """The matmul reference: a jitted ``lax.scan`` of ``length`` steps of ``(x @ W) @ W.T`` (float32,
    rescaled so values stay O(1)), compiled with the XLA options ebm_ppl's own loops use for a
    model of ``W``'s size (``ep.compiler.options_for``), so the matmul fraction compares like with like."""
    import functools

    import jax
    import jax.numpy as jnp

    from ebm_ppl.compiler import options_for

    @functools.partial(jax.jit, compiler_options=options_for(W) or None)
    def pair_scan(x):
        def body(x, _):
            x = (x @ W) @ W.T
            return x * jax.lax.rsqrt(jnp.mean(x * x) + 1e-12), None

        return jax.lax.scan(body, x, None, length=length)[0]

    return pair_scan
