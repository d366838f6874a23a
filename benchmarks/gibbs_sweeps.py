"""Block-Gibbs sweeps per second for a Bernoulli RBM: ebm_ppl against scikit-learn and numpy.

100 chains of a 64x20 and a 784x500 RBM (``ep.BernoulliRBM.init(key, D, M, scale=0.1)``); one
sweep draws h ~ p(h | x), then x ~ p(x | h) for every chain. Peers, each in its own process (numpy's
BLAS threads keep spinning after a matmul and slow whatever follows, see shared/STACK.md):

* ``jax``            ebm_ppl: ``jax.vmap(ep.kernels.block_gibbs(rbm).step)`` inside a jitted
                     ``lax.scan`` of N sweeps (the loop ``ep.sample`` runs, compiled with the same
                     ``ep.compiler.options_for(rbm)``; every jitted peer below uses them too), default
                     PRNG (threefry2x32). In the same process, interleaved with it:
                     - the matmul reference: a jitted ``lax.scan`` of the sweep's two float32
                       matmuls (100xD @ DxM, then 100xM @ MxD) with no random numbers, and one
                       jitted 100xD @ DxM matmul called in a Python loop;
                     - ``floor_no_rng``: the sweep with the Bernoulli draws replaced by a
                       threshold at 1/2 (what the sweep costs without random numbers);
                     - variants of the Bernoulli draws that library code could adopt:
                       ``uniform1`` one ``jax.random.uniform`` of M+D numbers per chain per sweep
                       (no key split), ``bits`` one ``jax.random.bits`` of M+D uint32 per chain per
                       sweep compared against ``p * 2**32`` (both exact up to float32 rounding,
                       like ``jax.random.bernoulli``), ``half16`` two 16-bit draws per uint32
                       (APPROXIMATE: probabilities rounded to multiples of 2**-16).
* ``jax_philox2x32_64``  the ebm_ppl sweep drawing from ebm_ppl's Philox-2x32 with 64-bit keys
                     (``ep.random.philox2x32_64``; the step keys re-keyed with ``ep.random.rekey``),
                     what ``ep.sample(..., prng_impl="philox2x32_64")`` runs on one device (and what
                     ``ep.ais`` and ``ep.fit`` use by default); a primary peer, compared with
                     scikit-learn in every round.
* ``jax_philox4x32``, ``jax_philox2x32``, ``jax_rbg``, ``jax_unsafe_rbg``  the ebm_ppl sweep with
                     ``jax_default_prng_impl`` set to one of JAX's generators (Philox-4x32 was
                     ebm_ppl's default before its own; Philox-2x32 has 32-bit keys, see ``ep.random``).
* ``jax_2dev``       the ebm_ppl sweep and the ``uniform1`` variant with the 100 chains sharded over
                     2 host CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``,
                     ``jax.shard_map``), as ``ep.sample`` shards them when there are devices.
* ``ep_sample``      ``ep.sample(key, rbm, num_chains=100, num_warmup=0, num_samples=N)``: the whole
                     call, the part JAX logs as tracing/lowering/compiling (the first call; later
                     calls reuse the program), and the rate of the rest (the run, which also
                     stores every draw, takes each draw's energy from the next sweep's hidden
                     logits, and converts to ArviZ), with its default generator (ebm_ppl's
                     Philox-2x32; ``ep_sample_threefry``: the same with
                     ``prng_impl="threefry2x32"``, the default before December 2026).
* ``sklearn``        ``sklearn.neural_network.BernoulliRBM`` with the same weights copied in
                     (components_ = W.T, intercept_visible_ = b, intercept_hidden_ = c),
                     ``.gibbs(v)`` in a Python loop.
* ``numpy``          the same algorithm as a float32 numpy loop with ``np.random.default_rng``.
  Both numpy peers are timed with OpenBLAS at its default thread count and limited to one
  thread (threadpoolctl), alternating; the faster of the two in each round is the comparison.

The driver alternates the order of the peers over several rounds (reversed every other round;
the secondary peers run in the first round(s) only, see SECONDARY), and reports medians of
per-round rates and medians of per-round ratios. Never used as a timed test.

    python benchmarks/gibbs_sweeps.py            # full run, about 3 minutes on 2 cores
    python benchmarks/gibbs_sweeps.py --quick    # smoke run (no variants/secondary peers), 20-45 s
    python benchmarks/gibbs_sweeps.py --only sklearn --size 64x20   # one measurement, JSON out
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # benchmarks/ is not a package: import from this folder

SIZES = {"64x20": (64, 20), "784x500": (784, 500)}
CHAINS = 100
PEERS = ("jax", "jax_philox2x32_64", "jax_philox4x32", "jax_philox2x32", "jax_rbg", "jax_unsafe_rbg", "jax_2dev",
         "ep_sample", "ep_sample_threefry", "sklearn", "numpy")
# sweeps per timed call, aiming at roughly 0.1-0.2 s per call on this machine
SWEEPS = {
    "jax": {"64x20": 4000, "784x500": 200},
    "jax_philox2x32_64": {"64x20": 4000, "784x500": 200},
    "jax_philox4x32": {"64x20": 4000, "784x500": 200},
    "jax_philox2x32": {"64x20": 4000, "784x500": 200},
    "jax_rbg": {"64x20": 800, "784x500": 60},
    "jax_unsafe_rbg": {"64x20": 800, "784x500": 60},
    "jax_2dev": {"64x20": 4000, "784x500": 200},
    "ep_sample": {"64x20": 3000, "784x500": 100},
    "ep_sample_threefry": {"64x20": 3000, "784x500": 100},
    "sklearn": {"64x20": 1500, "784x500": 40},
    "numpy": {"64x20": 1500, "784x500": 40},
}
# secondary peers run in the first round(s) only: PRNG implementations (4x+ apart), the ep.sample
# call (compiled once per shapes and settings since ep.sample caches its programs) and the 2-device sharded sweep
SECONDARY = {"jax_philox4x32": 1, "jax_philox2x32": 1, "jax_rbg": 1, "jax_unsafe_rbg": 1, "ep_sample": 1,
             "ep_sample_threefry": 1, "jax_2dev": 2}
JAX_VARIANTS = ("library", "uniform1", "bits", "half16", "floor_no_rng", "matmul_pair_scan", "matmul_single")


def flops_per_sweep(D: int, M: int) -> int:
    """Two matmuls of 100xDxM per sweep: 2 * (2 * 100 * D * M)."""
    return 4 * CHAINS * D * M


# ------------------------------------------------------------------------------------------------
# shared inputs


def rbm_weights(D: int, M: int):
    """The RBM every peer samples: ``ep.BernoulliRBM.init(key(0), D, M, scale=0.1)``, as numpy."""
    import jax
    import numpy as np

    import ebm_ppl as ep

    rbm = ep.BernoulliRBM.init(jax.random.key(0), D, M, scale=0.1)
    return rbm, np.asarray(rbm.W, np.float32), np.asarray(rbm.b, np.float32), np.asarray(rbm.c, np.float32)


def initial_visible(D: int):
    import numpy as np

    return (np.random.default_rng(1).random((CHAINS, D)) < 0.5).astype(np.float32)


def _median_rate(times, sweeps):
    return sweeps / statistics.median(times)


# ------------------------------------------------------------------------------------------------
# measurements (each runs in its own process under --only)


def measure_jax(size: str, sweeps: int, reps: int, prng: str | None, variants, matmul: bool = True) -> dict:
    """ebm_ppl's sweep; ``variants``: True (all), False, or a tuple of variant names."""
    import jax
    import jax.numpy as jnp

    import ebm_ppl as ep

    own = prng == ep.random.PHILOX2X32_64  # ebm_ppl's generator: keys re-keyed, JAX's default untouched
    if prng is not None and not own:
        jax.config.update("jax_default_prng_impl", prng)

    D, M = SIZES[size]
    rbm, *_ = rbm_weights(D, M)
    W, b, c = rbm.W, rbm.b, rbm.c
    algo = ep.kernels.block_gibbs(rbm)
    x0 = jnp.asarray(initial_visible(D))
    states0 = jax.vmap(algo.init)(x0, jax.random.split(jax.random.key(7), CHAINS))

    ndev = jax.device_count()
    if ndev > 1:  # chains sharded over host CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count)
        from jax.sharding import AxisType, NamedSharding, PartitionSpec

        mesh = jax.make_mesh((ndev,), ("chains",), axis_types=(AxisType.Auto,))

        def put(a):
            return jax.device_put(a, NamedSharding(mesh, PartitionSpec("chains")))
    else:
        def put(a):
            return a

    def scan_sweeps(step, carry0):
        """jit(scan of `sweeps` steps ``carry = step(per-chain keys, carry)``); each chain's keys
        are ``split(chain_key, sweeps)``. With several devices the chains are sharded (shard_map)."""

        def body(chain_keys, carry):
            keys = jnp.swapaxes(jax.vmap(lambda k: jax.random.split(k, sweeps))(chain_keys), 0, 1)
            carry, _ = jax.lax.scan(lambda s, k: (step(k, s), None), carry, keys)
            return carry

        if ndev > 1:
            spec = PartitionSpec("chains")
            body = jax.shard_map(body, mesh=mesh, in_specs=(spec, spec), out_specs=spec)
        run = jax.jit(body, compiler_options=ep.compiler.options_for(rbm) or None)  # as ep.sample's run
        carry0 = jax.tree.map(put, carry0)
        return lambda key: run(put(jax.random.split(ep.random.rekey(key, prng if own else None), CHAINS)), carry0)

    fns = {}
    # (a) the library kernel exactly as ep.sample uses it
    fns["library"] = scan_sweeps(lambda k, s: jax.vmap(algo.step)(k, s)[0], states0)

    if variants:
        h0 = jnp.zeros((CHAINS, M), jnp.float32)
        u32 = 4294967296.0

        def uniform1(k, xh):
            def one(k, x):
                u = jax.random.uniform(k, (M + D,), x.dtype)
                h = (u[:M] < jax.nn.sigmoid(c + x @ W)).astype(x.dtype)
                return (u[M:] < jax.nn.sigmoid(b + h @ W.T)).astype(x.dtype), h

            return jax.vmap(one)(k, xh[0])

        def threshold(p):  # P(bits < threshold) = p up to 2**-32 (+ float32 rounding of p)
            return jnp.minimum(p * u32, 4294967040.0).astype(jnp.uint32)

        def bits(k, xh):
            def one(k, x):
                r = jax.random.bits(k, (M + D,), jnp.uint32)
                h = (r[:M] < threshold(jax.nn.sigmoid(c + x @ W))).astype(x.dtype)
                return (r[M:] < threshold(jax.nn.sigmoid(b + h @ W.T))).astype(x.dtype), h

            return jax.vmap(one)(k, xh[0])

        def half16(k, xh):  # APPROXIMATE: 16-bit resolution of p
            n = (M + D + 1) // 2

            def one(k, x):
                r = jax.random.bits(k, (n,), jnp.uint32)
                r = jnp.concatenate([r & 0xFFFF, r >> 16])
                h = (r[:M] < (jax.nn.sigmoid(c + x @ W) * 65536.0).astype(jnp.uint32)).astype(x.dtype)
                t = (jax.nn.sigmoid(b + h @ W.T) * 65536.0).astype(jnp.uint32)
                return (r[M:M + D] < t).astype(x.dtype), h

            return jax.vmap(one)(k, xh[0])

        def floor_no_rng(k, xh):
            x = xh[0]
            h = (jax.nn.sigmoid(c + x @ W) > 0.5).astype(x.dtype)
            return (jax.nn.sigmoid(b + h @ W.T) > 0.5).astype(x.dtype), h

        all_variants = {"uniform1": uniform1, "bits": bits, "half16": half16, "floor_no_rng": floor_no_rng}
        chosen = tuple(all_variants) if variants is True else tuple(variants)
        for name in chosen:
            fns[name] = scan_sweeps(all_variants[name], (x0, h0))

    if matmul:
        # the matmul reference: the sweep's two matmuls, rescaled so values stay O(1)
        xr = jax.random.normal(jax.random.key(3), (CHAINS, D), jnp.float32)

        pair_scan = drv.matmul_pair_scan(W, sweeps)

        fns["matmul_pair_scan"] = lambda key: pair_scan(xr)
        mm = jax.jit(lambda x: x @ W, compiler_options=ep.compiler.options_for(W) or None)

        def single(key):  # 2 * sweeps separate jitted calls (async dispatch pipelines them)
            for _ in range(2 * sweeps):
                y = mm(xr)
            return y

        fns["matmul_single"] = single

    out = {"size": size, "sweeps": sweeps, "prng": prng if own else jax.config.jax_default_prng_impl, "devices": ndev,
           "threads": f"XLA CPU intra-op pool over {drv.cores()} cores"
                      + (f", chains sharded over {ndev} host devices" if ndev > 1 else ""),
           "compile_s": {}, "rate": {}, "times": {}}
    for i, (name, f) in enumerate(fns.items()):
        t = time.perf_counter()
        r = jax.block_until_ready(f(jax.random.key(100 + i)))
        out["compile_s"][name] = time.perf_counter() - t  # first call: trace + compile + one run
        out["times"][name] = []
        if name not in ("matmul_pair_scan", "matmul_single"):
            x_final = r.position if hasattr(r, "position") else r[0]
            out.setdefault("mean_x", {})[name] = float(jnp.mean(x_final))
    for rep in range(reps):  # interleave the variants
        order = list(fns) if rep % 2 == 0 else list(fns)[::-1]
        for name in order:
            t = time.perf_counter()
            jax.block_until_ready(fns[name](jax.random.key(1000 * rep + len(name))))
            out["times"][name].append(time.perf_counter() - t)
    for name, ts in out["times"].items():
        out["rate"][name] = _median_rate(ts, sweeps)  # sweeps/s (matmul: pairs of matmuls/s)
        out["compile_s"][name] = max(0.0, out["compile_s"][name] - statistics.median(ts))
    return out


