"""Benchmark: start-up with and without the persistent compilation cache.

Each measurement is a fresh process (what a user starting a script or the command pays), run
twice against an empty temporary cache folder: the first process compiles and stores, the second
loads. Reported per process: wall time of the whole process (interpreter start and imports
included), seconds inside the measured call, and seconds XLA spent compiling
(``/jax/core/compile/backend_compile_duration`` events, so a program loaded from the cache adds
nothing there).

* ``logz``: ``ebm-ppl logz MODEL`` on a 64x16 Bernoulli RBM (the quickstart's size) with the
  command's defaults (100 chains, 10000 temperatures); target: the second run spends under 0.2 s
  compiling.
* ``ais``: ``ep.ais`` at 100 chains x 1000 temperatures on the same RBM in a script that calls
  ``ep.compiler.enable_persistent_cache`` first, against the same AIS in plain numpy (a fresh
  process that imports numpy only; ``benchmarks/ais_speed.py``'s ``numpy_ais``); target: the second ebm_ppl process
  within 2x of numpy's, start-up included.
* ``fit sizes``: one process (no cache) fits a 64x12 Bernoulli RBM by PCD-1 (3 epochs, batch 50,
  the default metrics on 350 validation digits) on the first N binarized training digits for N =
  1000, 900, 950, 1024 (all padded to 1024 rows: ``ep.training.rows.bucket_rows``), then 1100
  (the next bucket, 1280; the test digits complete it); reported per call: seconds and seconds
  compiling. Before ``fit`` padded its data, every new N compiled its epoch loop and metrics
  again.

    python benchmarks/startup.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver  # noqa: E402

_PRELUDE = """
import json, sys, time
t_start = time.perf_counter()
import jax, jax.monitoring as mon
compile_s = [0.0]
def on_duration(name, secs, **kw):
    if name == "/jax/core/compile/backend_compile_duration":
        compile_s[0] += secs
mon.register_event_duration_secs_listener(on_duration)
"""

_LOGZ = _PRELUDE + """
from ebm_ppl.cli import main
t0 = time.perf_counter()
code = main(["logz", sys.argv[1], "--quiet", "--out", sys.argv[2]])
print("RESULT " + json.dumps({"code": code, "call": time.perf_counter() - t0, "compile": compile_s[0],
                              "imports": t0 - t_start}))
"""

_AIS = _PRELUDE + """
import ebm_ppl as ep
ep.compiler.enable_persistent_cache(sys.argv[2])
t0 = time.perf_counter()
est = ep.ais(jax.random.key(0), ep.load(sys.argv[1]), num_chains=100, num_temperatures=1000)
print("RESULT " + json.dumps({"call": time.perf_counter() - t0, "compile": compile_s[0], "log_z": est.log_z,
                              "imports": t0 - t_start}))
"""

_NUMPY = """
import json, sys, time
t_start = time.perf_counter()
sys.path.insert(0, sys.argv[2])
import numpy as np
from ais_speed import numpy_ais
weights = np.load(sys.argv[1])
W, b, c = weights["W"], weights["b"], weights["c"]
t0 = time.perf_counter()
log_z = numpy_ais(W, b, c, np.zeros_like(b), np.linspace(0, 1, 1001), np.random.default_rng(0))
print("RESULT " + json.dumps({"call": time.perf_counter() - t0, "compile": 0.0, "log_z": log_z,
                              "imports": t0 - t_start}))
"""


_JAX_ONLY = """
import json, time
t_start = time.perf_counter()
import jax
t0 = time.perf_counter()
jax.numpy.zeros(1).block_until_ready()
print("RESULT " + json.dumps({"call": time.perf_counter() - t0, "compile": 0.0, "imports": t0 - t_start}))
"""


_FIT_SIZES = _PRELUDE + """
import numpy as np
import ebm_ppl as ep
data = ep.data.digits(binarize=True)
x_all = np.concatenate([data.x_train, data.x_test])  # 1447 rows: the training split, then the test digits
rbm = ep.BernoulliRBM.init(jax.random.key(0), 64, 12, data=data.x_train)
calls = []
for n in (1000, 900, 950, 1024, 1100):
    before, t0 = compile_s[0], time.perf_counter()
    ep.fit(rbm, x_all[:n], ep.training.pcd(k=1, num_chains=100), key=jax.random.key(1), epochs=3, batch_size=50,
           validation=data.x_val)
    calls.append({"n": n, "call": time.perf_counter() - t0, "compile": compile_s[0] - before})
print("RESULT " + json.dumps({"calls": calls, "call": 0.0, "compile": compile_s[0], "imports": 0.0}))
"""


def _process(code: str, *args: str, env: dict | None = None) -> dict:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})})
    wall = time.perf_counter() - t
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(proc.stderr[-3000:])
    return {**json.loads(lines[-1][len("RESULT "):]), "process": wall}


def main(argv=None) -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    import jax

    import ebm_ppl as ep

    _driver.header("startup: the persistent compilation cache", _driver.load())
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "rbm.ebm")
        rbm = ep.BernoulliRBM.init(jax.random.key(0), 64, 16)
        ep.save(model, rbm)
        rows = []
        cache = os.path.join(tmp, "cli-cache")
        for run in ("first", "second"):
            rows.append(("ebm-ppl logz", run, _process(_LOGZ, model, os.path.join(tmp, f"out-{run}"),
                                                       env={"EBM_PPL_COMPILE_CACHE": cache})))
        rows.append(("ebm-ppl logz", "no cache", _process(_LOGZ, model, os.path.join(tmp, "out-off"),
                                                          env={"EBM_PPL_COMPILE_CACHE": "off"})))
        for run in ("first", "second"):
            rows.append(("ep.ais 100x1000", run, _process(_AIS, model, os.path.join(tmp, "ais-cache"))))
        import numpy as np

        weights = os.path.join(tmp, "rbm.npz")  # numpy's process reads plain arrays: it imports no JAX
        np.savez(weights, **{k: np.asarray(getattr(rbm, k), np.float32) for k in ("W", "b", "c")})
        rows.append(("numpy AIS 100x1000", "-", _process(_NUMPY, weights, here)))
        rows.append(("JAX start only", "-", _process(_JAX_ONLY)))
    print(f"{'what':<20} {'process':<9} {'wall s':>7} {'imports s':>10} {'call s':>7} {'compiling s':>12}")
    for what, run, r in rows:
        print(f"{what:<20} {run:<9} {r['process']:>7.2f} {r['imports']:>10.2f} {r['call']:>7.2f} {r['compile']:>12.3f}")
    fit_sizes = _process(_FIT_SIZES)["calls"]
    print(f"\n{'ep.fit, N examples':<20} {'rows':>5} {'call s':>7} {'compiling s':>12}")
    for c in fit_sizes:
        print(f"{c['n']:<20} {ep.training.rows.bucket_rows(c['n']):>5} {c['call']:>7.2f} {c['compile']:>12.3f}")
    second_ais = next(r for w, run, r in rows if w.startswith("ep.ais") and run == "second")
    numpy_row, jax_row = rows[-2][2], rows[-1][2]
    print(f"\nsecond ep.ais process / numpy process: {second_ais['process'] / numpy_row['process']:.2f}x "
          f"(calls alone: {second_ais['call'] / numpy_row['call']:.2f}x); / (numpy process + JAX start): "
          f"{second_ais['process'] / (numpy_row['process'] + jax_row['process']):.2f}x")


if __name__ == "__main__":
    main()
