"""Denoising a binarized digit under bit-flip noise with a Bernoulli RBM prior, by NumPyro's
discrete Gibbs (HMC within Gibbs over an unknown flip rate).

    python examples/denoising.py --out runs/denoising          # full run
    python examples/denoising.py --out runs/denoising --smoke  # seconds, what CI runs

The model:

    rho ~ Beta(1, 9)                                   # the unknown flip probability
    x   ~ EnergyDistribution(rbm)                      # binary 64-pixel prior (free energy)
    y   ~ Bernoulli(x (1 - rho) + (1 - x) rho)         # each observed pixel flipped w.p. rho

``DiscreteHMCGibbs(NUTS(model))`` updates x one pixel at a time by exact Gibbs and rho by NUTS.
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
from numpyro.infer import MCMC, NUTS, DiscreteHMCGibbs

import ebm_ppl as ep

FLIP = 0.1


def train_prior(key, data, *, epochs: int, n_hidden: int = 20) -> ep.BernoulliRBM:
    base = ep.BernoulliRBM.base_rate(data.x_train, n_hidden)
    init = ep.BernoulliRBM(0.01 * jax.random.normal(key, (64, n_hidden)), base.b, base.c)
    model, _ = ep.fit(init, data.x_train, ep.training.pcd(k=1, num_chains=100), key=jax.random.fold_in(key, 1),
                      epochs=epochs, optimizer=optax.sgd(0.1, momentum=0.5))
    return model


def denoising_model(prior, y_obs=None):
    rho = numpyro.sample("rho", dist.Beta(1.0, 9.0))
    x = numpyro.sample("x", ep.numpyro.EnergyDistribution(prior))
    numpyro.sample("y", dist.Bernoulli(probs=x * (1 - rho) + (1 - x) * rho).to_event(1), obs=y_obs)


def run(out: str, *, smoke: bool, seed: int = 0) -> dict:
    os.makedirs(out, exist_ok=True)
    key = jax.random.key(seed)
    data = ep.data.digits(binarize=True)
    prior = train_prior(key, data, epochs=5 if smoke else 50)
    clean = jnp.asarray(data.x_test[3])
    flips = jax.random.bernoulli(jax.random.fold_in(key, 2), FLIP, clean.shape)
    noisy = jnp.where(flips, 1 - clean, clean)

    mcmc = MCMC(DiscreteHMCGibbs(NUTS(denoising_model)), num_warmup=200 if smoke else 1000,
                num_samples=300 if smoke else 2000, num_chains=2, chain_method="sequential", progress_bar=False)
    mcmc.run(jax.random.fold_in(key, 3), prior, noisy)
    samples = mcmc.get_samples(group_by_chain=True)
    x = np.asarray(samples["x"])
    posterior = x.mean((0, 1))
    denoised = (posterior > 0.5).astype(float)
    summary = {
        "flipped_pixels": int(flips.sum()),
        "noisy_errors": int(np.sum(np.asarray(noisy) != np.asarray(clean))),
        "denoised_errors": int(np.sum(denoised != np.asarray(clean))),
        "rho_posterior_mean": float(np.asarray(samples["rho"]).mean()),
        "rho_rhat": float(az.rhat(np.asarray(samples["rho"]))),
    }
    # ArviZ's sample_stats.lp is a log density per draw: here the prior's, -E(x) (Gibbs has no Hamiltonian)
    lp = -np.asarray(jax.vmap(jax.vmap(prior.unbatched_energy))(jnp.asarray(x)))
    idata = az.from_dict({"posterior": {"x": x, "rho": np.asarray(samples["rho"])},
                          "sample_stats": {"lp": lp}}, dims={"x": ["x_dim_0"]})
    ep.report(idata, os.path.join(out, "report.html"), title="Denoising posterior (DiscreteHMCGibbs)")
    _figure(np.asarray(clean), np.asarray(noisy), posterior, os.path.join(out, "denoising.png"))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def _figure(clean, noisy, posterior, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 2.4))
    FigureCanvasAgg(fig)
    for i, (title, img) in enumerate([("clean", clean), ("noisy", noisy), ("P(x=1 | y)", posterior)]):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.imshow(img.reshape(8, 8), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/denoising")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: fewer epochs and draws")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = run(args.out, smoke=args.smoke, seed=args.seed)
    print(json.dumps(summary, indent=2))
    print(f"report: {os.path.join(args.out, 'report.html')}  figure: {os.path.join(args.out, 'denoising.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