def measure_ep_sample(size: str, sweeps: int, reps: int, prng_impl: str | None = None) -> dict:
    """``prng_impl`` None: the library's default generator (ebm_ppl's Philox)."""
    """``ep.sample`` whole calls; the time JAX logs for tracing, lowering and compiling each call
    (``jax_log_compiles``) is subtracted to give the run rate."""
    import warnings

    import jax

    import ebm_ppl as ep

    warnings.filterwarnings("ignore", message="Found chain dimension")
    compile_times = drv.jax_compile_log()
    D, M = SIZES[size]
    rbm, *_ = rbm_weights(D, M)
    init = initial_visible(D)
    calls = []
    for rep in range(max(2, reps)):
        compile_times.clear()
        t = time.perf_counter()
        dt = ep.sample(jax.random.key(rep), rbm, "block_gibbs", num_chains=CHAINS, num_warmup=0,
                       num_samples=sweeps, init=init, **({} if prng_impl is None else {"prng_impl": prng_impl}))
        calls.append((time.perf_counter() - t, sum(compile_times)))
    warm = calls[1:]
    run_s = statistics.median(total - comp for total, comp in warm)
    return {"size": size, "sweeps": sweeps, "first_call_s": calls[0][0],
            "call_s": statistics.median(total for total, _ in warm),
            "compile_s_per_call": statistics.median(comp for _, comp in warm),
            "rate": {"run": sweeps / run_s, "whole_call": sweeps / statistics.median(t for t, _ in warm)},
            "mean_x": float(dt.posterior["x"].values[:, -1].mean()),
            "threads": f"XLA CPU intra-op pool over {drv.cores()} cores"}


