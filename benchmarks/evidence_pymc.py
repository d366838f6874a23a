"""PyMC peer of the evidence benchmark: log marginal likelihood by PyMC's Sequential Monte Carlo.

One measurement per process, like every peer in this folder: build one model in PyMC on the
arrays of an ``.npz``, run ``pm.sample_smc(draws=N, chains=1, random_seed=S, progressbar=False,
compute_convergence_checks=False)`` (the default IMH kernel, ``threshold=0.5``), and print one line
``RESULT {json}`` with

* ``log_z``: SMC's estimate of log p(y) (the product over stages of the mean incremental weight);
* ``wall_time``: seconds of the ``sample_smc`` call alone. This INCLUDES compiling the model's
  log-density functions (PyMC compiles them inside ``sample_smc``, when it builds the kernel), so
  it is not a warm time;
* ``compile_and_total_time``: seconds from the start of model construction to the extracted result;
* ``pymc_version``, plus ``pytensor_version``, ``backend`` (the PyTensor linker that compiled the
  model), ``n_stages`` (SMC tempering stages), ``draws`` and ``seed``.

Models (``--model``; npz keys must match):

* ``normal_mean``: ``y`` (n,). mu ~ Normal(0, 2); y_i ~ Normal(mu, 1).
* ``beta_binomial``: ``n``, ``k`` (scalar ints). p ~ Beta(2, 3); k ~ Binomial(n, p).
* ``linear_regression``: ``X`` (N, D), ``y`` (N,). w ~ Normal(0, 1) shape D; y ~ Normal(X @ w, 0.5).
* ``half_normal_scale``: ``y`` (n,). sigma ~ HalfNormal(1); y_i ~ Normal(0, sigma).
* ``quadratic_regression``: ``x``, ``y`` (N,). a, b, c ~ Normal(0, 1); y ~ Normal(a + b x + c x^2, 0.3).
* ``linear_1d``: ``x``, ``y`` (N,). a, b ~ Normal(0, 1); y ~ Normal(a + b x, 0.3).

The separate, benchmark-only venv (PyMC is never a dependency of ebm_ppl; its numpy/scipy pins
must not touch the package's venv). Python 3.12 (pyenv's, on this machine; 3.11 works too):

    /root/.pyenv/versions/3.12.1/bin/python -m venv /tmp/pymcvenv
    /tmp/pymcvenv/bin/pip install -r benchmarks/requirements-pymc.txt
    /tmp/pymcvenv/bin/python benchmarks/evidence_pymc.py --data d.npz --model normal_mean --seed 0

Compiler / backend note. PyTensor 3.x (PyMC 6) compiles with **numba** by default
(``config.linker = "auto"`` resolves to numba; numba and llvmlite are installed with pytensor), not
with the C compiler: ``g++`` is only used by ``--backend c`` (PyTensor's C VM, which on a pip
install also warns that it found no BLAS to link). Compiled code is cached on disk (PyTensor's
compiledir under ``~/.pytensor`` and numba's cache), so the first run of a model on a machine is
slower than later ones, and its ``wall_time`` includes that: 2.2-4.1 s first runs against 1.3-1.5 s
later ones for the models below (2000 draws). With ``--backend c`` and no C compiler on the
machine PyTensor falls back to Python (``PYTENSOR_FLAGS=cxx=`` forces that), which is far slower;
on this machine ``/usr/bin/g++`` exists, and ``c`` and ``numba`` give the same ``log_z`` for the same
seed. ``--backend`` is passed to ``sample_smc``'s ``backend=``; leaving it out keeps PyMC's default.

Checked against exact log evidences (pymc 6.4.0, 2000 draws, seed 0 and 1, "Intel(R) Xeon(R)
Processor", 2 shared cores): absolute errors 0.001-0.09 nats, 10 of the 12 estimates above
the exact value (normal_mean 20 points, beta_binomial n=30, linear_regression N=50 D=3,
half_normal_scale 25 points, quadratic_regression and linear_1d N=30); the seed-to-seed spread is
of the same size.

benchmarks/ is not a package: this script puts its own folder on ``sys.path`` and imports
``_driver`` (standard library only) for the ``RESULT`` line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # benchmarks/ is not a package: import from this folder

MODELS = ("normal_mean", "beta_binomial", "linear_regression", "half_normal_scale",
          "quadratic_regression", "linear_1d")


def build_model(name: str, data):
    """The PyMC model ``name`` on the arrays of the loaded npz ``data``."""
    import numpy as np
    import pymc as pm

    with pm.Model() as model:
        if name == "normal_mean":
            y = np.asarray(data["y"], dtype=float)
            mu = pm.Normal("mu", 0.0, 2.0)
            pm.Normal("y", mu, 1.0, observed=y)
        elif name == "beta_binomial":
            n, k = int(data["n"]), int(data["k"])
            p = pm.Beta("p", 2.0, 3.0)
            pm.Binomial("k", n=n, p=p, observed=k)
        elif name == "linear_regression":
            X = np.asarray(data["X"], dtype=float)
            y = np.asarray(data["y"], dtype=float)
            w = pm.Normal("w", 0.0, 1.0, shape=X.shape[1])
            pm.Normal("y", pm.math.dot(X, w), 0.5, observed=y)
        elif name == "half_normal_scale":
            y = np.asarray(data["y"], dtype=float)
            sigma = pm.HalfNormal("sigma", 1.0)
            pm.Normal("y", 0.0, sigma, observed=y)
        elif name == "quadratic_regression":
            x = np.asarray(data["x"], dtype=float)
            y = np.asarray(data["y"], dtype=float)
            a = pm.Normal("a", 0.0, 1.0)
            b = pm.Normal("b", 0.0, 1.0)
            c = pm.Normal("c", 0.0, 1.0)
            pm.Normal("y", a + b * x + c * x**2, 0.3, observed=y)
        elif name == "linear_1d":
            x = np.asarray(data["x"], dtype=float)
            y = np.asarray(data["y"], dtype=float)
            a = pm.Normal("a", 0.0, 1.0)
            b = pm.Normal("b", 0.0, 1.0)
            pm.Normal("y", a + b * x, 0.3, observed=y)
        else:
            raise ValueError(f"unknown model {name!r}; one of {', '.join(MODELS)}")
    return model


def final_log_z(idata) -> tuple[float, int]:
    """``(log Z, number of stages)`` of chain 0 from ``sample_smc``'s result.

    PyMC (6.4) records ``log_marginal_likelihood`` once per SMC stage: NaN at every stage whose
    beta is below 1 and the running estimate at the last stage (beta = 1). How it is stored
    depends on the number of chains:

    * ``chains=1`` (what this script runs): a 1-d float array over the STAGES, but labelled with
      the dimension ``chain`` (PyMC hands the per-stage list to ``dict_to_dataset`` with
      ``sample_dims=["chain"]``), e.g. ``chain: 3`` = ``[nan, nan, -27.87]``. Taking
      ``values[0]`` as "chain 0" would give the first stage's NaN;
    * ``chains>1``: an object array with one per-chain list of stage values (lists of different
      lengths when the chains took different numbers of stages), or a 2-d (chain, stage) array.

    So: chain 0's stages, and their last finite value."""
    import numpy as np

    values = np.asarray(idata["sample_stats"]["log_marginal_likelihood"].values)
    if values.dtype == object or values.ndim >= 2:
        chain0 = values[0]  # one entry per chain
    else:
        chain0 = values  # chains=1: the axis labelled "chain" is the stage axis
    stages = np.asarray(list(np.ravel(np.asarray(chain0, dtype=object))), dtype=float)
    if stages.size == 0 or not np.isfinite(stages[-1]):
        raise RuntimeError(f"no final finite log_marginal_likelihood in sample_stats: {stages}")
    return float(stages[-1]), int(stages.size)


