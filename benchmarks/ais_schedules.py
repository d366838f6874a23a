"""AIS schedules on a trained digits RBM: ``schedule="adaptive"`` against the default and linear.

A 64x16 Bernoulli RBM trained on the binarized digits (first 1000 images, ``v >= 8``; PCD-1,
100 chains, ``optax.sgd(0.05)``, batch 100, ``--epochs`` epochs from ``init(data=x)``), exact log Z
by enumerating its 2^16 hidden states. For each number of temperatures T, ``--runs`` forward AIS
estimates with 100 chains and seeds 100.. for each schedule:

* ``default``: ``ep.partition.default_schedule(T)`` (Salakhutdinov & Murray's proportions);
* ``linear``: T + 1 evenly spaced temperatures;
* ``adaptive``: ``ep.ais(..., schedule="adaptive")``: a 128-temperature, 64-chain linear pilot,
  then T + 1 temperatures of equal per-step log-weight variance (its pilot is inside the timed call).

Reported per T and schedule: the run-to-run spread (sd of log Z), rmse and mean error against
exact, and the mean seconds per call after the first (compilation excluded). The issue's target is
a smaller spread for ``adaptive`` than for both others at the same T.

    python benchmarks/ais_schedules.py               # T = 100, 300, 1000; 20 runs (~3 min)
    python benchmarks/ais_schedules.py --quick       # T = 100; 5 runs
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # noqa: E402  benchmarks/ is not a package: import from this folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--temps", default="100,300,1000")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=300)
    a = ap.parse_args()
    if a.quick:
        a.temps, a.runs, a.epochs = "100", 5, 30

    import jax
    import numpy as np
    import optax
    from sklearn.datasets import load_digits

    import ebm_ppl as ep

    load0 = drv.load()
    drv.header("ais_schedules", load0, f"; 64x16 RBM, {a.epochs} epochs, {a.runs} runs per cell")
    x = (load_digits().data[:1000] >= 8).astype(np.float32)
    model = ep.BernoulliRBM.init(jax.random.key(0), 64, 16, data=x)
    model, _ = ep.fit(model, x, ep.training.pcd(1, 100), optimizer=optax.sgd(0.05), epochs=a.epochs, batch_size=100,
                      key=jax.random.key(1), metrics=False)
    exact = float(model.log_partition())
    print(f"exact log Z {exact:.4f}")
    print(f"{'T':>5} {'schedule':<9} {'sd':>8} {'rmse':>8} {'mean err':>9} {'s/call':>8}")
    for temps in (int(t) for t in a.temps.split(",")):
        schedules = {"default": None, "linear": np.linspace(0.0, 1.0, temps + 1), "adaptive": "adaptive"}
        for name, schedule in schedules.items():
            values, seconds = [], []
            for i in range(a.runs + 1):  # run 0 compiles and is not counted
                t0 = time.perf_counter()
                est = ep.ais(jax.random.key(100 + i), model, num_chains=100, num_temperatures=temps, schedule=schedule)
                if i:
                    values.append(est.log_z)
                    seconds.append(time.perf_counter() - t0)
            z = np.array(values)
            print(f"{temps:>5} {name:<9} {z.std(ddof=1):8.4f} {np.sqrt(np.mean((z - exact) ** 2)):8.4f} "
                  f"{z.mean() - exact:+9.4f} {np.mean(seconds):8.3f}", flush=True)
    print(f"# load {load0:.2f} -> {drv.load():.2f}; {drv.machine()[0]}")


if __name__ == "__main__":
    main()