_blas_threads = drv.blas_threads


def _time_loop(step, state, sweeps: int, reps: int, key: str) -> tuple[dict, object]:
    """Time ``sweeps`` calls of ``state = step(state)``, alternating numpy's BLAS at its default
    thread count (``key``) and limited to one thread (``key + "_1thread"``); median rates."""
    from threadpoolctl import threadpool_limits

    state = step(state)  # warm
    time.sleep(0.2)
    times = {key: [], key + "_1thread": []}
    for rep in range(reps):
        for name in (times if rep % 2 == 0 else list(times)[::-1]):
            with threadpool_limits(limits=1 if name.endswith("_1thread") else None, user_api="blas"):
                t = time.perf_counter()
                for _ in range(sweeps):
                    state = step(state)
                times[name].append(time.perf_counter() - t)
            time.sleep(0.05)  # let spinning BLAS threads go idle
    return {"rate": {k: _median_rate(v, sweeps) for k, v in times.items()}, "times": times}, state


def measure_sklearn(size: str, sweeps: int, reps: int) -> dict:
    import numpy as np
    from sklearn.neural_network import BernoulliRBM

    D, M = SIZES[size]
    _, W, b, c = rbm_weights(D, M)
    model = BernoulliRBM(n_components=M, random_state=0)
    model.components_ = W.T.copy()
    model.intercept_visible_ = b.copy()
    model.intercept_hidden_ = c.copy()
    model.random_state_ = np.random.RandomState(0)
    res, v = _time_loop(model.gibbs, initial_visible(D), sweeps, reps, "gibbs")
    return {"size": size, "sweeps": sweeps, **res, "mean_x": float(np.mean(v)),
            "threads": _blas_threads() + ", and limited to 1 thread"}


