"""Strong scaling of ebm_ppl's automatic sharding over 1, 2 and 4 forced host CPU devices.

``ep.sample``, ``ep.ais`` and ``ep.fit`` shard their chains (``fit``: minibatch rows and the
estimator's chains) over every device (``jax.devices()``) when the device count divides
``num_chains`` (``batch_size``). This script keeps the total work fixed and runs it with 1, 2 and
4 devices, each device count in its own process started with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` and ``JAX_PLATFORMS=cpu``:

* ``sample``  ``ep.sample(key, rbm, "block_gibbs", num_chains=100, num_warmup=0, num_samples=S)``
              on ``ep.BernoulliRBM.init(key(0), 784, 500, scale=0.1)`` (S = 200);
* ``ais``     ``ep.ais(key, rbm, num_chains=100, num_temperatures=1000)`` on the same RBM;
* ``pcd``     a PCD-1 epoch: ``ep.fit(ep.BernoulliRBM.init(key(0), 64, H, scale=0.01), x_train,
              ep.training.pcd(k=1, num_chains=100), optimizer=optax.sgd(0.05), epochs=E,
              batch_size=100, metrics=False, shuffle=False)`` on the binarized digits (H = 20,
              ``rbm_training.py``'s setting; ``--fit-hidden``); epoch = (call of 2E - call of E) / E.

100 chains (and rows) divide over 1, 2 and 4 devices. For each workload: the first call in the
process (compile included) and the warm call (median of 3 after it); the speedup is the median
over rounds of (1-device warm time / N-device warm time). Each process also reports whether the
library sharded the work, and the AIS log Z and the trained weights' sum for the same key, which
must not depend on the device count (the library draws the same numbers however it shards).

HONEST READING: this machine has 2 physical cores. Forced host devices split the same cores, and
on 1 device XLA's intra-op thread pool already uses both, so expect no gain, or a loss: these
numbers show the overhead of partitioning a program, not the scaling a multi-GPU host would see.

Memory: the AIS annealing loop carries per chain (float32, its layout transposed when there are
more chains than hidden units) the state x (D), the log-weight, and for each block of ``CHUNK``
= 16 temperatures the block's uniform random numbers (CHUNK x (M + D), drawn in one call) and its
log-weight history (CHUNK); one step's working arrays add about D + 3M (read off the compiled
program's buffers; XLA's buffer reuse makes this term shape-dependent, exact at 784x500 and
196x100). Replicated on every device: W and the base model's (zero) W as arguments, W^T copied
once, b and c of both, the schedule. The script checks this formula against
``jax.jit(...).lower(...).compile().memory_analysis()`` of the library's own AIS program
(``ebm_ppl.partition.ais._forward``, private: the check says so if it moves) at 2048 chains on
each device count, then prints the prediction for 1e5 chains on 1, 2, 4 and 8 devices.

    python benchmarks/scaling.py                # 2 rounds x {1, 2, 4} devices, a few minutes
    python benchmarks/scaling.py --quick        # smoke run: tiny workloads, under a minute
    python benchmarks/scaling.py --only devices --devices 2   # one process, JSON line
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # benchmarks/ is not a package: import from this folder

DEVICES = (1, 2, 4)
CHAINS = 100
D, M = 784, 500
CHUNK = 16  # ebm_ppl.partition.ais.CHUNK (checked against the library in the process)
MEM_CHAINS, MEM_TEMPS, BIG_CHAINS = 2048, 1000, 100_000
FULL = {"samples": 200, "temperatures": 1000, "epochs": 20, "reps": 3}
QUICK = {"samples": 10, "temperatures": 50, "epochs": 5, "reps": 1}
WORKLOADS = ("sample", "ais", "pcd")


def force_devices(n: int) -> dict:
    """The environment that makes JAX start with ``n`` host CPU devices."""
    flags = os.environ.get("XLA_FLAGS", "")
    return {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={n}".strip(), "JAX_PLATFORMS": "cpu"}


def predicted_ais_bytes(chains: int, devices: int, d: int = D, m: int = M, temps: int = MEM_TEMPS) -> dict:
    """Bytes per device of the AIS program (the formula in the module docstring), float32."""
    per_chain = 4 * (CHUNK * (m + d) + d + 1 + CHUNK + d + 3 * m)
    bucket = 1 << (temps - 1).bit_length()
    replicated = 4 * (3 * d * m + 2 * (d + m) + (bucket + 1) + 2 * bucket) + 12  # + key and step count
    n = chains // devices
    return {"per_chain": per_chain, "replicated": replicated, "chains_per_device": n,
            "total": n * (per_chain + 4) + replicated}  # + 4: each chain's log-weight returned


# ------------------------------------------------------------------------------------------------
# one device count, in its own process


def measure_memory(key) -> dict:
    """memory_analysis() of the library's AIS program at MEM_CHAINS chains, per device."""
    import importlib

    import jax
    import jax.numpy as jnp

    import ebm_ppl as ep

    try:
        A = importlib.import_module("ebm_ppl.partition.ais")  # ep.partition.ais is the function
        from ebm_ppl.partition.choice import make_path
        from ebm_ppl.partition.schedule import default_schedule, padded_schedule
        from ebm_ppl.sharding import axis_sharding, sharded_key

        rbm = ep.BernoulliRBM.init(jax.random.key(0), D, M, scale=0.1)
        path = make_path(rbm, base=None, data=None, kernel=None)
        padded, steps = padded_schedule(default_schedule(MEM_TEMPS))
        sh = axis_sharding(MEM_CHAINS, key)
        forward = A._forward.compiled_with(ep.compiler.options_for(rbm))
        lowered = forward.lower(path, sharded_key(key, sh), MEM_CHAINS, jnp.float32,
                                jnp.asarray(padded, jnp.float32), jnp.asarray(steps, jnp.int32), False, sh)
        ma = lowered.compile().compiled.memory_analysis()
        parts = {k: int(getattr(ma, f"{k}_size_in_bytes")) for k in ("argument", "output", "temp", "alias")}
        return {**parts, "total": parts["argument"] + parts["output"] + parts["temp"] - parts["alias"],
                "library_chunk": A.CHUNK}
    except Exception as e:  # private API moved, or no memory_analysis on this backend
        return {"error": f"{type(e).__name__}: {e}"[:300]}


