"""ebm_ppl on an accelerator: the figures the CPU benchmarks report, measured in one short run.

Prepared for a scarce GPU session (about 2-4 minutes with compilation): each figure is taken once,
with a few warm repetitions, no rounds. It measures ebm_ppl only and imports no peer: read it
beside the CPU figures of gibbs_sweeps.py, ais_speed.py, rbm_training.py and jem_vs_torch.py.

* ``gibbs``  sweeps/s, 100 chains of ``ep.BernoulliRBM.init(key(0), D, M, scale=0.1)``, 64x20 and
             784x500. ``kernel loop``: ``jax.vmap(ep.kernels.block_gibbs(rbm).step)`` in a jitted
             ``lax.fori_loop`` whose trip count is an argument (the sweeps are chosen after a first
             timing, about 0.3 s per call, without compiling again), with
             ``ep.compiler.options_for(rbm)`` (none on an accelerator) and ebm_ppl's Philox (``ep.random.rekey``; what
             ``ep.sample``, ``ep.ais`` and ``ep.fit`` draw from by default);
             ``ep.sample``: the whole call ``ep.sample(key, rbm, "block_gibbs", num_chains=100,
             num_warmup=0, num_samples=N)`` (run, draws to the host, ArviZ), first call and the
             median of 3 warm calls.
* ``ais``    ``ep.ais(key, rbm, num_chains=100, num_temperatures=1000)`` on the same RBMs: cold
             (first call in the process, compile included) and warm (median of the next 3).
* ``pcd``    rbm_training.py's setting: ``ep.fit(ep.BernoulliRBM.init(key(0), 64, 20, scale=0.01),
             x_train, ep.training.pcd(k=1, num_chains=100), optimizer=optax.sgd(0.05), epochs=E,
             batch_size=100, metrics=False, shuffle=False)``, binarized digits: the first call, and
             the warm epoch = (warm call of 2E epochs - warm call of E) / E, median of 3, E = 20.
* ``jem``    jem_vs_torch.py's setting: ``ep.JEM.init(key(0), 64, 10, width=512, depth=3,
             activation="elu")``, ``ep.training.jem(langevin_steps=20, step_size=1.0,
             noise_scale=0.01, init_low=-1.0, init_high=1.0)``, Adamax 1e-3, batch 64, digits in
             [-1, 1] with noise 0.03, a ``metrics`` callback that only stamps the time (one epoch
             per compiled call, no evaluation): epoch = median gap after the first (compile) epoch.

Each measurement runs in its own process (``--only NAME`` prints one ``RESULT {json}`` line) on
JAX's default backend: the driver passes its environment on unchanged (no ``JAX_PLATFORMS=cpu``)
and never starts JAX itself, so it holds no GPU memory. A measurement that fails or passes its
time limit is reported and the rest still run. Timings end with ``jax.block_until_ready`` (or a
call returning host values). ``--quick`` uses 64x20 and 128x64, 50 temperatures, width 64. On a
CPU the header says the run is a smoke run, not the GPU measurement.

    python benchmarks/gpu.py                     # on the GPU host, 2-4 minutes (a 2-core CPU: ~45 s)
    python benchmarks/gpu.py --json gpu.json     # also keep the results
    python benchmarks/gpu.py --quick             # smoke run, about 20-30 s on a 2-core CPU
    python benchmarks/gpu.py --only ais          # one measurement, JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # benchmarks/ is not a package: import from this folder

MEASUREMENTS = ("gibbs", "ais", "pcd", "jem")
CHAINS = 100
FULL = {"sizes": ((64, 20), (784, 500)), "samples": {64: 2000, 784: 200}, "temperatures": 1000, "reps": 3,
        "loop_target_s": 0.3, "pcd_epochs": 20, "jem_epochs": 6, "jem_width": 512, "timeout_s": 240}
QUICK = {"sizes": ((64, 20), (128, 64)), "samples": {64: 50, 128: 20}, "temperatures": 50, "reps": 1,
         "loop_target_s": 0.02, "pcd_epochs": 5, "jem_epochs": 3, "jem_width": 64, "timeout_s": 120}


def device_info() -> dict:
    import jax

    import ebm_ppl as ep

    d = jax.devices()[0]
    return {"backend": jax.default_backend(), "device_kind": d.device_kind, "device_count": jax.device_count(),
            "jax": jax.__version__, "ebm_ppl": getattr(ep, "__version__", "?")}


def timed(f):
    """``(seconds, value)`` of ``f()``, with the value's arrays ready."""
    import jax

    t = time.perf_counter()
    v = jax.block_until_ready(f())
    return time.perf_counter() - t, v


# ------------------------------------------------------------------------------------------------
# measurements (each in its own process under --only)