def measure_numpy(size: str, sweeps: int, reps: int) -> dict:
    import numpy as np

    D, M = SIZES[size]
    _, W, b, c = rbm_weights(D, M)
    WT = np.ascontiguousarray(W.T)
    rng = np.random.default_rng(0)
    one = np.float32(1.0)

    def sweep(x):
        p = one / (one + np.exp(-(x @ W + c)))
        h = (rng.random((CHAINS, M), dtype=np.float32) < p).astype(np.float32)
        p = one / (one + np.exp(-(h @ WT + b)))
        return (rng.random((CHAINS, D), dtype=np.float32) < p).astype(np.float32)

    res, x = _time_loop(sweep, initial_visible(D), sweeps, reps, "loop")
    return {"size": size, "sweeps": sweeps, **res, "mean_x": float(np.mean(x)),
            "threads": _blas_threads() + ", and limited to 1 thread"}


def run_only(name: str, size: str, sweeps: int, reps: int, lite: bool = False) -> dict:
    if name == "jax":
        return measure_jax(size, sweeps, reps, None, variants=not lite)
    if name == "jax_philox2x32_64":
        return measure_jax(size, sweeps, reps, "philox2x32_64", variants=False, matmul=True)
    if name in ("jax_philox4x32", "jax_philox2x32", "jax_rbg", "jax_unsafe_rbg"):
        return measure_jax(size, sweeps, reps, name.removeprefix("jax_"), variants=False, matmul=False)
    if name == "jax_2dev":
        return measure_jax(size, sweeps, reps, None, variants=("uniform1",), matmul=False)
    if name == "ep_sample":
        return measure_ep_sample(size, sweeps, reps, None)
    if name == "ep_sample_threefry":
        return measure_ep_sample(size, sweeps, reps, "threefry2x32")
    if name == "sklearn":
        return measure_sklearn(size, sweeps, reps)
    if name == "numpy":
        return measure_numpy(size, sweeps, reps)
    raise SystemExit(f"unknown measurement {name!r}; choose from {', '.join(PEERS)}")


