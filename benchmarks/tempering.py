"""Parallel tempering on a trained digits RBM: sampling against block Gibbs, PT-PCD against PCD.

The model: a 64x20 Bernoulli RBM trained on the binarized digits (first 1000 images, ``v >= 8``)
with PCD-1 (100 chains, batch 100, ``optax.sgd(0.05)``, ``--epochs`` epochs from
``init(data=x)``); exact log Z by enumerating 2^20 hidden states.

(a) Sampling at equal wall time. ``ep.sample(kernel="block_gibbs")`` and
    ``ep.sample(kernel="parallel_tempering", num_replicas=--replicas)``, 16 chains each, every
    chain started from the same all-zeros image; each sampler's number of draws is set from a
    timed pilot so that both take about ``--seconds``. Reported: draws, seconds, the bulk ESS of
    ``lp`` (the free energy of the draws) per second, and mode coverage: a logistic regression
    trained on the labelled training images classifies every draw, and the table gives the mean
    number of digit classes each chain visits and the total variation between the draws' class
    histogram and the training images'.
(b) Training at equal wall time. PCD-1 (``ep.training.pcd(1, 100)``) for ``--train-epochs``
    epochs, timed; PT-PCD (``ep.training.pt_pcd(1, 100, --replicas)``) for as many epochs as fit
    in the same seconds (from a timed pilot). Reported: exact test log-likelihood of each (447
    held-out images) and PT-PCD's live estimate of it at its last epoch.

    python benchmarks/tempering.py               # about 3 minutes
    python benchmarks/tempering.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # noqa: E402  benchmarks/ is not a package: import from this folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=1000, help="training epochs of the sampled model")
    ap.add_argument("--seconds", type=float, default=20.0, help="wall time of each sampler")
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--train-epochs", type=int, default=1000, help="PCD epochs in (b)")
    a = ap.parse_args()
    if a.quick:
        a.epochs, a.seconds, a.train_epochs = 100, 4.0, 20

    import jax
    import jax.numpy as jnp
    import numpy as np
    import arviz as az
    import optax
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    import ebm_ppl as ep

    load0 = drv.load()
    drv.header("tempering", load0, f"; 64x20 RBM, {a.epochs} epochs; {a.replicas} replicas")
    digits = load_digits()
    x = (digits.data >= 8).astype(np.float32)
    x_train, y_train, x_test = x[:1000], digits.target[:1000], x[1350:]
    classifier = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    data_hist = np.bincount(y_train, minlength=10) / len(y_train)

    sgd = optax.sgd(0.05)  # one object: a new one per call would compile fit's program again

    def train(estimator, epochs, key=1, model=None):
        model = ep.BernoulliRBM.init(jax.random.key(0), 64, 20, data=x_train) if model is None else model
        return ep.fit(model, x_train, estimator, optimizer=sgd, epochs=epochs, batch_size=100,
                      key=jax.random.key(key), metrics=False)

    rbm, _ = train(ep.training.pcd(1, 100), a.epochs)
    log_z = float(rbm.log_partition())
    print(f"model: exact log Z {log_z:.3f}, test LL {float(jnp.mean(-rbm.energy(x_test))) - log_z:.3f}")

    # (a) sampling at equal wall time
    chains = 16
    start = jnp.zeros(64)
    kernels = {"block_gibbs": {}, "parallel_tempering": {"num_replicas": a.replicas}}

    def run(name, draws, seed):
        t0 = time.perf_counter()
        data = ep.sample(jax.random.key(seed), rbm, name, num_chains=chains, num_warmup=100, num_samples=draws,
                         init=start, **kernels[name])
        return data, time.perf_counter() - t0

    print(f"\n(a) sampling, {chains} chains from the all-zeros image, about {a.seconds:.0f} s each")
    print(f"{'kernel':<19} {'draws':>7} {'s':>6} {'ESS(lp)/s':>10} {'classes/chain':>14} {'TV(classes)':>12}")
    for name in kernels:
        run(name, 1000, 0)  # compile
        _, pilot = run(name, 1000, 1)
        draws = max(200, int(1000 * a.seconds / pilot))
        run(name, draws, 3)  # the number of draws is static: compile again, then time
        data, seconds = run(name, draws, 2)
        ess = float(az.ess(data, var_names=["lp"], group="sample_stats")["lp"])
        images = data.posterior.x.values.reshape(-1, 64)
        labels = classifier.predict(images).reshape(chains, draws)
        per_chain = np.mean([len(np.unique(row)) for row in labels])
        tv = 0.5 * np.abs(np.bincount(labels.ravel(), minlength=10) / labels.size - data_hist).sum()
        print(f"{name:<19} {draws:>7} {seconds:6.1f} {ess / seconds:10.1f} {per_chain:14.2f} {tv:12.3f}", flush=True)

    # (b) PT-PCD against PCD at equal wall time
    print(f"\n(b) training at equal wall time: PCD-1 for {a.train_epochs} epochs against PT-PCD ({a.replicas} rungs)")
    train(ep.training.pcd(1, 100), a.train_epochs)  # compile (the epoch count is a static setting)
    t0 = time.perf_counter()
    pcd_model, _ = train(ep.training.pcd(1, 100), a.train_epochs)
    pcd_seconds = time.perf_counter() - t0
    pt = ep.training.pt_pcd(1, 100, a.replicas)
    train(pt, 20)  # compile
    t0 = time.perf_counter()
    train(pt, 20)
    per_epoch = (time.perf_counter() - t0) / 20
    pt_epochs = max(1, int(pcd_seconds / per_epoch))
    train(pt, pt_epochs)  # compile
    t0 = time.perf_counter()
    pt_model, history = train(pt, pt_epochs)
    pt_seconds = time.perf_counter() - t0
    print(f"epoch: PCD-1 {1e3 * pcd_seconds / a.train_epochs:.2f} ms, PT-PCD {1e3 * per_epoch:.2f} ms")
    for name, model, epochs, seconds in (("PCD-1", pcd_model, a.train_epochs, pcd_seconds),
                                         ("PT-PCD", pt_model, pt_epochs, pt_seconds)):
        ll = float(jnp.mean(-model.energy(x_test))) - float(model.log_partition())
        print(f"{name:<7} {epochs:>5} epochs {seconds:6.1f} s   exact test LL {ll:.3f}")
    live = history.records[-1].get("train_pt_log_partition")
    if live is not None:
        print(f"PT-PCD's live log Z at its last epoch {live:.3f} (exact at the end {float(pt_model.log_partition()):.3f})")
    print(f"# load {load0:.2f} -> {drv.load():.2f}; {drv.machine()[0]}")


if __name__ == "__main__":
    main()