def measure_gibbs(cfg) -> dict:
    import functools
    import warnings

    import jax
    import jax.numpy as jnp

    import ebm_ppl as ep

    warnings.filterwarnings("ignore", message="Found chain dimension")
    out = {}
    for D, M in cfg["sizes"]:
        rbm = ep.BernoulliRBM.init(jax.random.key(0), D, M, scale=0.1)
        algo = ep.kernels.block_gibbs(rbm)
        x0 = jax.random.bernoulli(jax.random.key(1), 0.5, (CHAINS, D)).astype(jnp.float32)
        states = jax.vmap(algo.init)(x0, jax.random.split(jax.random.key(7), CHAINS))

        @functools.partial(jax.jit, compiler_options=ep.compiler.options_for(rbm) or None)
        def loop(key, states, n):
            def body(i, s):
                return jax.vmap(algo.step)(jax.random.split(jax.random.fold_in(key, i), CHAINS), s)[0]

            return jax.lax.fori_loop(0, n, body, states).position

        n = 100
        first, _ = timed(lambda: loop(ep.random.rekey(jax.random.key(10)), states, n))
        t1, _ = timed(lambda: loop(ep.random.rekey(jax.random.key(11)), states, n))
        n = max(100, int(n * cfg["loop_target_s"] / max(t1, 1e-6)))  # about loop_target_s per call
        times = [timed(lambda r=r: loop(ep.random.rekey(jax.random.key(20 + r)), states, n))[0] for r in range(max(3, cfg["reps"]))]
        S = cfg["samples"][D]
        calls = [timed(lambda r=r: ep.sample(jax.random.key(r), rbm, "block_gibbs", num_chains=CHAINS, num_warmup=0,
                                             num_samples=S, init=x0))[0] for r in range(1 + cfg["reps"])]
        warm = statistics.median(calls[1:])
        out[f"{D}x{M}"] = {"loop_sweeps": n, "loop_first_call_s": first,
                           "loop_sweeps_per_s": n / statistics.median(times), "sample_draws": S,
                           "sample_first_call_s": calls[0], "sample_warm_call_s": warm, "sample_sweeps_per_s": S / warm}
    return out


def measure_ais(cfg) -> dict:
    import jax

    import ebm_ppl as ep

    out = {}
    for D, M in cfg["sizes"]:
        rbm = ep.BernoulliRBM.init(jax.random.key(0), D, M, scale=0.1)
        T = cfg["temperatures"]
        calls = [timed(lambda r=r: ep.ais(jax.random.key(r), rbm, num_chains=CHAINS, num_temperatures=T)) for r in
                 range(1 + cfg["reps"])]
        out[f"{D}x{M}"] = {"temperatures": T, "cold_s": calls[0][0],
                           "warm_s": statistics.median(t for t, _ in calls[1:]),
                           "log_z": calls[-1][1].log_z, "stderr": calls[-1][1].stderr}
    return out


def measure_pcd(cfg) -> dict:
    import equinox as eqx
    import jax
    import optax

    import ebm_ppl as ep

    x = ep.data.digits(binarize=True).x_train
    opt = optax.sgd(0.05)

    def run(E):
        rbm = ep.BernoulliRBM.init(jax.random.key(0), 64, 20, scale=0.01)
        return timed(lambda: eqx.filter(ep.fit(rbm, x, ep.training.pcd(k=1, num_chains=CHAINS), key=jax.random.key(1),
                                               optimizer=opt, epochs=E, batch_size=100, metrics=False,
                                               shuffle=False)[0], eqx.is_array))[0]

    E = cfg["pcd_epochs"]
    first = run(E)
    pairs = [(run(E), run(2 * E)) for _ in range(max(3, cfg["reps"]))]
    return {"epochs": E, "first_call_s": first, "warm_call_s": statistics.median(a for a, _ in pairs),
            "epoch_s": statistics.median((b - a) / E for a, b in pairs)}


def measure_jem(cfg) -> dict:
    import jax
    import optax

    import ebm_ppl as ep

    d = ep.data.digits(train_noise=0.03, key=jax.random.key(1000))
    stamps = []

    def stamp(model, data, key, prefix):  # called after every epoch: the time only
        jax.block_until_ready(jax.tree.leaves(model))
        stamps.append(time.perf_counter())
        return {}

    model = ep.JEM.init(jax.random.key(0), 64, 10, width=cfg["jem_width"], depth=3, activation="elu")
    est = ep.training.jem(langevin_steps=20, step_size=1.0, noise_scale=0.01, init_low=-1.0, init_high=1.0)
    t0 = time.perf_counter()
    ep.fit(model, (d.x_train, d.y_train), est, key=jax.random.key(1), optimizer=optax.adamax(1e-3),
           epochs=cfg["jem_epochs"], batch_size=64, metrics=stamp)
    gaps = [b - a for a, b in zip([t0] + stamps, stamps)]
    return {"epochs": cfg["jem_epochs"], "width": cfg["jem_width"], "first_epoch_s": gaps[0],
            "epoch_s": statistics.median(gaps[1:])}