# ------------------------------------------------------------------------------------------------
# driver


def _subprocess(name: str, size: str, sweeps: int, reps: int, lite: bool) -> dict:
    env = {}
    if name == "jax_2dev":
        env["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    return drv.run_peer(__file__, ["--only", name, "--size", size, "--sweeps", str(sweeps), "--reps", str(reps)]
                        + (["--lite"] if lite else []), env)


_med = drv.med


def drive(args) -> dict:
    rounds = drv.rounds_for(args)
    reps = 2 if args.quick else args.reps
    scale = 0.25 if args.quick else 1.0
    sizes = list(SIZES) if args.size is None else [args.size]
    start = time.perf_counter()
    load_start = drv.load()
    plat, py = drv.machine()
    print(f"# gibbs_sweeps: {CHAINS} chains, {rounds} round(s) of {len(PEERS)} peers x {len(sizes)} sizes, "
          f"each in its own process, order reversed every other round")
    print(f"# {drv.now()}  {plat}  "
          f"python {py}  cores {drv.cores()}  "
          f"load {load_start:.2f}  OPENBLAS_CORETYPE={drv.openblas_coretype()} "
          "(numpy/scikit-learn figures are as this environment gives them)")
    drv.warn_if_busy(load_start, f"# WARNING: the machine is busy (load {load_start:.2f}); expect noisy numbers, "
                     "and OpenBLAS with 2 threads collapses when a core is taken (see the 1-thread rows)")
    peers = [p for p in PEERS if not (args.quick and p in SECONDARY)]
    runs = {size: {p: [] for p in PEERS} for size in sizes}
    for r in range(rounds):
        for size, peer in drv.round_order([(s, p) for s in sizes for p in peers if r < SECONDARY.get(p, rounds)], r):
            n = max(4, int(SWEEPS[peer][size] * scale))
            res = _subprocess(peer, size, n, reps, lite=args.quick)
            runs[size][peer].append(res)
            print(f"  round {r + 1} {size:8s} {peer:15s} " + "  ".join(f"{k}={v:.4g}" for k, v in res["rate"].items()),
                  flush=True)
    summary = {"date": drv.today(), "cores": drv.cores(),
               "openblas_coretype": drv.openblas_coretype(None), "rounds": rounds, "sizes": {}}
    for size in sizes:
        summary["sizes"][size] = summarize(size, runs[size])
    summary["load_end"] = drv.load()
    summary["load_start"] = load_start
    summary["wall_s"] = time.perf_counter() - start
    report(summary)
    return summary


