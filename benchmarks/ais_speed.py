"""AIS speed and accuracy: ebm_ppl's ``ep.ais`` against a numpy AIS and BlackJAX tempered SMC.

(a) ``digits``: a 64x20 Bernoulli RBM trained on the binarized digits (PCD-1, 100 chains,
    ``optax.sgd(0.05)``, batch 100, 30 epochs; trained once by the driver and saved to a temp
    ``.ebm`` that every peer loads; exact log Z by ``ep.log_partition``). For each number of
    temperatures T and several seeds:
      * ``ep``    ``ep.ais(key, rbm, num_chains=100, num_temperatures=T, data=x_train)``, warm
                  (the first call per T, i.e. compilation, is reported separately; schedules are
                  padded to power-of-two buckets, so T in the same bucket compiles once), library
                  defaults (fused RBM path: x @ W once per temperature; ebm_ppl's Philox-2x32 random numbers);
      * ``numpy`` the same algorithm in numpy: base-rate base (smoothed training marginals, W = 0,
                  c = 0), ``ep.partition.default_schedule(T)``, linear parameter interpolation, one
                  block-Gibbs sweep per temperature (weight first, then move), float32 matmuls,
                  float64 log-weights, ``np.random.default_rng``; x @ W is computed once per
                  temperature and serves the weight update and p(h | x) (2 matmuls/temperature).
                  OpenBLAS limited to 1 thread (threadpoolctl): tiny matmuls, shared cores.
    Reported: seconds per estimate, spread (std of log Z over seeds), error vs exact, chain-steps
    (chains x temperatures) per second, and the seconds to reach a spread <= --target nats.
(b) ``big`` (inside the ``ep`` process): a 784x500 RBM (``ep.BernoulliRBM.init(key, 784, 500,
    scale=0.05)``), 100 chains, T = 200, uniform base; achieved GFLOP/s counting the 2 100x784x500
    matmuls per temperature the algorithm needs (x @ W for the weight and p(h | x), h @ W^T for
    p(x | h); ebm_ppl's fused RBM path executes exactly these), against a jitted float32
    ``lax.scan`` of the same matmul shapes (100x784 @ 784x500, 100x500 @ 500x784) in the same
    process, interleaved.
(c) ``gauss`` (its own process, the two JAX peers interleaved): a 10-d correlated ``ep.Gaussian``
    (std 0.5-3, correlation 0.8^|i-j|), exact log Z analytic. ``ep.ais(..., num_temperatures=T)``
    (geometric path from N(0, I), BlackJAX MALA with the step adapted along the path) against
    BlackJAX ``tempered_smc`` on the same path (logprior = N(0, I), loglikelihood = target - base),
    the same schedule, one MALA step per temperature (fixed step size --smc-step), systematic
    resampling every step (its default use), log Z = sum of ``log_likelihood_increment``. Both
    evaluate 2 target gradients per particle per temperature (MALA init + proposal), so compute is
    equal at equal T and particles.

    python benchmarks/ais_speed.py            # full run
    python benchmarks/ais_speed.py --quick    # smoke run
    python benchmarks/ais_speed.py --only numpy --model /tmp/x.ebm --temps 100,300 --seeds 5
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # benchmarks/ is not a package: import from this folder

CHAINS = 100
PEERS = ("ep", "numpy", "gauss")


def _log_mean_exp(a):
    import numpy as np

    m = np.max(a)
    return float(m + np.log(np.mean(np.exp(a - m))))


# ------------------------------------------------------------------------------------------------
# measurements


def measure_ep(model_path: str, temps, seeds: int, big: bool, offset: int = 0) -> dict:
    import jax

    import ebm_ppl as ep

    rbm = ep.load(model_path)
    x_train = ep.data.digits(binarize=True).x_train
    out = {"peer": "ep", "threads": drv.xla_threads(), "T": {}}
    for T in temps:
        t = time.perf_counter()
        ep.ais(jax.random.key(10_000 + T), rbm, num_chains=CHAINS, num_temperatures=T, data=x_train)
        first = time.perf_counter() - t
        times, logz = [], []
        for s in range(seeds):
            t = time.perf_counter()
            est = ep.ais(jax.random.key(offset + s), rbm, num_chains=CHAINS, num_temperatures=T, data=x_train)
            times.append(time.perf_counter() - t)
            logz.append(est.log_z)
        out["T"][str(T)] = {"times": times, "log_z": logz, "compile_s": max(0.0, first - statistics.median(times))}
    if big:
        out["big"] = measure_big()
    return out


def measure_big(T: int = 200, reps: int = 5) -> dict:
    import jax
    import jax.numpy as jnp

    import ebm_ppl as ep

    D, M = 784, 500
    rbm = ep.BernoulliRBM.init(jax.random.key(0), D, M, scale=0.05)
    W = rbm.W
    xr = jax.random.normal(jax.random.key(3), (CHAINS, D), jnp.float32)

    pair_scan = drv.matmul_pair_scan(W, T)

    fns = {"ep_ais": lambda k: ep.ais(k, rbm, num_chains=CHAINS, num_temperatures=T).log_z,
           "matmul_pair_scan": lambda k: jax.block_until_ready(pair_scan(xr))}
    compile_s, times = {}, {n: [] for n in fns}
    for n, f in fns.items():
        t = time.perf_counter()
        f(jax.random.key(99))
        compile_s[n] = time.perf_counter() - t
    for r in range(reps):
        for n in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            t = time.perf_counter()
            fns[n](jax.random.key(r))
            times[n].append(time.perf_counter() - t)
    med = {n: statistics.median(v) for n, v in times.items()}
    mm = 2 * CHAINS * D * M  # flops of one 100x784 @ 784x500 matmul
    return {"T": T, "times": times, "compile_s": {n: max(0.0, compile_s[n] - med[n]) for n in fns},
            "gflops_ep_2mm": 2 * T * mm / med["ep_ais"] / 1e9,
            "gflops_matmul": 2 * T * mm / med["matmul_pair_scan"] / 1e9}


def numpy_ais(W, b, c, b0, betas, rng):
    """Forward AIS, base (W=0, b0, c=0), linear interpolation, one block-Gibbs sweep/temperature."""
    import numpy as np

    n, (D, M) = CHAINS, W.shape
    WT = np.ascontiguousarray(W.T)
    f32 = np.float32
    log_z0 = float(np.sum(np.logaddexp(0, b0.astype(np.float64))) + M * math.log(2.0))
    # exact base draw
    x = (rng.random((n, D), dtype=f32) < 1 / (1 + np.exp(-b0))).astype(f32)
    log_w = np.zeros(n)
    db = (b - b0).astype(f32)
    for k in range(len(betas) - 1):
        b_prev, b_next = f32(betas[k]), f32(betas[k + 1])
        a = x @ W + c                                           # matmul 1 (weight and p(h|x))
        xb = x @ db
        # log f_beta(x) = (b0 + beta (b - b0)) x + sum softplus(beta a)
        log_w += (b_next - b_prev) * xb + np.sum(np.logaddexp(0, b_next * a) - np.logaddexp(0, b_prev * a), axis=1)
        h = (rng.random((n, M), dtype=f32) < 1 / (1 + np.exp(-b_next * a))).astype(f32)
        v = b0 + b_next * (db + h @ WT)                         # matmul 2 (b_beta + beta h W^T)
        x = (rng.random((n, D), dtype=f32) < 1 / (1 + np.exp(-v))).astype(f32)
    return log_z0 + _log_mean_exp(log_w)


def measure_numpy(model_path: str, temps, seeds: int, offset: int = 0) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    import ebm_ppl as ep

    rbm = ep.load(model_path)
    W, b, c = (np.asarray(a, np.float32) for a in (rbm.W, rbm.b, rbm.c))
    x_train = ep.data.digits(binarize=True).x_train
    p = (x_train.sum(0) + 1.0) / (x_train.shape[0] + 2.0)  # ebm_ppl's smoothed base rates
    b0 = (np.log(p) - np.log1p(-p)).astype(np.float32)
    out = {"peer": "numpy", "threads": "OpenBLAS limited to 1 thread", "T": {}}
    with threadpool_limits(limits=1, user_api="blas"):
        numpy_ais(W, b, c, b0, ep.partition.default_schedule(10), np.random.default_rng(999))  # warm
        for T in temps:
            betas = ep.partition.default_schedule(T)
            times, logz = [], []
            for s in range(seeds):
                t = time.perf_counter()
                logz.append(numpy_ais(W, b, c, b0, betas, np.random.default_rng(offset + s)))
                times.append(time.perf_counter() - t)
            out["T"][str(T)] = {"times": times, "log_z": logz, "compile_s": 0.0}
    return out


def measure_gauss(temps, seeds: int, smc_step: float, offset: int = 0) -> dict:
    import blackjax
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ebm_ppl as ep

    d = 10
    sd = np.linspace(0.5, 3.0, d)
    corr = 0.8 ** np.abs(np.subtract.outer(np.arange(d), np.arange(d)))
    cov = (sd[:, None] * corr * sd[None, :]).astype(np.float32)
    mean = np.linspace(-1, 1, d).astype(np.float32)
    target = ep.Gaussian(jnp.asarray(mean), jnp.asarray(cov))
    exact = float(ep.log_partition(target))
    base = ep.Gaussian.standard(d)

    logprior = lambda x: -base.unbatched_energy(x) - base.log_partition()
    loglik = lambda x: -target.unbatched_energy(x) - logprior(x)
    smc = blackjax.tempered_smc(logprior, loglik, blackjax.mala.build_kernel(), blackjax.mala.init,
                                blackjax.smc.extend_params({"step_size": jnp.asarray(smc_step)}),
                                blackjax.smc.resampling.systematic, num_mcmc_steps=1)

    @jax.jit
    def run_smc(key, betas):
        k0, k1 = jax.random.split(key)
        state = smc.init(jax.random.normal(k0, (CHAINS, d)))

        def body(state, inp):
            k, beta = inp
            state, info = smc.step(k, state, beta)
            return state, info.log_likelihood_increment

        _, inc = jax.lax.scan(body, state, (jax.random.split(k1, betas.shape[0] - 1), betas[1:]))
        return jnp.sum(inc)

    out = {"peer": "gauss", "exact": exact, "smc_step": smc_step, "T": {}}
    for T in temps:
        betas = jnp.asarray(ep.partition.default_schedule(T), jnp.float32)
        fns = {"ep": lambda k, T=T: ep.ais(k, target, num_chains=CHAINS, num_temperatures=T).log_z,
               "blackjax_smc": lambda k, betas=betas: float(run_smc(k, betas))}
        res = {n: {"times": [], "log_z": []} for n in fns}
        for n, f in fns.items():
            t = time.perf_counter()
            f(jax.random.key(77))
            res[n]["first_s"] = time.perf_counter() - t
        for s in range(seeds):
            for n in (list(fns) if s % 2 == 0 else list(fns)[::-1]):
                t = time.perf_counter()
                v = fns[n](jax.random.key(offset + s))
                res[n]["times"].append(time.perf_counter() - t)
                res[n]["log_z"].append(v)
        for n in fns:
            res[n]["compile_s"] = max(0.0, res[n].pop("first_s") - statistics.median(res[n]["times"]))
        out["T"][str(T)] = res
    return out


# ------------------------------------------------------------------------------------------------
# driver


def train_model(path: str, epochs: int) -> float:
    import jax
    import optax

    import ebm_ppl as ep

    x = ep.data.digits(binarize=True).x_train
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 64, 20, scale=0.01)
    rbm, _ = ep.fit(rbm, x, ep.training.pcd(k=1, num_chains=100), key=jax.random.key(1),
                    optimizer=optax.sgd(0.05), epochs=epochs, batch_size=100,
                    metrics=lambda *a: {})
    ep.save(path, rbm)
    return float(ep.log_partition(rbm))


def drive(a) -> dict:
    import numpy as np

    rounds = drv.rounds_for(a)
    temps = [100, 300] if a.quick else [int(t) for t in a.temps.split(",")]
    gtemps = [100] if a.quick else [int(t) for t in a.gauss_temps.split(",")]
    seeds = 3 if a.quick else a.seeds
    load0 = drv.load()
    drv.header("ais_speed", load0)
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "digits_rbm.ebm")
    t = time.perf_counter()
    exact = train_model(path, a.epochs)
    print(f"# trained 64x20 RBM ({a.epochs} epochs PCD-1) in {time.perf_counter() - t:.1f} s; exact log Z {exact:.4f}")
    runs = {"ep": [], "numpy": [], "gauss": []}
    tl = ",".join(map(str, temps))
    for r in range(rounds):
        for p in drv.round_order(["ep", "numpy", "gauss"], r):
            if p == "gauss":
                if r >= a.gauss_rounds:
                    continue
                args = ["--only", "gauss", "--temps", ",".join(map(str, gtemps)), "--seeds", str(seeds),
                        "--smc-step", str(a.smc_step), "--offset", str(r * seeds)]
            else:
                args = (["--only", p, "--model", path, "--temps", tl, "--seeds", str(seeds), "--offset", str(r * seeds)]
                        + (["--big"] if p == "ep" and r < a.big_rounds else []))
            res = drv.run_peer(__file__, args)
            runs[p].append(res)
            print(f"  round {r + 1} {p} done", flush=True)
    S = {"date": drv.today(), "load_start": load0, "load_end": drv.load(),
         "exact_log_z": exact, "rounds": rounds, "seeds": seeds, "digits": {}, "big": None, "gauss": {}}
    for T in temps:
        row = {}
        for p in ("ep", "numpy"):
            tm = statistics.median(x for res in runs[p] for x in res["T"][str(T)]["times"])
            lz = np.array([res["T"][str(T)]["log_z"] for res in runs[p]])  # rounds x seeds (same seeds)
            row[p] = {"s": tm, "spread": float(np.std(lz[0], ddof=1)), "spread_all": float(np.std(lz.ravel(), ddof=1)),
                      "err": float(np.mean(lz) - exact), "steps_per_s": CHAINS * T / tm,
                      "compile_s": statistics.median(res["T"][str(T)]["compile_s"] for res in runs[p])}
        row["ratio"] = drv.median_ratio(
            (statistics.median(e["T"][str(T)]["times"]), statistics.median(n["T"][str(T)]["times"]))
            for e, n in zip(runs["ep"], runs["numpy"]))
        S["digits"][str(T)] = row
    # seconds to reach the target spread: smallest T whose spread (over all runs of both peers) <= target
    S["reach"] = {}
    for tgt in (a.target, a.target2):
        S["reach"][str(tgt)] = next((T for T in temps if max(S["digits"][str(T)]["ep"]["spread_all"],
                                                         S["digits"][str(T)]["numpy"]["spread_all"]) <= tgt), None)
    bigs = [res["big"] for res in runs["ep"] if "big" in res]
    if bigs:
        S["big"] = {k: statistics.median(b[k] for b in bigs) for k in ("gflops_ep_2mm", "gflops_matmul")}
        S["big"]["fraction_2mm"] = statistics.median(b["gflops_ep_2mm"] / b["gflops_matmul"] for b in bigs)
        S["big"]["ep_s"] = statistics.median(statistics.median(b["times"]["ep_ais"]) for b in bigs)
        S["big"]["compile_s"] = statistics.median(b["compile_s"]["ep_ais"] for b in bigs)
    for T in gtemps:
        row = {}
        for n in ("ep", "blackjax_smc"):
            lz = np.array([x for res in runs["gauss"] for x in res["T"][str(T)][n]["log_z"]])
            ex = runs["gauss"][0]["exact"]
            row[n] = {"s": statistics.median(x for res in runs["gauss"] for x in res["T"][str(T)][n]["times"]),
                      "err": float(np.mean(lz) - ex), "rmse": float(np.sqrt(np.mean((lz - ex) ** 2))),
                      "spread": float(np.std(lz, ddof=1)),
                      "compile_s": statistics.median(res["T"][str(T)][n]["compile_s"] for res in runs["gauss"])}
        S["gauss"][str(T)] = row
    report(S)
    return S


def report(S):
    print(f"\n# results {S['date']}, load {S['load_start']:.2f} -> {S['load_end']:.2f}; {S['rounds']} round(s) x "
          f"{S['seeds']} seeds; exact log Z {S['exact_log_z']:.4f}")
    print("## (a) 64x20 digits RBM, 100 chains")
    print(f"{'T':>6} {'ep s':>8} {'np s':>8} {'ep/np':>6} {'ep sprd':>8} {'np sprd':>8} {'ep err':>8} {'np err':>8} "
          f"{'ep steps/s':>11} {'np steps/s':>11} {'ep compile':>10}")
    for T, r in S["digits"].items():
        e, n = r["ep"], r["numpy"]
        print(f"{T:>6} {e['s']:8.3f} {n['s']:8.3f} {r['ratio']:6.2f} {e['spread_all']:8.4f} {n['spread_all']:8.4f} "
              f"{e['err']:+8.4f} {n['err']:+8.4f} {e['steps_per_s']:11.3g} {n['steps_per_s']:11.3g} {e['compile_s']:10.2f}")
    for target, T in S["reach"].items():
        if T is None:
            print(f"spread <= {target} not reached on this grid")
            continue
        r = S["digits"][str(T)]
        print(f"spread <= {target} (both peers) first at T={T}: ebm_ppl {r['ep']['s']:.3f} s, numpy {r['numpy']['s']:.3f} s, "
              f"ratio {r['ratio']:.2f} (target <= 0.5)")
    if S["big"]:
        b = S["big"]
        print(f"## (b) 784x500, 100 chains, T=200: ep.ais {b['ep_s']:.3f} s (compile {b['compile_s']:.2f} s); GFLOP/s "
              f"ep (2 matmuls/T) {b['gflops_ep_2mm']:.1f}, matmul scan {b['gflops_matmul']:.1f}; "
              f"fraction {b['fraction_2mm']:.2f} (target >= 0.5)")
    print("## (c) 10-d Gaussian, 100 particles, 2 gradients/particle/temperature for both")
    for T, r in S["gauss"].items():
        for n, v in r.items():
            print(f"T={T:>5} {n:13s} {v['s']:8.3f} s  err {v['err']:+.4f}  rmse {v['rmse']:.4f}  spread {v['spread']:.4f}  "
                  f"compile {v['compile_s']:.2f} s")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=PEERS)
    ap.add_argument("--model")
    ap.add_argument("--temps", default="30,100,300,1000,3000")
    ap.add_argument("--gauss-temps", default="100,1000")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--gauss-rounds", type=int, default=1)
    ap.add_argument("--big-rounds", type=int, default=2)
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--target", type=float, default=0.02)
    ap.add_argument("--target2", type=float, default=0.005)
    ap.add_argument("--smc-step", type=float, default=0.1)
    ap.add_argument("--offset", type=int, default=0, help="with --only: first seed")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    drv.dispatch(a, measure_one, drive)


def measure_one(a) -> dict:
    temps = [int(t) for t in a.temps.split(",")]
    if a.only == "ep":
        return measure_ep(a.model, temps, a.seeds, a.big, a.offset)
    if a.only == "numpy":
        return measure_numpy(a.model, temps, a.seeds, a.offset)
    return measure_gauss(temps, a.seeds, a.smc_step, a.offset)


if __name__ == "__main__":
    main()
