"""PT-PCD against PCD and scikit-learn at equal wall time, on data with separated modes.

On the digits RBM of ``tempering.py`` block Gibbs mixes, so PT-PCD's extra rungs only cost. This
script trains where the modes are deep and far apart: ``--dim`` binary units, ``--prototypes``
random prototype patterns, each example a prototype with every bit flipped with probability
``--flip`` (1000 training and 1000 test examples, fixed seed). The data's own test
log-likelihood (the noisy-prototype mixture it was drawn from) is printed as the ceiling. Model: a
``--dim`` x ``--hidden`` Bernoulli RBM from ``init(key, D, M, data=x)``; every figure is the exact
mean test log-likelihood (``log_partition`` by enumeration).

Estimators, all with minibatches of 100, SGD, 100 persistent chains at beta = 1:

* ``PCD-1``: ``ep.training.pcd(1, 100)``;
* ``PT-PCD R``: ``ep.training.pt_pcd(1, 100, R)`` for each R of ``--replicas`` (R rungs of 100
  chains, the geometric ladder from beta = 0);
* ``scikit-learn`` (``BernoulliRBM(n_components=M, batch_size=100, learning_rate=lr)``, the same
  PCD-1 algorithm with 100 chains = the batch) given ``--sklearn-factor`` (10) times the budget.

Each estimator gets ``--seconds`` of training: its number of epochs is the budget over its warm
epoch time (a timed pilot of 30 epochs; scikit-learn's from a pilot fit), so the runs themselves
are not timed (a new optimizer compiles ``ep.fit`` again). Every estimator runs every learning
rate of ``--lrs`` for ``--seeds`` seeds (scikit-learn for ``--sklearn-seeds``: its runs are 10x as
long); the table gives mean +- standard error, and the summary compares each estimator's best
learning rate (a tuned comparison, not one shared setting).

    python benchmarks/pt_pcd_modes.py             # about 10 minutes
    python benchmarks/pt_pcd_modes.py --quick     # 2 seeds, 2 learning rates, a 0.3 s budget
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
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--prototypes", type=int, default=8)
    ap.add_argument("--flip", type=float, default=0.02)
    ap.add_argument("--seconds", type=float, default=3.0, help="training budget of each ebm_ppl run")
    ap.add_argument("--sklearn-factor", type=float, default=10.0, help="scikit-learn's budget, in budgets")
    ap.add_argument("--replicas", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--sklearn-seeds", type=int, default=3, help="its runs take 10x as long")
    a = ap.parse_args()
    if a.quick:
        a.seconds, a.seeds, a.sklearn_seeds, a.lrs = 0.3, 2, 2, [0.05, 0.2]

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from sklearn.neural_network import BernoulliRBM

    import ebm_ppl as ep

    load0 = drv.load()
    drv.header("pt_pcd_modes", load0, f"; {a.dim}x{a.hidden} RBM, {a.prototypes} prototypes, flip {a.flip}")
    rng = np.random.default_rng(0)
    prototypes = rng.integers(0, 2, (a.prototypes, a.dim))

    def draw(n):
        noise = rng.random((n, a.dim)) < a.flip
        return (prototypes[rng.integers(0, a.prototypes, n)] ^ noise).astype(np.float32)

    x_train, x_test = draw(1000), draw(1000)
    distance = (x_test[:, None, :] != prototypes[None]).sum(-1)
    log_p = distance * np.log(a.flip) + (a.dim - distance) * np.log1p(-a.flip) - np.log(a.prototypes)
    print(f"the data's own test LL (the ceiling): {np.mean(np.logaddexp.reduce(log_p, axis=1)):.3f}")

    def test_ll(model):
        return float(jnp.mean(-model.energy(x_test)) - model.log_partition())

    optimizers = {lr: optax.sgd(lr) for lr in a.lrs}  # one object per rate: ep.fit compiles once for each

    def fit(estimator, lr, epochs, seed):
        model = ep.BernoulliRBM.init(jax.random.key(seed), a.dim, a.hidden, data=x_train)
        return ep.fit(model, x_train, estimator, optimizer=optimizers[lr], epochs=epochs, batch_size=100,
                      key=jax.random.key(seed + 1000), metrics=False)[0]

    def epoch_seconds(estimator):
        fit(estimator, a.lrs[0], 30, 0)  # compile
        t0 = time.perf_counter()
        fit(estimator, a.lrs[0], 30, 0)
        return (time.perf_counter() - t0) / 30

    def sklearn_fit(lr, epochs, seed):
        rbm = BernoulliRBM(n_components=a.hidden, learning_rate=lr, batch_size=100, n_iter=epochs, random_state=seed)
        rbm.fit(x_train)
        return ep.BernoulliRBM(jnp.asarray(rbm.components_.T, jnp.float32), jnp.asarray(rbm.intercept_visible_, jnp.float32),
                               jnp.asarray(rbm.intercept_hidden_, jnp.float32))

    estimators = {"PCD-1": ep.training.pcd(1, 100), **{f"PT-PCD {r}": ep.training.pt_pcd(1, 100, r) for r in a.replicas}}
    runs = {}
    for name, estimator in estimators.items():
        per_epoch = epoch_seconds(estimator)
        runs[name] = (per_epoch, max(1, round(a.seconds / per_epoch)), a.seeds,
                      lambda lr, epochs, seed, estimator=estimator: fit(estimator, lr, epochs, seed))
    t0 = time.perf_counter()
    sklearn_fit(a.lrs[0], 20, 0)
    per_epoch = (time.perf_counter() - t0) / 20
    runs["scikit-learn"] = (per_epoch, max(1, round(a.sklearn_factor * a.seconds / per_epoch)), a.sklearn_seeds,
                            sklearn_fit)

    print(f"\n{'estimator':<13} {'ms/epoch':>8} {'epochs':>7} {'seconds':>7}  " +
          "  ".join(f"{'lr ' + str(lr):>15}" for lr in a.lrs), flush=True)
    best = {}
    for name, (per_epoch, epochs, seeds, train) in runs.items():
        cells = []
        for lr in a.lrs:
            values = np.array([test_ll(train(lr, epochs, seed)) for seed in range(seeds)])
            mean, se = values.mean(), values.std(ddof=1) / np.sqrt(len(values))
            cells.append(f"{mean:8.3f} +- {se:.3f}")
            if name not in best or mean > best[name][0]:
                best[name] = (mean, se, lr)
        print(f"{name:<13} {1e3 * per_epoch:8.2f} {epochs:7d} {per_epoch * epochs:7.1f}  " + "  ".join(cells), flush=True)

    print("\nbest learning rate of each (mean +- s.e. over seeds):")
    for name, (mean, se, lr) in best.items():
        print(f"  {name:<13} {mean:8.3f} +- {se:.3f}  (lr {lr})")
    top = max((n for n in best if n.startswith("PT-PCD")), key=lambda n: best[n][0])
    for other in ("PCD-1", "scikit-learn"):
        gap = best[top][0] - best[other][0]
        se = float(np.hypot(best[top][1], best[other][1]))
        print(f"{top} - {other}: {gap:+.3f} +- {se:.3f} nats ({gap / se:+.1f} s.e.)")
    print(f"# load {load0:.2f} -> {drv.load():.2f}; {drv.machine()[0]}")


if __name__ == "__main__":
    main()