def measure_devices(a) -> dict:
    os.environ.update(force_devices(a.devices))  # before JAX starts (the driver sets them too)
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    import ebm_ppl as ep
    from ebm_ppl.random import DEFAULT_IMPL, rekey
    from ebm_ppl.sharding import axis_sharding

    if jax.device_count() != a.devices:
        raise RuntimeError(f"asked for {a.devices} devices, JAX started with {jax.device_count()}")
    cfg = QUICK if a.quick else FULL
    reps = cfg["reps"]

    def timed(f):
        t = time.perf_counter()
        v = jax.block_until_ready(f())
        return time.perf_counter() - t, v

    out = {"devices": jax.device_count(), "sharded": {}, "first_s": {}, "warm_s": {}}
    rbm = ep.BernoulliRBM.init(jax.random.key(0), D, M, scale=0.1)
    x0 = jax.random.bernoulli(jax.random.key(1), 0.5, (CHAINS, D)).astype(jnp.float32)
    S, T = cfg["samples"], cfg["temperatures"]

    def sample(r):
        return ep.sample(jax.random.key(r), rbm, "block_gibbs", num_chains=CHAINS, num_warmup=0, num_samples=S,
                         init=x0).posterior["x"].values

    def ais(r):
        return ep.ais(jax.random.key(r), rbm, num_chains=CHAINS, num_temperatures=T)

    x = ep.data.digits(binarize=True).x_train
    opt = optax.sgd(0.05)

    def fit(E):
        model = ep.BernoulliRBM.init(jax.random.key(0), 64, a.fit_hidden, scale=0.01)
        model, _ = ep.fit(model, x, ep.training.pcd(k=1, num_chains=CHAINS), key=jax.random.key(1), optimizer=opt,
                          epochs=E, batch_size=100, metrics=False, shuffle=False)
        return eqx.filter(model, eqx.is_array)

    out["sharded"] = {"sample": axis_sharding(CHAINS) is not None,
                      "ais": axis_sharding(CHAINS, rekey(jax.random.key(0), DEFAULT_IMPL)) is not None,
                      "pcd": axis_sharding(100, rekey(jax.random.key(0), DEFAULT_IMPL)) is not None}
    for name, f in (("sample", sample), ("ais", ais)):
        calls = [timed(lambda r=r: f(r)) for r in range(1 + reps)]
        out["first_s"][name], out["warm_s"][name] = calls[0][0], statistics.median(t for t, _ in calls[1:])
        if name == "sample":
            out["sample_mean_x"] = float(calls[-1][1].mean())
        else:
            out["ais_log_z"] = calls[-1][1].log_z  # same key on every device count
    E = cfg["epochs"]
    first, model = timed(lambda: fit(E))
    pairs = [(timed(lambda: fit(E))[0], timed(lambda: fit(2 * E))[0]) for _ in range(reps)]
    out["first_s"]["pcd"], out["warm_s"]["pcd"] = first, statistics.median((b - a_) / E for a_, b in pairs)
    out["pcd_weight_sum"] = float(jnp.sum(model.W))
    out["memory"] = measure_memory(rekey(jax.random.key(0), DEFAULT_IMPL))
    return out


def measure_one(a) -> dict:
    return measure_devices(a)


# ------------------------------------------------------------------------------------------------
# driver