def summarize(size: str, R: dict) -> dict:
    """Medians of per-round rates, and medians of per-round ratios (same round = closest in time)."""
    D, M = SIZES[size]

    def get(res, key, field="rate"):
        return res.get(field, {}).get(key)

    def rates(peer, key, field="rate"):
        return _med([get(x, key, field) for x in R[peer]])

    def ratio(peer_a, key_a, peer_b, key_b):
        pairs = zip(R[peer_a], R[peer_b])
        return _med([get(a, key_a) / get(b, key_b) for a, b in pairs
                     if get(a, key_a) is not None and get(b, key_b) is not None])

    for peer, key in (("sklearn", "gibbs"), ("numpy", "loop")):
        for x in R[peer]:  # the peer's faster thread setting in that round
            x["rate"]["best"] = max(x["rate"][key], x["rate"][key + "_1thread"])
    fl = flops_per_sweep(D, M)
    row = {
        "ebm_ppl": rates("jax", "library"),
        "ebm_ppl_compile_s": rates("jax", "library", "compile_s"),
        "sklearn": rates("sklearn", "gibbs"),
        "sklearn_1thread": rates("sklearn", "gibbs_1thread"),
        "sklearn_best": rates("sklearn", "best"),
        "numpy": rates("numpy", "loop"),
        "numpy_1thread": rates("numpy", "loop_1thread"),
        "numpy_best": rates("numpy", "best"),
        "x_sklearn": ratio("jax", "library", "sklearn", "best"),
        "x_numpy": ratio("jax", "library", "numpy", "best"),
        "philox": rates("jax_philox2x32_64", "library"),
        "philox_vs_threefry": ratio("jax_philox2x32_64", "library", "jax", "library"),
        "x_sklearn_philox": ratio("jax_philox2x32_64", "library", "sklearn", "best"),
        "x_numpy_philox": ratio("jax_philox2x32_64", "library", "numpy", "best"),
        "matmul_fraction_philox": ratio("jax_philox2x32_64", "library", "jax_philox2x32_64", "matmul_pair_scan"),
        "philox4x32": rates("jax_philox4x32", "library"),
        "philox4x32_vs_threefry": ratio("jax_philox4x32", "library", "jax", "library"),
        "philox_vs_philox4x32": ratio("jax_philox2x32_64", "library", "jax_philox4x32", "library"),
        "philox2x32": rates("jax_philox2x32", "library"),
        "philox2x32_vs_threefry": ratio("jax_philox2x32", "library", "jax", "library"),
        "rbg": rates("jax_rbg", "library"),
        "unsafe_rbg": rates("jax_unsafe_rbg", "library"),
        "rbg_vs_threefry": ratio("jax_rbg", "library", "jax", "library"),
        "two_dev": rates("jax_2dev", "library"),
        "two_dev_vs_one": ratio("jax_2dev", "library", "jax", "library"),
        "two_dev_uniform1": rates("jax_2dev", "uniform1"),
        "two_dev_uniform1_vs_one": ratio("jax_2dev", "uniform1", "jax", "library"),
        "unsafe_rbg_vs_threefry": ratio("jax_unsafe_rbg", "library", "jax", "library"),
        "ep_sample_run": rates("ep_sample", "run"),
        "ep_sample_whole_call": rates("ep_sample", "whole_call"),
        "ep_sample_run_vs_kernel": ratio("ep_sample", "run", "jax_philox2x32_64", "library"),
        "ep_sample_sweeps": R["ep_sample"][0]["sweeps"] if R["ep_sample"] else None,
        "ep_sample_threefry_run": rates("ep_sample_threefry", "run"),
        "ep_sample_threefry_run_vs_kernel": ratio("ep_sample_threefry", "run", "jax", "library"),
        "ep_sample_call_s": _med([x["call_s"] for x in R["ep_sample"]]),
        "ep_sample_compile_s": _med([x["compile_s_per_call"] for x in R["ep_sample"]]),
        "ep_sample_first_call_s": _med([x["first_call_s"] for x in R["ep_sample"]]),
        "gflops_matmul_scan": rates("jax", "matmul_pair_scan") * fl / 1e9,
        "gflops_matmul_single": rates("jax", "matmul_single") * fl / 1e9,
        "matmul_fraction": ratio("jax", "library", "jax", "matmul_pair_scan"),
        "matmul_fraction_single": ratio("jax", "library", "jax", "matmul_single"),
    }
    row["gflops_ebm_ppl"] = row["ebm_ppl"] * fl / 1e9
    for v in ("uniform1", "bits", "half16", "floor_no_rng"):
        row[v] = rates("jax", v)
        row[f"{v}_vs_library"] = ratio("jax", v, "jax", "library")
    mean_x = {}
    for x in R["jax"]:
        for k, v in x.get("mean_x", {}).items():
            mean_x.setdefault(k, []).append(v)
    for p in ("sklearn", "numpy", "ep_sample"):
        if R[p]:
            mean_x[p] = [x["mean_x"] for x in R[p]]
    row["mean_x"] = {k: _med(v) for k, v in mean_x.items()}
    row["threads"] = {p: R[p][0]["threads"] for p in ("jax", "sklearn", "numpy") if R[p]}
    return row


