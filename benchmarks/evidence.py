"""Benchmark: the log evidence of NumPyro models — ebm_ppl's AIS against BlackJAX's and PyMC's SMC.

Same models and data for every peer, analytic (or 1-d quadrature) log evidence as the truth:

* ``normal_mean``: mu ~ N(0, 2^2), 20 points y_i ~ N(mu, 1).
* ``beta_binomial``: p ~ Beta(2, 3), k = 13 of n = 20 ~ Binomial(n, p).
* ``half_normal_scale``: sigma ~ HalfNormal(1), 30 points y_i ~ N(0, sigma) (a constrained site).
* ``linear_regression``: 15 weights w ~ N(0, I), 50 points y ~ N(X w, 0.5^2).

Peers, each in its own process per (model, seed) so that its wall time includes what a user pays
(imports aside): compilation is in the first seed's time; the later seeds' median is the warm time
(in-process repeats for ebm_ppl and BlackJAX, whose compiled programs are reused; PyMC compiles
inside every ``sample_smc`` call, from its on-disk cache after the first):

* ``ebm_ppl``: ``ep.numpyro.log_evidence`` (forward AIS, 100 chains + 32 tuning chains, one HMC
  move of 5 leapfrog steps per temperature, adaptive schedule; ``--temperatures`` per model).
* ``blackjax``: ``blackjax.adaptive_tempered_smc`` (target ESS 0.5, systematic resampling) wrapped in
  ``blackjax.inner_kernel_tuning`` (the HMC inverse mass matrix from the particles' variances at every
  stage, BlackJAX's ``particles_stds``; the step size fixed at ``0.5 dim^-1/4`` in that metric: the
  update function sees only the new particles, not the last step size; at ``dim^-1/4`` the 1-d
  half-normal model came out 1 nat low), HMC with 5
  leapfrog steps, on the same NumPyro log prior and log likelihood on the unconstrained space; the
  log evidence is the sum of the stages' ``log_likelihood_increment``. Its number of MCMC steps per
  stage is set so that its gradient evaluations match ebm_ppl's (from a first run's stage count).
* ``pymc``: ``pm.sample_smc`` (2000 draws, its default independent Metropolis-Hastings kernel: no
  gradients) through ``benchmarks/evidence_pymc.py`` in its own venv (``--pymc-python``;
  ``benchmarks/requirements-pymc.txt``), skipped with a note when that venv is missing.

Reported per model and peer: mean error to the truth and its run-to-run spread over ``--seeds``
seeds, root mean square error, cold and warm wall time, gradient evaluations; and the ratios
(peer / ebm_ppl) of RMSE and warm time. "cold" is the first call in a fresh process; PyMC's comes
from its on-disk compile cache (numba's and PyTensor's, warm after the first run on a machine), so
ebm_ppl's process runs twice with JAX's persistent cache (``ep.compiler.enable_persistent_cache``)
in a temporary folder, and its "cached" column is the second process's cold call. Then the BDMC
sandwich on the 15-weight regression.

    python benchmarks/evidence.py                   # all models, 5 seeds
    python benchmarks/evidence.py --seeds 3 --models normal_mean

Results (with the CPU) go to benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver  # noqa: E402

PYMC_PYTHON = os.environ.get("PYMC_PYTHON", "/tmp/pymcvenv/bin/python")
MODELS = ("normal_mean", "beta_binomial", "half_normal_scale", "linear_regression")
TEMPERATURES = {"normal_mean": 2000, "beta_binomial": 2000, "half_normal_scale": 2000, "linear_regression": 10000}
CHAINS, TUNING, LEAPFROG = 100, 32, 5


# ------------------------------------------------------------------------------------------------
# data and truth (numpy/scipy only, shared by every peer through an .npz)


def make_data(name: str) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    if name == "normal_mean":
        return {"y": rng.normal(1.0, 1.0, 20).astype(np.float32)}
    if name == "beta_binomial":
        return {"n": np.int64(20), "k": np.int64(13)}
    if name == "half_normal_scale":
        return {"y": rng.normal(0.0, 0.7, 30).astype(np.float32)}
    if name == "linear_regression":
        X = rng.normal(size=(50, 15)).astype(np.float32)
        y = (X @ (0.5 * rng.normal(size=15)) + 0.5 * rng.normal(size=50)).astype(np.float32)
        return {"X": X, "y": y}
    raise ValueError(name)


def truth(name: str, d: dict) -> float:
    import numpy as np
    from scipy import integrate, special, stats

    if name == "normal_mean":
        n = len(d["y"])
        return float(stats.multivariate_normal(np.zeros(n), np.eye(n) + 4.0).logpdf(d["y"]))
    if name == "beta_binomial":
        n, k = int(d["n"]), int(d["k"])
        return float(math.log(special.comb(n, k)) + special.betaln(k + 2, n - k + 3) - special.betaln(2, 3))
    if name == "half_normal_scale":
        y = d["y"].astype(np.float64)

        def log_joint(s):
            return stats.halfnorm.logpdf(s) + stats.norm(0.0, s).logpdf(y).sum()

        ref = max(log_joint(s) for s in np.linspace(0.05, 3.0, 300))
        value, _ = integrate.quad(lambda s: np.exp(log_joint(s) - ref), 0.0, 10.0, points=[0.5, 0.7, 1.0], limit=200)
        return float(ref + math.log(value))
    X = d["X"].astype(np.float64)
    return float(stats.multivariate_normal(np.zeros(len(d["y"])), 0.25 * np.eye(len(d["y"])) + X @ X.T).logpdf(d["y"]))


def numpyro_model(name: str, d: dict):
    """``(model, args)`` of the NumPyro model on the data."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    if name == "normal_mean":
        def model(y):
            mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
            with numpyro.plate("data", y.shape[0]):
                numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
        return model, (jnp.asarray(d["y"]),)
    if name == "beta_binomial":
        def model(n, k):
            p = numpyro.sample("p", dist.Beta(2.0, 3.0))
            numpyro.sample("k", dist.Binomial(n, p), obs=k)
        return model, (int(d["n"]), int(d["k"]))
    if name == "half_normal_scale":
        def model(y):
            sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
            with numpyro.plate("data", y.shape[0]):
                numpyro.sample("y", dist.Normal(0.0, sigma), obs=y)
        return model, (jnp.asarray(d["y"]),)

    def model(X, y=None):
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
        numpyro.sample("y", dist.Normal(X @ w, 0.5).to_event(1), obs=y)
    return model, (jnp.asarray(d["X"]), jnp.asarray(d["y"]))