def drive(a) -> dict:
    cfg = QUICK if a.quick else FULL
    rounds = drv.rounds_for(a)
    load0 = drv.load()
    drv.header("scaling", load0, f"; host CPU devices {list(DEVICES)}; "
                                 + ("QUICK smoke run, tiny workloads" if a.quick else "full run"))
    print(f"# CPU model: {drv.cpu_model()}, {drv.cores()} cores. Forced host devices split these same cores, and 1 "
          "device already uses both through XLA's intra-op pool:\n# expect no gain or a loss. The numbers show the "
          "overhead of partitioning, not the scaling a multi-GPU host would see.")
    runs = {n: [] for n in DEVICES}
    for r in range(rounds):
        for n in drv.round_order(DEVICES, r):
            args = ["--only", "devices", "--devices", str(n), "--fit-hidden", str(a.fit_hidden)]
            runs[n].append(drv.run_peer(__file__, args + (["--quick"] if a.quick else []), env_extra=force_devices(n)))
            print(f"  round {r + 1}, {n} device(s) done", flush=True)
    S = {"date": drv.today(), "cpu_model": drv.cpu_model(), "cores": drv.cores(), "load_start": load0,
         "load_end": drv.load(), "rounds": rounds, "quick": a.quick, "config": cfg, "fit_hidden": a.fit_hidden,
         "runs": {str(n): v for n, v in runs.items()}, "table": {}}
    for w in WORKLOADS:
        S["table"][w] = {str(n): {"warm_s": drv.med(x["warm_s"][w] for x in runs[n]),
                                  "first_s": drv.med(x["first_s"][w] for x in runs[n]),
                                  "sharded": runs[n][0]["sharded"][w],
                                  "speedup": drv.median_ratio((p["warm_s"][w], q["warm_s"][w])
                                                              for p, q in zip(runs[1], runs[n]))} for n in DEVICES}
    report(S, runs, cfg, a)
    return S


def report(S, runs, cfg, a) -> None:
    print(f"\n# results {S['date']}, {S['cpu_model']}, {S['cores']} cores, load {S['load_start']:.2f} -> "
          f"{S['load_end']:.2f}; {S['rounds']} round(s){'; QUICK (tiny workloads)' if S['quick'] else ''}")
    what = {"sample": f"ep.sample 784x500, {CHAINS} chains x {cfg['samples']} sweeps (call)",
            "ais": f"ep.ais 784x500, {CHAINS} chains x {cfg['temperatures']} temps (call)",
            "pcd": f"PCD-1 epoch, 64x{a.fit_hidden} digits, batch 100 (epoch)"}
    print(f"{'workload':52s} {'dev':>3s} {'sharded':>7s} {'warm s':>9s} {'first s':>8s} {'speedup':>8s}")
    for w in WORKLOADS:
        for n in DEVICES:
            t = S["table"][w][str(n)]
            print(f"{what[w] if n == 1 else '':52s} {n:3d} {'yes' if t['sharded'] else 'no':>7s} {t['warm_s']:9.4f} "
                  f"{t['first_s']:8.2f} {t['speedup']:7.2f}x")
    lz = {n: runs[n][0]["ais_log_z"] for n in DEVICES}
    ws = {n: runs[n][0]["pcd_weight_sum"] for n in DEVICES}
    mx = {n: runs[n][0]["sample_mean_x"] for n in DEVICES}
    for label, v in (("ep.sample mean of the draws", mx), ("AIS log Z", lz), ("PCD sum(W)", ws)):
        same = len(set(v.values())) == 1
        print(f"same key, {label}: {'identical' if same else 'NOT identical'} over device counts "
              f"{ {n: float(f'{x:.10g}') for n, x in v.items()} }")

    print(f"\n## AIS memory per device, float32, {D}x{M}, CHUNK={CHUNK}: per chain "
          f"4 x (CHUNK(M+D) + D + 1 + CHUNK + D + 3M) = {predicted_ais_bytes(1, 1)['per_chain']} B "
          f"(the block's random numbers {4 * CHUNK * (M + D)} B of it)")
    print(f"check at {MEM_CHAINS} chains x {MEM_TEMPS} temperatures, memory_analysis() of the compiled program "
          "(arguments + output + temporaries):")
    for n in DEVICES:
        m, p = runs[n][0]["memory"], predicted_ais_bytes(MEM_CHAINS, n)
        if "error" in m:
            print(f"  {n} device(s): measurement unavailable ({m['error']})")
            continue
        note = "" if m["library_chunk"] == CHUNK else f" (library CHUNK is now {m['library_chunk']}: update CHUNK)"
        print(f"  {n} device(s), {p['chains_per_device']} chains each: predicted {p['total'] / 2**20:8.2f} MiB, "
              f"measured {m['total'] / 2**20:8.2f} MiB (temporaries {m['temp'] / 2**20:.2f} MiB), "
              f"ratio {m['total'] / p['total']:.4f}{note}")
    print(f"predicted for {BIG_CHAINS:.0e} chains x {MEM_TEMPS} temperatures:")
    for n in (1, 2, 4, 8):
        p = predicted_ais_bytes(BIG_CHAINS, n)
        print(f"  {n} device(s): {p['chains_per_device']:6d} chains each, {p['total'] / 2**30:6.2f} GiB per device")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one round, tiny workloads")
    ap.add_argument("--only", choices=("devices",))
    ap.add_argument("--devices", type=int, default=1, help="with --only: the forced host device count")
    ap.add_argument("--fit-hidden", type=int, default=20, help="hidden units of the PCD workload's RBM")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    drv.dispatch(a, measure_one, drive)


if __name__ == "__main__":
    main()
