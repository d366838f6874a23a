"""Effective samples per energy evaluation and per second of the discrete samplers: site Gibbs,
Gibbs with gradients (GWG) and discrete Langevin with a Metropolis correction (DMALA).

The target is a strongly coupled 64-unit Boltzmann machine: an SK-like spin glass written on
{0, 1}, ``W_ij ~ N(0, 0.5^2)`` for i < j (``ep.BoltzmannMachine.init(key(0), 64, scale=0.5)``)
and ``b = -W 1 / 2``, so that in spin form (s = 2x - 1) the field is zero and the couplings are
J_ij = W_ij / 4 ~ N(0, 1/64) = N(0, beta^2 / D) with beta = 1: the Sherrington-Kirkpatrick model
at its critical temperature, where x and 1 - x are equally likely and single-site samplers mix
slowly.

Peers (each in its own process; 8 chains from fair coin flips, vmapped, in a jitted ``lax.scan``):

* ``site_gibbs``  ``ep.kernels.site_gibbs``: one step is a systematic sweep over the 64 sites;
* ``gwg``         ``gibbs_with_gradients`` with ``num_flips=64``: one step is 64 single-site
                  Metropolis-Hastings moves;
* ``dmala_A``     ``discrete_langevin`` with ``step_size=A``: one step is one proposal that may
                  change every coordinate.

Each runs the same budget of ``64 * sweeps`` evaluations per chain: ``sweeps`` site-Gibbs sweeps
(64 site conditionals each, each one row of W, ``b_i + W_i . x``, the Boltzmann machine's
``site_logit``: a sweep costs about one energy evaluation in flops, and 128 on a potential
without ``site_logit``), ``sweeps`` GWG steps (64 energy-and-gradient evaluations each), or
``64 * sweeps`` DMALA steps (one energy-and-gradient evaluation each). The first 10% of the
draws are dropped; the energy E(x) and the magnetization m = mean(x) of every kept draw are
recorded, and ArviZ's bulk ESS (``az.ess``, over the 8 chains) of each is reported per 1000
evaluations and per second of the warm run (a second call with another key, after compiling).

    python benchmarks/discrete_samplers.py            # 1 round, about 80 s on 2 (busy) cores
    python benchmarks/discrete_samplers.py --quick    # a quarter of the budget
    python benchmarks/discrete_samplers.py --only gwg # one measurement in this process, JSON out
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # benchmarks/ is not a package: import from this folder

DIM = 64
NUM_CHAINS = 8
SWEEPS = 2000
STEP_SIZES = (0.1, 0.2, 0.4)
PEERS = ("site_gibbs", "gwg") + tuple(f"dmala_{a:g}" for a in STEP_SIZES)


def make_potential():
    import jax
    import jax.numpy as jnp

    import ebm_ppl as ep

    bm = ep.BoltzmannMachine.init(jax.random.key(0), DIM, scale=0.5)
    return ep.BoltzmannMachine(bm.W, -0.5 * jnp.sum(bm.W, axis=1))


def algorithm(peer: str, potential):
    """``(SamplingAlgorithm, evaluations per step)``."""
    # the modules' constructors (ep.kernels.NAME may be the GenerateSamplingAPI object of the same name)
    from ebm_ppl.kernels.discrete_langevin import as_top_level_api as discrete_langevin
    from ebm_ppl.kernels.gibbs_with_gradients import as_top_level_api as gibbs_with_gradients
    from ebm_ppl.kernels.site_gibbs import as_top_level_api as site_gibbs

    if peer == "site_gibbs":
        return site_gibbs(potential), DIM
    if peer == "gwg":
        return gibbs_with_gradients(potential, num_flips=DIM), DIM
    if peer.startswith("dmala_"):
        return discrete_langevin(potential, float(peer.split("_", 1)[1])), 1
    raise SystemExit(f"unknown peer {peer!r}")


def measure(peer: str, sweeps: int, seed: int) -> dict:
    import warnings

    import arviz as az
    import jax
    import jax.numpy as jnp
    import numpy as np

    warnings.filterwarnings("ignore", category=UserWarning)
    compile_log = drv.jax_compile_log()
    potential = make_potential()
    algo, evals_per_step = algorithm(peer, potential)
    num_steps = sweeps * DIM // evals_per_step
    x0 = jax.random.bernoulli(jax.random.key(1000 + seed), 0.5, (NUM_CHAINS, DIM)).astype(jnp.float32)

    @jax.jit
    def run(key):
        states = jax.vmap(algo.init)(x0)

        def body(states, key):
            states, info = jax.vmap(algo.step)(jax.random.split(key, NUM_CHAINS), states)
            x = states.position
            accept = getattr(info, "acceptance_rate", jnp.full(NUM_CHAINS, jnp.nan))
            return states, (jax.vmap(potential.unbatched_energy)(x), jnp.mean(x, axis=1), accept)

        return jax.lax.scan(body, states, jax.random.split(key, num_steps))[1]

    calls = []
    for i in range(2):  # cold (compiles), then warm
        compile_log.clear()
        t = time.perf_counter()
        energy, magnetization, accept = jax.block_until_ready(run(jax.random.key(10 * seed + i)))
        calls.append({"seconds": time.perf_counter() - t, "compile_seconds": sum(compile_log)})
    keep = slice(num_steps // 10, None)
    draws = {"energy": np.asarray(energy)[keep].T, "magnetization": np.asarray(magnetization)[keep].T}
    ess = az.ess(az.from_dict({"posterior": draws}), method="bulk")
    evals = NUM_CHAINS * num_steps * evals_per_step
    warm = calls[1]["seconds"]
    out = {"peer": peer, "steps": num_steps, "evals_per_chain": num_steps * evals_per_step, "cold_s": calls[0]["seconds"],
           "compile_s": calls[0]["compile_seconds"], "warm_s": warm,
           "acceptance": float(np.nanmean(np.asarray(accept)[keep])) if peer != "site_gibbs" else None,
           "mean_energy": float(np.mean(draws["energy"])), "mean_magnetization": float(np.mean(draws["magnetization"]))}
    for name in draws:
        e = float(ess[name])
        out[f"ess_{name}"] = e
        out[f"ess_{name}_per_1000_evals"] = 1000 * e / evals
        out[f"ess_{name}_per_s"] = e / warm
    return out


# ------------------------------------------------------------------------------------------------
# driver


def drive(args) -> dict:
    rounds = drv.rounds_for(args)
    sweeps = SWEEPS // 4 if args.quick else args.sweeps
    start = time.perf_counter()
    load_start = drv.load()
    cpu = drv.cpu_model() if hasattr(drv, "cpu_model") else _cpu_model()
    plat, py = drv.machine()
    print(f"# discrete_samplers {drv.now()}  CPU: {cpu}  cores {drv.cores()}  load {load_start:.2f}")
    print(f"# {plat}  python {py}")
    print(f"# {DIM}-unit SK-like Boltzmann machine (beta = 1), {NUM_CHAINS} chains, {sweeps} sweeps' worth of "
          f"evaluations ({DIM * sweeps} per chain), first 10% dropped; {rounds} round(s), each peer in its own process")
    drv.warn_if_busy(load_start, f"# WARNING: the machine is busy (load {load_start:.2f}); per-second figures are noisy")
    runs = {p: [] for p in PEERS}
    for r in range(rounds):
        for peer in drv.round_order(PEERS, r):
            res = drv.run_peer(__file__, ["--only", peer, "--sweeps", str(sweeps), "--seed", str(r)])
            runs[peer].append(res)
            print(f"  round {r + 1} {peer:11s} warm {res['warm_s']:6.2f} s (cold {res['cold_s']:.2f}, compile "
                  f"{res['compile_s']:.2f})  ESS energy {res['ess_energy']:7.0f}  ESS m {res['ess_magnetization']:7.0f}",
                  flush=True)
    keys = ("warm_s", "ess_energy", "ess_magnetization", "ess_energy_per_1000_evals",
            "ess_magnetization_per_1000_evals", "ess_energy_per_s", "ess_magnetization_per_s", "mean_energy",
            "mean_magnetization")
    rows = {p: {k: drv.med([x[k] for x in rr]) for k in keys} for p, rr in runs.items()}
    for p, rr in runs.items():
        rows[p]["acceptance"] = drv.med([x["acceptance"] for x in rr])
        rows[p]["steps"] = rr[0]["steps"]
    summary = {"date": drv.today(), "cpu": cpu, "cores": drv.cores(), "rounds": rounds, "sweeps": sweeps,
               "load_start": load_start, "load_end": drv.load(), "rows": rows, "wall_s": time.perf_counter() - start}
    report(summary)
    return summary


def report(s: dict) -> None:
    print(f"\n# results ({s['date']}, {s['cpu']}, {s['cores']} cores, load {s['load_start']:.2f} -> "
          f"{s['load_end']:.2f}; medians over {s['rounds']} round(s))")
    print(f"{'peer':11s} {'steps':>7s} {'accept':>6s} {'warm s':>7s} {'ESS E':>7s} {'ESS m':>7s} "
          f"{'E /1k ev':>9s} {'m /1k ev':>9s} {'E /s':>8s} {'m /s':>8s} {'mean E':>8s} {'mean m':>7s}")
    for p, x in s["rows"].items():
        acc = "" if x["acceptance"] is None or x["acceptance"] != x["acceptance"] else f"{x['acceptance']:.2f}"
        print(f"{p:11s} {x['steps']:7d} {acc:>6s} {x['warm_s']:7.2f} {x['ess_energy']:7.0f} {x['ess_magnetization']:7.0f} "
              f"{x['ess_energy_per_1000_evals']:9.3f} {x['ess_magnetization_per_1000_evals']:9.3f} "
              f"{x['ess_energy_per_s']:8.1f} {x['ess_magnetization_per_s']:8.1f} {x['mean_energy']:8.2f} "
              f"{x['mean_magnetization']:7.3f}")
    print("(evaluations: a site-Gibbs sweep counts 64, one per site conditional; a GWG move and a DMALA step count "
          "one energy-and-gradient evaluation)")
    print(f"\n# wall time {s['wall_s']:.0f} s")


def _cpu_model() -> str:
    """The "model name" of /proc/cpuinfo (for a _driver without ``cpu_model``)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "unknown CPU")
    except OSError:
        return "unknown CPU"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"a quarter of the budget ({SWEEPS // 4} sweeps' worth)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--sweeps", type=int, default=SWEEPS, help="the budget, in site-Gibbs sweeps' worth of evaluations")
    ap.add_argument("--seed", type=int, default=0, help="with --only")
    ap.add_argument("--only", choices=PEERS, help="run one measurement in this process, print JSON")
    ap.add_argument("--json", help="also write the summary to this file")
    args = ap.parse_args(argv)
    drv.dispatch(args, measure_one, drive)


def measure_one(args) -> dict:
    return measure(args.only, args.sweeps, args.seed)


if __name__ == "__main__":
    main()