# ------------------------------------------------------------------------------------------------
# peers (one process each)


def measure_ebm_ppl(name: str, seeds: list[int], temperatures: int) -> dict:
    import warnings

    import jax

    import ebm_ppl as ep

    if ep.compiler.cache_dir() is not None:  # the driver points EBM_PPL_COMPILE_CACHE at a temporary folder
        ep.compiler.enable_persistent_cache()
    model, args = numpyro_model(name, make_data(name))
    out = []
    for s in seeds:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = ep.numpyro.log_evidence(jax.random.key(s), model, *args, num_chains=CHAINS,
                                          num_temperatures=temperatures, num_tuning_chains=TUNING,
                                          num_integration_steps=LEAPFROG)
        out.append({"log_z": est.log_z, "stderr": est.stderr, "wall": time.perf_counter() - t, "ess": est.ess})
    pilot = min(128, temperatures)
    grads = (CHAINS + TUNING) * (temperatures + pilot) * (LEAPFROG + 1)
    return {"runs": out, "grads": grads}


def _blackjax_smc(name: str, num_particles: int, num_mcmc_steps: int):
    """A jitted ``key -> (log_z, num_stages)`` running BlackJAX's adaptive tempered SMC."""
    import blackjax
    import blackjax.smc.resampling as resampling
    import jax
    import jax.numpy as jnp
    from blackjax.smc.tuning.from_particles import particles_stds
    from jax.flatten_util import ravel_pytree
    from numpyro import handlers
    from numpyro.infer.util import compute_log_probs, constrain_fn, potential_energy, unconstrain_fn

    model, args = numpyro_model(name, make_data(name))
    trace = handlers.trace(handlers.seed(model, 0)).get_trace(*args)
    latent = [n for n, s in trace.items() if s["type"] == "sample" and not s["is_observed"]]
    observed = [n for n, s in trace.items() if s["type"] == "sample" and s["is_observed"]]
    template = unconstrain_fn(model, args, {}, {n: trace[n]["value"] for n in latent})
    _, unravel = ravel_pytree(template)

    def loglik(z):
        params = constrain_fn(model, args, {}, unravel(z))
        lp, _ = compute_log_probs(model, args, {}, params)
        return sum(lp[n] for n in observed)

    def logprior(z):  # joint minus likelihood: prior with Jacobians
        return -potential_energy(model, args, {}, unravel(z)) - loglik(z)

    def prior_draw(k):
        tr = handlers.trace(handlers.seed(model, k)).get_trace(*args)
        return ravel_pytree(unconstrain_fn(model, args, {}, {n: tr[n]["value"] for n in latent}))[0]

    dim = ravel_pytree(template)[0].shape[0]

    def step_fn(key, state, logdensity, step_size, inverse_mass_matrix):
        return blackjax.hmc.build_kernel()(key, state, logdensity, step_size, inverse_mass_matrix, LEAPFROG)

    step_size = jnp.full((1,), 0.5 * dim**-0.25)  # in the metric of the particles' variances (unit scale)

    def update(key, state, info):  # BlackJAX's tuning from particles (Buchholz et al. 2021, Sec. 3.1)
        return {"step_size": step_size, "inverse_mass_matrix": (particles_stds(state.particles) ** 2)[None]}

    initial = {"step_size": step_size, "inverse_mass_matrix": jnp.ones((1, dim))}
    smc = blackjax.inner_kernel_tuning(
        smc_algorithm=blackjax.adaptive_tempered_smc, logprior_fn=logprior, loglikelihood_fn=loglik,
        mcmc_step_fn=step_fn, mcmc_init_fn=blackjax.hmc.init, resampling_fn=resampling.systematic,
        mcmc_parameter_update_fn=update, initial_parameter_value=initial, num_mcmc_steps=num_mcmc_steps,
        target_ess=0.5)

    @jax.jit
    def run(key):
        k0, k1 = jax.random.split(key)
        state = smc.init(jax.vmap(prior_draw)(jax.random.split(k0, num_particles)))

        def cond(carry):
            return carry[1].sampler_state.tempering_param < 1

        def body(carry):
            i, state, log_z, k = carry
            k, sub = jax.random.split(k)
            state, info = smc.step(sub, state)
            return i + 1, state, log_z + info.log_likelihood_increment, k

        n, _, log_z, _ = jax.lax.while_loop(cond, body, (0, state, 0.0, k1))
        return log_z, n

    return run