def report(s: dict) -> None:
    def line(label, rate, ratio, note=""):
        if not math.isnan(rate):  # measured
            print(f"{label:44s} {rate:10.4g} {ratio:8.2f}   {note}".rstrip())

    print()
    print(f"# results ({s['date']}, {s['cores']} cores, OPENBLAS_CORETYPE={s['openblas_coretype']}, load average "
          f"{s['load_start']:.2f} -> {s['load_end']:.2f}; medians over {s['rounds']} round(s); ratios are "
          "per-round then median; ratio column: against ebm_ppl's library sweep)")
    for size, r in s["sizes"].items():
        print(f"\n## {size} RBM, {CHAINS} chains")
        print("threads: " + "; ".join(f"{p}: {t}" for p, t in r["threads"].items()))
        print(f"{'peer':44s} {'sweeps/s':>10s} {'ratio':>8s}")
        line("ebm_ppl block_gibbs (threefry), warm", r["ebm_ppl"], 1.0, f"(compile {r['ebm_ppl_compile_s']:.2f} s)")
        e = r["ebm_ppl"]
        line("scikit-learn BernoulliRBM.gibbs, BLAS default", r["sklearn"], r["sklearn"] / e)
        line("scikit-learn BernoulliRBM.gibbs, BLAS 1 thread", r["sklearn_1thread"], r["sklearn_1thread"] / e)
        line("  scikit-learn, faster setting per round", r["sklearn_best"], 1 / r["x_sklearn"],
             f"-> ebm_ppl is {r['x_sklearn']:.2f}x scikit-learn (target >= 3)")
        line("numpy float32 loop, BLAS default", r["numpy"], r["numpy"] / e)
        line("numpy float32 loop, BLAS 1 thread", r["numpy_1thread"], r["numpy_1thread"] / e)
        line("  numpy, faster setting per round", r["numpy_best"], 1 / r["x_numpy"],
             f"-> ebm_ppl is {r['x_numpy']:.2f}x numpy")
        line("ebm_ppl block_gibbs, ebm_ppl's Philox-2x32", r["philox"], r["philox_vs_threefry"],
             f"-> {r['x_sklearn_philox']:.2f}x scikit-learn (target >= 3), {r['x_numpy_philox']:.2f}x numpy, "
             f"{r['matmul_fraction_philox']:.2f} of the matmul scan")
        line("ebm_ppl, JAX's Philox-4x32 keys", r["philox4x32"], r["philox4x32_vs_threefry"],
             f"(ebm_ppl's Philox-2x32 is {r['philox_vs_philox4x32']:.2f}x this)")
        line("ebm_ppl, JAX's Philox-2x32 (32-bit keys)", r["philox2x32"], r["philox2x32_vs_threefry"])
        line("ebm_ppl, jax_default_prng_impl=rbg", r["rbg"], r["rbg_vs_threefry"])
        line("ebm_ppl, jax_default_prng_impl=unsafe_rbg", r["unsafe_rbg"], r["unsafe_rbg_vs_threefry"])
        line("ebm_ppl, chains sharded over 2 CPU devices", r["two_dev"], r["two_dev_vs_one"])
        line("variant uniform1 (1 uniform call/sweep)", r["uniform1"], r["uniform1_vs_library"])
        line("variant uniform1, sharded over 2 CPU devices", r["two_dev_uniform1"], r["two_dev_uniform1_vs_one"])
        line("variant bits (uint32 vs p*2^32)", r["bits"], r["bits_vs_library"])
        line("variant half16 (APPROXIMATE, 2^-16)", r["half16"], r["half16_vs_library"])
        line("floor: no random numbers", r["floor_no_rng"], r["floor_no_rng_vs_library"])
        if r["ep_sample_sweeps"]:
            line("ep.sample (default: ebm_ppl's Philox), run part (draws and energies stored)", r["ep_sample_run"],
                 r["ep_sample_run_vs_kernel"],
                 f"(a {r['ep_sample_sweeps']}-draw call takes {r['ep_sample_call_s']:.2f} s, of which "
                 f"{r['ep_sample_compile_s']:.2f} s compiling (first call in the process; later calls reuse it); first call "
                 f"{r['ep_sample_first_call_s']:.2f} s)")
        line("ep.sample, prng_impl='threefry2x32', run", r["ep_sample_threefry_run"],
             r["ep_sample_threefry_run"] / e, f"({r['ep_sample_threefry_run_vs_kernel']:.2f} of the threefry kernel loop)")
        print(f"GFLOP/s: ebm_ppl sweep {r['gflops_ebm_ppl']:.1f}; jitted matmul pair in lax.scan "
              f"{r['gflops_matmul_scan']:.1f}; single jitted matmul called in a loop {r['gflops_matmul_single']:.1f}; "
              f"ebm_ppl reaches {r['matmul_fraction']:.2f} of the scan (target >= 0.5 at 784x500) and "
              f"{r['matmul_fraction_single']:.2f} of the single call")
        print("mean of x after the run (sanity: same distribution): "
              + ", ".join(f"{k} {v:.3f}" for k, v in r["mean_x"].items()))
    print(f"\n# wall time {s['wall_s']:.0f} s")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one short round (~20 s smoke run)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of all peers (default 3)")
    ap.add_argument("--reps", type=int, default=3, help="timed calls per process (default 3)")
    ap.add_argument("--size", choices=list(SIZES), help="only this size (default: both)")
    ap.add_argument("--only", choices=PEERS, help="run one measurement in this process, print JSON")
    ap.add_argument("--sweeps", type=int, help="with --only: sweeps per timed call")
    ap.add_argument("--lite", action="store_true", help="with --only jax: skip the draw variants")
    ap.add_argument("--json", help="also write the summary to this file")
    args = ap.parse_args(argv)
    drv.dispatch(args, measure_one, drive)


def measure_one(args) -> dict:
    size = args.size or "64x20"
    return run_only(args.only, size, args.sweeps or SWEEPS[args.only][size], args.reps, args.lite)


if __name__ == "__main__":
    main()