def measure_one(a) -> dict:
    cfg = QUICK if a.quick else FULL
    t = time.perf_counter()
    res = {"gibbs": measure_gibbs, "ais": measure_ais, "pcd": measure_pcd, "jem": measure_jem}[a.only](cfg)
    return {"name": a.only, "device": device_info(), "process_s": time.perf_counter() - t, "result": res}


# ------------------------------------------------------------------------------------------------
# driver


def run_child(name: str, quick: bool, timeout: float) -> dict:
    """This script with ``--only name`` under the same environment (the default JAX backend)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--only", name] + (["--quick"] if quick else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(drv.RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        return {"name": name, "error": f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}"}
    return json.loads(lines[-1][len(drv.RESULT_PREFIX):])


def drive(a) -> dict:
    cfg = QUICK if a.quick else FULL
    load0, t0 = drv.load(), time.perf_counter()
    results = {}
    for name in a.measurements.split(","):
        results[name] = run_child(name, a.quick, cfg["timeout_s"])
        status = results[name].get("error") or f"{results[name]['process_s']:.1f} s"
        print(f"  {name} done ({status})", flush=True)
    dev = next((r["device"] for r in results.values() if "device" in r), {})
    S = {"date": drv.today(), "cpu_model": drv.cpu_model(), "device": dev, "quick": a.quick, "load_start": load0,
         "wall_s": time.perf_counter() - t0, "results": results}
    report(S)
    return S


def report(S) -> None:
    dev = S["device"]
    kind = f"{dev.get('device_kind', '?')} x{dev.get('device_count', '?')} (backend {dev.get('backend', '?')})"
    print(f"\n# gpu.py {S['date']}; device {kind}; host CPU {S['cpu_model']} ({drv.cores()} cores, load "
          f"{S['load_start']:.2f}); jax {dev.get('jax', '?')}, ebm_ppl {dev.get('ebm_ppl', '?')}; "
          f"wall {S['wall_s']:.0f} s")
    if dev.get("backend", "cpu") == "cpu" or S["quick"]:
        print(f"# SMOKE RUN ({'--quick, tiny sizes' if S['quick'] else 'full sizes'} on backend "
              f"{dev.get('backend', '?')}): checks the code path; NOT the GPU measurement")
    R = {k: v.get("result") or {} for k, v in S["results"].items()}
    rows = [("measurement", "warm", "first call (compile incl.)")]
    for size, g in R.get("gibbs", {}).items():
        rows += [(f"block Gibbs {size}, 100 chains, kernel loop", f"{g['loop_sweeps_per_s']:.4g} sweeps/s",
                  f"{g['loop_first_call_s']:.2f} s (100 sweeps)"),
                 (f"block Gibbs {size}, ep.sample whole call", f"{g['sample_sweeps_per_s']:.4g} sweeps/s",
                  f"{g['sample_first_call_s']:.2f} s ({g['sample_draws']} draws)")]
    rows += [(f"ep.ais {size}, 100 chains x {r['temperatures']} temps", f"{r['warm_s']:.3f} s", f"{r['cold_s']:.2f} s")
             for size, r in R.get("ais", {}).items()]
    if R.get("pcd"):
        rows.append(("PCD-1 epoch, 64x20 digits, batch 100", f"{R['pcd']['epoch_s'] * 1e3:.3f} ms",
                     f"{R['pcd']['first_call_s']:.2f} s ({R['pcd']['epochs']} epochs)"))
    if R.get("jem"):
        rows.append((f"JEM epoch, digits, width {R['jem']['width']}, batch 64", f"{R['jem']['epoch_s'] * 1e3:.1f} ms",
                     f"{R['jem']['first_epoch_s']:.2f} s (epoch 1)"))
    for label, warm, first in rows:
        print(f"{label:44s} {warm:>22s}  {first:>27s}")
    for k, v in S["results"].items():
        if "error" in v:
            print(f"{k}: FAILED {v['error']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the code path")
    ap.add_argument("--only", choices=MEASUREMENTS)
    ap.add_argument("--measurements", default=",".join(MEASUREMENTS), help="comma-separated subset to run")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if a.only is None and not set(a.measurements.split(",")) <= set(MEASUREMENTS):
        ap.error(f"--measurements: choose from {','.join(MEASUREMENTS)}")
    drv.dispatch(a, measure_one, drive)


if __name__ == "__main__":
    main()