def measure_blackjax(name: str, seeds: list[int], budget: int, num_particles: int) -> dict:
    import jax

    stages = int(_blackjax_smc(name, num_particles, 1)(jax.random.key(10_000))[1])
    steps = max(1, round(budget / (num_particles * stages * (LEAPFROG + 1))))
    run = _blackjax_smc(name, num_particles, steps)
    out = []
    for s in seeds:
        t = time.perf_counter()
        log_z, n = run(jax.random.key(s))
        log_z = float(log_z)
        out.append({"log_z": log_z, "wall": time.perf_counter() - t, "stages": int(n)})
    grads = num_particles * statistics.median(r["stages"] for r in out) * steps * (LEAPFROG + 1)
    return {"runs": out, "grads": grads, "mcmc_steps": steps}


def measure_pymc(name: str, seeds: list[int], data_path: str, python: str) -> dict:
    out = []
    for s in seeds:
        res = _driver.run_peer_with(python, os.path.join(os.path.dirname(__file__), "evidence_pymc.py"),
                                    ["--data", data_path, "--model", name, "--seed", str(s)])
        out.append({"log_z": res["log_z"], "wall": res["wall_time"], "stages": res.get("n_stages")})
    return {"runs": out, "grads": 0, "version": res.get("pymc_version")}


# ------------------------------------------------------------------------------------------------
# driver


def summarize(runs: list[dict], exact: float) -> dict:
    errors = [r["log_z"] - exact for r in runs]
    walls = [r["wall"] for r in runs]
    return {"mean_error": statistics.fmean(errors), "spread": statistics.pstdev(errors),
            "rmse": math.sqrt(statistics.fmean(e * e for e in errors)), "cold": walls[0],
            "warm": statistics.median(walls[1:]) if len(walls) > 1 else walls[0]}


