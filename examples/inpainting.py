"""Bayesian inpainting of a half-masked digit with a Gaussian-Bernoulli RBM prior, by NumPyro NUTS.

    python examples/inpainting.py --out runs/inpainting          # full run (about a minute)
    python examples/inpainting.py --out runs/inpainting --smoke  # seconds, what CI runs

1. Train a Gaussian-Bernoulli RBM on the digits scaled to [-1, 1] (persistent CD, ep.fit).
2. Hide the bottom half of a test digit. The model is

       x ~ EnergyDistribution(rbm)                      # the RBM's free energy as the prior
       y ~ Normal(x[observed], 0.05)                    # the visible top half

   and NUTS draws x | y: the observed pixels stay at the data, the hidden ones are filled in
   with the prior's uncertainty.
3. Write the ebm_ppl diagnostics report of NumPyro's run (arviz.from_numpyro) and a figure (truth, masked input, posterior mean and sd).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.infer import MCMC, NUTS

import ebm_ppl as ep

NOISE = 0.05  # std of the observation model on the visible pixels


def train_prior(key, data, *, epochs: int, n_hidden: int = 16) -> ep.GaussianBernoulliRBM:
    """A Gaussian-Bernoulli RBM with fixed sigma = 0.4, trained by PCD-1."""
    init = ep.GaussianBernoulliRBM(0.01 * jax.random.normal(key, (64, n_hidden)), data.x_train.mean(0),
                                   jnp.zeros(n_hidden), 0.4 * jnp.ones(64))
    model, _ = ep.fit(init, data.x_train, ep.training.pcd(k=1, num_chains=100), key=jax.random.fold_in(key, 1),
                      epochs=epochs, optimizer=optax.adam(3e-3))
    return model


def inpainting_model(prior, observed_index, y_obs=None):
    x = numpyro.sample("x", ep.numpyro.EnergyDistribution(prior))
    numpyro.sample("y", dist.Normal(x[observed_index], NOISE).to_event(1), obs=y_obs)


def run(out: str, *, smoke: bool, seed: int = 0) -> dict:
    os.makedirs(out, exist_ok=True)
    key = jax.random.key(seed)
    data = ep.data.digits()
    prior = train_prior(key, data, epochs=5 if smoke else 40)

    truth = jnp.asarray(data.x_test[0])
    observed_index = jnp.arange(32)  # the top four rows of the 8x8 image
    y_obs = truth[observed_index]
    mcmc = MCMC(NUTS(inpainting_model), num_warmup=500, num_samples=1000 if smoke else 2000,
                num_chains=4, chain_method="vectorized", progress_bar=False)
    # the fields ArviZ turns into sample_stats: lp (the log joint), energy (the Hamiltonian, for
    # BFMI), diverging, acceptance_rate, step_size, n_steps and tree_depth
    mcmc.run(jax.random.fold_in(key, 2), prior, observed_index, y_obs, extra_fields=(
        "diverging", "potential_energy", "energy", "accept_prob", "num_steps", "adapt_state.step_size"))
    x = np.asarray(mcmc.get_samples(group_by_chain=True)["x"])  # (chain, draw, 64)
    idata = az.from_numpyro(mcmc)  # ep.diagnose and ep.report read NumPyro's data as they are
    diverging = idata.sample_stats["diverging"].values

    post_mean, post_sd = x.mean((0, 1)), x.std((0, 1))
    summary = {
        "max_rhat": float(np.nanmax(az.rhat(idata)["x"].values)),
        "min_ess_bulk": float(np.nanmin(az.ess(idata)["x"].values)),
        "divergences": int(diverging.sum()),
        "observed_max_abs_error": float(np.max(np.abs(post_mean[:32] - np.asarray(y_obs)))),
        "hidden_rmse": float(np.sqrt(np.mean((post_mean[32:] - np.asarray(truth[32:])) ** 2))),
        "hidden_rmse_of_pixel_means": float(np.sqrt(np.mean((data.x_train.mean(0)[32:] - np.asarray(truth[32:])) ** 2))),
        "hidden_mean_sd": float(post_sd[32:].mean()),
    }
    ep.report(idata, os.path.join(out, "report.html"), title="Inpainting posterior (NUTS)")
    _figure(np.asarray(truth), post_mean, post_sd, os.path.join(out, "inpainting.png"))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def _figure(truth, mean, sd, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    masked = truth.copy()
    masked[32:] = np.nan
    fig = Figure(figsize=(8, 2.4))
    FigureCanvasAgg(fig)
    for i, (title, img, cmap) in enumerate([("truth", truth, "gray"), ("observed", masked, "gray"),
                                            ("posterior mean", mean, "gray"), ("posterior sd", sd, "magma")]):
        ax = fig.add_subplot(1, 4, i + 1)
        ax.imshow(img.reshape(8, 8), cmap=cmap, vmin=None if cmap == "magma" else -1, vmax=None if cmap == "magma" else 1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/inpainting")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: fewer epochs and draws")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = run(args.out, smoke=args.smoke, seed=args.seed)
    print(json.dumps(summary, indent=2))
    print(f"report: {os.path.join(args.out, 'report.html')}  figure: {os.path.join(args.out, 'inpainting.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