def measure(args) -> dict:
    import numpy as np
    import pymc as pm
    import pytensor

    with np.load(args.data) as f:
        data = {key: f[key] for key in f.files}
    t0 = time.perf_counter()
    model = build_model(args.model, data)
    with model:
        t1 = time.perf_counter()
        idata = pm.sample_smc(draws=args.draws, chains=1, random_seed=args.seed,
                              progressbar=False, compute_convergence_checks=False,
                              backend=args.backend)
        t2 = time.perf_counter()
    log_z, n_stages = final_log_z(idata)
    t3 = time.perf_counter()
    backend = args.backend or f"default (linker {pytensor.config.linker}: numba when 'auto')"
    return {"log_z": log_z, "wall_time": t2 - t1, "compile_and_total_time": t3 - t0,
            "pymc_version": pm.__version__, "pytensor_version": pytensor.__version__,
            "backend": backend, "n_stages": n_stages, "draws": args.draws, "seed": args.seed,
            "model": args.model}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help=".npz with the model's arrays")
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--draws", type=int, default=2000, help="SMC particles (default 2000)")
    p.add_argument("--backend", default=None, choices=("numba", "c"),
                   help="PyTensor backend for sample_smc (default: PyMC's, i.e. numba)")
    args = p.parse_args(argv)
    drv.emit_result(measure(args))


if __name__ == "__main__":
    main()