def bdmc_check(temperatures: int) -> dict:
    import warnings

    import jax

    import ebm_ppl as ep

    model, args = numpyro_model("linear_regression", make_data("linear_regression"))
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ep.numpyro.bdmc(jax.random.key(0), model, args[0], observed="y", num_temperatures=temperatures)
    return {"temperatures": temperatures, "gap": res.gap, "forward": res.forward.log_z, "reverse": res.reverse.log_z,
            "seconds": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["ebm_ppl", "blackjax", "bdmc"])
    ap.add_argument("--model", choices=MODELS)
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=0, help="(blackjax) gradient evaluations to match")
    ap.add_argument("--particles", type=int, default=1000, help="BlackJAX SMC particles")
    ap.add_argument("--temperatures", type=int, default=0, help="ebm_ppl's temperatures (default: per model)")
    ap.add_argument("--pymc-python", default=PYMC_PYTHON)
    ap.add_argument("--json")
    args = ap.parse_args()

    if args.only:
        seeds = list(range(args.seeds))
        if args.only == "ebm_ppl":
            res = measure_ebm_ppl(args.model, seeds, args.temperatures or TEMPERATURES[args.model])
        elif args.only == "blackjax":
            res = measure_blackjax(args.model, seeds, args.budget, args.particles)
        else:
            res = [bdmc_check(k) for k in (1000, 3000)]
        _driver.emit_result(res)
        return

    _driver.header("evidence: ebm_ppl AIS vs BlackJAX adaptive tempered SMC vs PyMC SMC", _driver.load())
    have_pymc = os.path.exists(args.pymc_python)
    if not have_pymc:
        print(f"PyMC venv not found at {args.pymc_python}: PyMC skipped (see benchmarks/requirements-pymc.txt)")
    summary = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            import numpy as np

            d = make_data(name)
            exact = truth(name, d)
            path = os.path.join(tmp, f"{name}.npz")
            np.savez(path, **d)
            me = os.path.abspath(__file__)
            common = ["--model", name, "--seeds", str(args.seeds)]
            if args.temperatures:
                common += ["--temperatures", str(args.temperatures)]
            cache = {"EBM_PPL_COMPILE_CACHE": os.path.join(tmp, f"xla-{name}")}
            ours = _driver.run_peer(me, ["--only", "ebm_ppl", *common], cache)
            cached = _driver.run_peer(me, ["--only", "ebm_ppl", *common, "--seeds", "1"], cache)
            peers = {"ebm_ppl": ours,
                     "blackjax": _driver.run_peer(me, ["--only", "blackjax", *common, "--budget", str(ours["grads"]),
                                                       "--particles", str(args.particles)])}
            if have_pymc:
                peers["pymc"] = measure_pymc(name, list(range(args.seeds)), path, args.pymc_python)
            rows = {peer: {**summarize(res["runs"], exact), "grads": res["grads"]} for peer, res in peers.items()}
            rows["ebm_ppl"]["cached_cold"] = cached["runs"][0]["wall"]
            summary[name] = {"exact": exact, "peers": rows}
            print(f"\n{name}: exact log p(y) = {exact:.4f}; {args.seeds} seeds")
            print(f"  {'peer':<9} {'mean err':>9} {'spread':>8} {'RMSE':>8} {'cold s':>7} {'cached':>7} {'warm s':>7} "
                  f"{'grad evals':>11} {'RMSE / ours':>12} {'warm / ours':>12}")
            for peer, r in rows.items():
                cached_cold = f"{r['cached_cold']:>7.2f}" if "cached_cold" in r else f"{'-':>7}"
                print(f"  {peer:<9} {r['mean_error']:>+9.4f} {r['spread']:>8.4f} {r['rmse']:>8.4f} {r['cold']:>7.2f} "
                      f"{cached_cold} {r['warm']:>7.2f} {r['grads']:>11.3g} {r['rmse'] / rows['ebm_ppl']['rmse']:>12.2f} "
                      f"{r['warm'] / rows['ebm_ppl']['warm']:>12.2f}")
        sandwich = _driver.run_peer(os.path.abspath(__file__), ["--only", "bdmc"])
    summary["bdmc"] = sandwich
    print("\nBDMC on the 15-weight regression's simulated data (100 chains, one process, compilation included):")
    for r in sandwich:
        print(f"  {r['temperatures']:>6} temperatures: [{r['forward']:.4f}, {r['reverse']:.4f}], gap "
              f"{r['gap']:.4f} nats, {r['seconds']:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
