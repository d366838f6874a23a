"""RBM training: ebm_ppl's ``ep.fit`` (PCD-1) against scikit-learn's ``BernoulliRBM.fit`` (PCD-1).

Bernoulli RBM, 64 visible x 20 hidden, on the binarized digits train split (1000 x 64), batch
100, learning rate 0.05, E epochs (10 updates each), 100 persistent chains:

* ``ep``      ``ep.fit(ep.BernoulliRBM.init(key(seed), 64, 20, scale=0.01), x_train,
              ep.training.pcd(k=1, num_chains=100), key=key(seed + 1), optimizer=optax.sgd(0.05),
              epochs=E, batch_size=100, metrics=stamp)`` where ``stamp`` only records the time (fit
              calls it after every epoch): warm epoch time = median gap between successive stamps
              (the whole fit loop: compiled epoch, health checks, bookkeeping); compile = first
              gap - epoch (every ``fit`` call compiles its epoch afresh). With ``--with-metrics`` (first round)
              it also times an E-epoch call with the default per-epoch metrics (reconstruction
              error, pseudo-LL and the exact train log-likelihood, a 2^20-term log Z, every epoch).
* ``sklearn`` ``BernoulliRBM(n_components=20, learning_rate=0.05, batch_size=100, n_iter=E,
              random_state=seed).fit(x_train)``, per epoch = total / E; timed with OpenBLAS at its
              default thread count and limited to 1 thread (the faster is the comparison).

Both models are then scored by the exact mean test log-likelihood (447 test digits), with log Z
from ``ep.log_partition`` (scikit-learn's model rebuilt as ``ep.BernoulliRBM(components_.T,
intercept_visible_, intercept_hidden_)``). Each peer runs in its own process; rounds alternate
the order and use seed = round.

    python benchmarks/rbm_training.py             # 3 rounds, E = 20
    python benchmarks/rbm_training.py --quick     # 1 round
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # benchmarks/ is not a package: import from this folder


def test_ll(W, b, c) -> float:
    import jax
    import jax.numpy as jnp

    import ebm_ppl as ep

    rbm = ep.BernoulliRBM(jnp.asarray(W, jnp.float32), jnp.asarray(b, jnp.float32), jnp.asarray(c, jnp.float32))
    x = jnp.asarray(ep.data.digits(binarize=True).x_test)
    return float(jnp.mean(-jax.vmap(rbm._energy)(x)) - ep.log_partition(rbm))


def measure_ep(epochs: int, seed: int, with_metrics: bool) -> dict:
    import jax
    import optax

    import ebm_ppl as ep

    x = ep.data.digits(binarize=True).x_train

    def run(E, metrics="stamp"):
        stamps = []

        def stamp(model, data, key, prefix):  # called by fit after every epoch: timestamps only
            stamps.append(time.perf_counter())
            return {}

        rbm = ep.BernoulliRBM.init(jax.random.key(seed), 64, 20, scale=0.01)
        kw = {"metrics": stamp} if metrics == "stamp" else {}
        t = time.perf_counter()
        model, _ = ep.fit(rbm, x, ep.training.pcd(k=1, num_chains=100), key=jax.random.key(seed + 1),
                          optimizer=optax.sgd(0.05), epochs=E, batch_size=100, **kw)
        jax.block_until_ready(model.W)
        if not stamps:
            return time.perf_counter() - t, model, []
        return time.perf_counter() - t, model, [stamps[0] - t] + [b - a for a, b in itertools.pairwise(stamps)]

    run(2)  # warm the JAX runtime (the first compile in a process is slower)
    total, model, gaps = run(epochs)
    epoch = statistics.median(gaps[1:])  # warm epochs: time between successive end-of-epoch callbacks
    out = {"peer": "ep", "epoch_s": epoch, "compile_s": max(0.0, gaps[0] - epoch), "call_s": total,
           "call_minus_compile_per_epoch_s": (total - max(0.0, gaps[0] - epoch)) / epochs,
           "test_ll": test_ll(model.W, model.b, model.c),
           "threads": drv.xla_threads()}
    if with_metrics:
        t1, _, _ = run(1)
        tm, _, _ = run(epochs, metrics=None)
        out["call_with_metrics_s"] = tm
        out["epoch_with_metrics_s"] = (tm - t1) / (epochs - 1)  # approx: metric compiles counted in
    return out


def measure_sklearn(epochs: int, seed: int) -> dict:
    import warnings

    from sklearn.neural_network import BernoulliRBM
    from threadpoolctl import threadpool_limits

    import ebm_ppl as ep

    x = ep.data.digits(binarize=True).x_train.astype("float64")
    BernoulliRBM(n_components=20, n_iter=1, random_state=seed).fit(x)  # warm imports/BLAS
    times = {}
    for name, lim in (("default", None), ("1thread", 1), ) if seed % 2 == 0 else (("1thread", 1), ("default", None)):
        with threadpool_limits(limits=lim, user_api="blas"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = BernoulliRBM(n_components=20, learning_rate=0.05, batch_size=100, n_iter=epochs, random_state=seed)
            t = time.perf_counter()
            m.fit(x)
            times[name] = (time.perf_counter() - t) / epochs
        time.sleep(0.1)
    return {"peer": "sklearn", "epoch_s": min(times.values()), "epoch_s_by_threads": times,
            "test_ll": test_ll(m.components_.T, m.intercept_visible_, m.intercept_hidden_),
            "threads": "OpenBLAS default threads and 1 thread"}


def drive(a) -> dict:
    rounds = drv.rounds_for(a)
    load0 = drv.load()
    drv.header("rbm_training", load0, f"; E={a.epochs}")
    runs = {"ep": [], "sklearn": []}
    for r in range(rounds):
        for p in drv.round_order(["ep", "sklearn"], r):
            extra = ["--with-metrics"] if (p == "ep" and r == 0) else []
            res = drv.run_peer(__file__, ["--only", p, "--epochs", str(a.epochs), "--seed", str(r)] + extra)
            runs[p].append(res)
            print(f"  round {r + 1} {p:8s} epoch {res['epoch_s'] * 1e3:.2f} ms  test LL {res['test_ll']:.3f}", flush=True)
    S = {"date": drv.today(), "epochs": a.epochs, "rounds": rounds, "load_start": load0,
         "load_end": drv.load(), "runs": runs}
    for p, rs in runs.items():
        S[p] = {"epoch_s": statistics.median(x["epoch_s"] for x in rs),
                "test_ll": statistics.mean(x["test_ll"] for x in rs),
                "test_ll_all": [x["test_ll"] for x in rs]}
    S["ep"]["compile_s"] = statistics.median(x["compile_s"] for x in runs["ep"])
    S["ep"]["epoch_with_metrics_s"] = runs["ep"][0].get("epoch_with_metrics_s")
    S["sklearn"]["by_threads"] = {k: statistics.median(x["epoch_s_by_threads"][k] for x in runs["sklearn"])
                                  for k in ("default", "1thread")}
    S["ratio"] = drv.median_ratio((e["epoch_s"], s["epoch_s"]) for e, s in zip(runs["ep"], runs["sklearn"]))
    print(f"\n# results {S['date']}, load {load0:.2f} -> {S['load_end']:.2f}; {rounds} round(s); E={a.epochs}")
    print(f"ebm_ppl ep.fit   epoch {S['ep']['epoch_s'] * 1e3:8.2f} ms (compile per fit call {S['ep']['compile_s']:.2f} s; "
          f"with default metrics ~{(S['ep']['epoch_with_metrics_s'] or float('nan')) * 1e3:.1f} ms)  "
          f"test LL {S['ep']['test_ll']:.3f} {[round(v, 3) for v in S['ep']['test_ll_all']]}")
    print(f"sklearn .fit     epoch {S['sklearn']['epoch_s'] * 1e3:8.2f} ms (default threads "
          f"{S['sklearn']['by_threads']['default'] * 1e3:.2f}, 1 thread {S['sklearn']['by_threads']['1thread'] * 1e3:.2f})  "
          f"test LL {S['sklearn']['test_ll']:.3f} {[round(v, 3) for v in S['sklearn']['test_ll_all']]}")
    print(f"epoch-time ratio ebm_ppl/sklearn (median per round) {S['ratio']:.3f} (target <= 0.25)")
    return S


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("ep", "sklearn"))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--with-metrics", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    drv.dispatch(a, measure_one, drive)


def measure_one(a) -> dict:
    return measure_ep(a.epochs, a.seed, a.with_metrics) if a.only == "ep" else measure_sklearn(a.epochs, a.seed)


if __name__ == "__main__":
    main()
