"""Effective samples per second of NUTS: ``ep.sample(kernel="nuts")`` against NumPyro's NUTS.

Both samplers run 4 chains (vectorized), 500 warm-up and 1000 kept draws, from the same starting
points, on the same energy function:

* ``ep``       ``ep.sample(key, potential, kernel="nuts", num_chains=4, num_warmup=500,
               num_samples=1000, init=x0)`` (BlackJAX NUTS, window adaptation: step size and
               diagonal mass matrix, target acceptance 0.8);
* ``numpyro``  ``MCMC(NUTS(potential_fn=potential.energy), num_chains=4, chain_method="vectorized",
               num_warmup=500, num_samples=1000).run(key, init_params=x0)`` (step size and diagonal
               mass matrix adaptation, target acceptance 0.8; NumPyro takes the energy, -log p).

Potentials:

* ``gaussian``  a 10-d correlated Gaussian ``ep.Gaussian(mean, cov)``: standard deviations
                0.5 .. 3, correlations 0.8^|i-j|, mean -1 .. 1;
* ``jem``       the marginal energy of ``ep.JEM.init(key(0), in_features=64, num_classes=10,
                width=64, depth=2)``, PLUS a weak Gaussian term ``0.5 * |x|^2 / 9`` (an N(0, 3^2 I)
                prior). JEM's own energy ``-logsumexp f(x)`` grows at most linearly in |x| with ELU
                layers, so exp(-E) need not be integrable over R^64; both samplers get the same
                composed energy (``TiltedPotential`` below).

ESS: the minimum over coordinates of ArviZ's bulk ESS (``az.ess``) of the 4 x 1000 draws.
Times: the first call in a fresh process (compilation included), the second call (same shapes,
another key: "warm"), and the warm call less the time JAX logs for tracing, lowering and
compiling (``jax_log_compiles``; ep.sample compiles once per shapes and settings and caches it).
Each (sampler, potential) runs in its own process; rounds alternate the order.

    python benchmarks/nuts_ess.py           # 3 rounds, about 3.5 minutes on 2 cores (compile-bound)
    python benchmarks/nuts_ess.py --quick   # 1 round with 100 warm-up / 200 draws, about 1 minute
    python benchmarks/nuts_ess.py --only ep:jem   # one measurement in this process, JSON out
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import ClassVar

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # benchmarks/ is not a package: import from this folder

SAMPLERS = ("ep", "numpyro")
POTENTIALS = ("gaussian", "jem")
NUM_CHAINS = 4


def make_potential(name: str):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import ebm_ppl as ep

    if name == "gaussian":
        D = 10
        s = jnp.linspace(0.5, 3.0, D)
        corr = 0.8 ** jnp.abs(jnp.arange(D)[:, None] - jnp.arange(D)[None, :])
        return ep.Gaussian(jnp.linspace(-1.0, 1.0, D), s[:, None] * corr * s[None, :])

    # ClassVar is imported at module level: dataclasses must resolve it in the string annotations
    class TiltedPotential(ep.Potential):
        """``E(x) = base(x) + 0.5 |x|^2 / prior_var``: a proper density for any energy that grows
        slower than quadratically."""

        name: ClassVar[str] = "tilted_benchmark"
        support: ClassVar[ep.Support] = ep.Support.REAL
        base: ep.Potential
        prior_var: float = eqx.field(static=True)

        @property
        def event_shape(self):
            return self.base.event_shape

        def unbatched_energy(self, x):
            return self.base.unbatched_energy(x) + 0.5 * jnp.sum(x * x) / self.prior_var

    if name == "jem":
        jem = ep.JEM.init(jax.random.key(0), in_features=64, num_classes=10, width=64, depth=2)
        return TiltedPotential(jem, 9.0)
    raise SystemExit(f"unknown potential {name!r}")


def min_bulk_ess(draws) -> float:
    """min over coordinates of ArviZ bulk ESS; ``draws`` shaped (chain, draw, D)."""
    import arviz as az
    import numpy as np

    tree = az.from_dict({"posterior": {"x": np.asarray(draws)}})
    return float(az.ess(tree, method="bulk")["x"].min())


def measure(sampler: str, potential_name: str, num_warmup: int, num_samples: int, seed: int) -> dict:
    import warnings

    import jax
    import numpy as np

    warnings.filterwarnings("ignore", category=UserWarning)
    compile_log = drv.jax_compile_log()

    import ebm_ppl as ep

    potential = make_potential(potential_name)
    D = potential.event_shape[0]
    x0 = jax.random.normal(jax.random.key(1000 + seed), (NUM_CHAINS, D))

    if sampler == "ep":

        def call(key):
            dt = ep.sample(key, potential, kernel="nuts", num_chains=NUM_CHAINS, num_warmup=num_warmup,
                           num_samples=num_samples, init=x0)
            return (dt.posterior["x"].values, dt.sample_stats["n_steps"].values,
                    dt.sample_stats["diverging"].values, dt.sample_stats["step_size"].values)
    elif sampler == "numpyro":
        from numpyro.infer import MCMC, NUTS

        mcmc = MCMC(NUTS(potential_fn=potential.energy), num_chains=NUM_CHAINS, chain_method="vectorized",
                    num_warmup=num_warmup, num_samples=num_samples, progress_bar=False)

        def call(key):
            mcmc.run(key, init_params=x0, extra_fields=("num_steps", "diverging", "adapt_state.step_size"))
            extra = mcmc.get_extra_fields(group_by_chain=True)
            return (np.asarray(mcmc.get_samples(group_by_chain=True)), np.asarray(extra["num_steps"]),
                    np.asarray(extra["diverging"]), np.asarray(extra["adapt_state.step_size"]))
    else:
        raise SystemExit(f"unknown sampler {sampler!r}")

    out = {"sampler": sampler, "potential": potential_name, "dim": D, "calls": []}
    for i in range(2):
        compile_log.clear()
        t = time.perf_counter()
        draws, n_steps, diverging, step_size = call(jax.random.key(seed * 10 + i))
        elapsed = time.perf_counter() - t
        ess = min_bulk_ess(draws)
        out["calls"].append({
            "seconds": elapsed, "compile_seconds": sum(compile_log), "min_ess_bulk": ess,
            "grad_evals": int(np.sum(n_steps)), "divergences": int(np.sum(diverging)),
            "step_size": float(np.mean(step_size[:, -1])),
            "mean_abs_x": float(np.mean(np.abs(draws))),
        })
    return out


# ------------------------------------------------------------------------------------------------
# driver


def _subprocess(sampler, potential, num_warmup, num_samples, seed):
    return drv.run_peer(__file__, ["--only", f"{sampler}:{potential}", "--num-warmup", str(num_warmup),
                                   "--num-samples", str(num_samples), "--seed", str(seed)])


_med = drv.med


def drive(args) -> dict:
    rounds = drv.rounds_for(args)
    num_warmup, num_samples = (100, 200) if args.quick else (args.num_warmup, args.num_samples)
    start = time.perf_counter()
    load_start = drv.load()
    cores = drv.cores()
    print(f"# nuts_ess: {NUM_CHAINS} chains, {num_warmup} warm-up + {num_samples} draws, {rounds} round(s); "
          "every (sampler, potential) in its own process; order reversed every other round")
    plat, py = drv.machine()
    print(f"# {drv.now()}  {plat}  python {py}  cores {cores} (XLA CPU intra-op pool over all of them, both samplers)  "
          f"load {load_start:.2f}")
    drv.warn_if_busy(load_start, f"# WARNING: the machine is busy (load {load_start:.2f} on {cores} cores); "
                     "expect noisy numbers")
    runs = {(s, p): [] for p in POTENTIALS for s in SAMPLERS}
    for r in range(rounds):
        for s, p in drv.round_order([(s, p) for p in POTENTIALS for s in SAMPLERS], r):
            res = _subprocess(s, p, num_warmup, num_samples, seed=r)
            runs[(s, p)].append(res)
            c0, c1 = res["calls"]
            print(f"  round {r + 1} {p:8s} {s:8s} cold {c0['seconds']:6.2f} s (compile {c0['compile_seconds']:.2f}) "
                  f"ESS {c0['min_ess_bulk']:7.1f} | warm {c1['seconds']:6.2f} s (compile {c1['compile_seconds']:.2f}) "
                  f"ESS {c1['min_ess_bulk']:7.1f}  grad evals {c1['grad_evals']}  div {c1['divergences']}", flush=True)

    summary = {"date": drv.today(), "cores": cores, "rounds": rounds,
               "num_warmup": num_warmup, "num_samples": num_samples, "load_start": load_start, "potentials": {}}
    for p in POTENTIALS:
        rows = {}
        for s in SAMPLERS:
            rr = runs[(s, p)]
            cold = [x["calls"][0] for x in rr]
            warm = [x["calls"][1] for x in rr]
            both = cold + warm
            rows[s] = {
                "cold_s": _med([c["seconds"] for c in cold]),
                "warm_s": _med([c["seconds"] for c in warm]),
                "warm_compile_s": _med([c["compile_seconds"] for c in warm]),
                "ess": _med([c["min_ess_bulk"] for c in both]),
                "ess_per_s_cold": _med([c["min_ess_bulk"] / c["seconds"] for c in cold]),
                "ess_per_s_warm": _med([c["min_ess_bulk"] / c["seconds"] for c in warm]),
                "ess_per_s_run": _med([c["min_ess_bulk"] / max(1e-9, c["seconds"] - c["compile_seconds"])
                                       for c in warm]),
                "grad_evals": _med([c["grad_evals"] for c in both]),
                "ess_per_1000_grads": _med([1000 * c["min_ess_bulk"] / c["grad_evals"] for c in both]),
                "divergences": _med([c["divergences"] for c in both]),
                "step_size": _med([c["step_size"] for c in both]),
            }
        ratios = {}
        for key in ("ess_per_s_cold", "ess_per_s_warm", "ess_per_s_run", "ess_per_1000_grads"):
            per_round = []
            for a, b in zip(runs[("ep", p)], runs[("numpyro", p)]):
                calls = (0,) if key == "ess_per_s_cold" else ((1,) if key != "ess_per_1000_grads" else (0, 1))
                for i in calls:
                    ca, cb = a["calls"][i], b["calls"][i]
                    if key == "ess_per_1000_grads":
                        per_round.append((ca["min_ess_bulk"] / ca["grad_evals"])
                                         / (cb["min_ess_bulk"] / cb["grad_evals"]))
                    else:
                        ta = ca["seconds"] - (ca["compile_seconds"] if key == "ess_per_s_run" else 0)
                        tb = cb["seconds"] - (cb["compile_seconds"] if key == "ess_per_s_run" else 0)
                        per_round.append((ca["min_ess_bulk"] / ta) / (cb["min_ess_bulk"] / tb))
            ratios[key] = _med(per_round)
        summary["potentials"][p] = {"dim": runs[("ep", p)][0]["dim"], "rows": rows, "ep_over_numpyro": ratios}
    summary["load_end"] = drv.load()
    summary["wall_s"] = time.perf_counter() - start
    report(summary)
    return summary


def report(s: dict) -> None:
    print(f"\n# results ({s['date']}, {s['cores']} cores, load {s['load_start']:.2f} -> {s['load_end']:.2f}, "
          f"{s['num_warmup']} warm-up + {s['num_samples']} draws x {NUM_CHAINS} chains; medians over "
          f"{s['rounds']} round(s); ratios per round, then median)")
    for p, r in s["potentials"].items():
        label = "10-d correlated Gaussian" if p == "gaussian" else \
            "JEM 64-64-64-10 ELU marginal energy + 0.5|x|^2/9"
        print(f"\n## {label} (D = {r['dim']})")
        print(f"{'sampler':9s} {'cold s':>7s} {'warm s':>7s} {'(compile)':>9s} {'min ESS':>8s} {'ESS/s cold':>10s} "
              f"{'ESS/s warm':>10s} {'ESS/s run':>10s} {'grads':>8s} {'ESS/1k grads':>12s} {'div':>4s} {'eps':>6s}")
        for name, x in r["rows"].items():
            print(f"{name:9s} {x['cold_s']:7.2f} {x['warm_s']:7.2f} {x['warm_compile_s']:9.2f} {x['ess']:8.0f} "
                  f"{x['ess_per_s_cold']:10.1f} {x['ess_per_s_warm']:10.1f} {x['ess_per_s_run']:10.1f} "
                  f"{x['grad_evals']:8.0f} {x['ess_per_1000_grads']:12.2f} {x['divergences']:4.0f} "
                  f"{x['step_size']:6.3f}")
        q = r["ep_over_numpyro"]
        print(f"ep / numpyro: ESS/s cold {q['ess_per_s_cold']:.2f}x, warm {q['ess_per_s_warm']:.2f}x, "
              f"run only {q['ess_per_s_run']:.2f}x; ESS per gradient {q['ess_per_1000_grads']:.2f}x "
              "(target: parity or better)")
    print(f"\n# wall time {s['wall_s']:.0f} s")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one round, 100 warm-up / 200 draws")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--num-warmup", type=int, default=500)
    ap.add_argument("--num-samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="with --only")
    ap.add_argument("--only", help="SAMPLER:POTENTIAL, e.g. ep:jem; run in this process, print JSON")
    ap.add_argument("--json", help="also write the summary to this file")
    args = ap.parse_args(argv)
    drv.dispatch(args, measure_one, drive)


def measure_one(args) -> dict:
    sampler, potential = args.only.split(":")
    return measure(sampler, potential, args.num_warmup, args.num_samples, args.seed)


if __name__ == "__main__":
    main()
