"""Centered RBM training: ebm_ppl (plain and ``ep.training.centered``) against the PyTorch ``rbms`` package.

The same model and data in every peer: a Bernoulli RBM with ``--hidden`` hidden units on the
binarized digits (``v >= 8``; the first 1000 images of scikit-learn's order for training, the last
447 for testing, as ``ep.data.digits``), PCD-``--k`` with ``--chains`` persistent chains, minibatches
of ``--batch`` drawn from a fresh permutation every epoch, SGD with learning rate ``--lr`` for
``--epochs`` epochs. The test figure is the exact mean log-likelihood of the 447 test images, by
``ep.log_partition`` for every peer (the ``rbms`` model is rebuilt from its weight matrix and
biases), so the peers differ only in how they train.

Peers (each in its own process; seeds 0 .. rounds-1, order alternating):

* ``ep_plain``: ``ep.fit(ep.BernoulliRBM.init(key, 64, M, data=x), x, ep.training.pcd(k, chains),
  optimizer=optax.sgd(lr), epochs=E, batch_size=B, metrics=False)``;
* ``ep_centered``: the same with ``ep.training.centered(pcd, rate=--rate)`` (offsets moved
  towards each batch's means; Melchior et al. 2016);
* ``rbms`` (``--torch-python``, a venv with ``pip install rbms``, see requirements-torch.txt): its
  ``BBRBM.init_parameters`` (weights N(0, 1e-4), visible biases from the data), chains started
  as its ``init_chains`` does, then per minibatch its own ``fit_batch_pcd`` (centered gradient,
  offsets the batch's means, and the gradient normalized to unit norm, as its ``train`` loop does)
  and ``torch.optim.SGD(lr, maximize=True)``.

Reported: test log-likelihood per seed and mean +- standard error, and the time of the training
loop per epoch (not a like-for-like speed comparison: the rbms loop is Python per minibatch,
ebm_ppl's epochs run fused; ``benchmarks/rbm_training.py`` is the timing benchmark).

    python benchmarks/centering_vs_rbms.py                      # 3 seeds x 1000 epochs, ~2 min
    python benchmarks/centering_vs_rbms.py --quick              # 1 seed, 100 epochs
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # noqa: E402  benchmarks/ is not a package: import from this folder

PEERS = ("ep_plain", "ep_centered", "rbms")
TORCH_PYTHON = "/tmp/torchvenv/bin/python"


def binarized_digits():
    """(x_train (1000, 64), x_test (447, 64)) as float32 0/1, scikit-learn's order."""
    import numpy as np
    from sklearn.datasets import load_digits

    x = (load_digits().data >= 8).astype(np.float32)
    return x[:1000], x[1350:]


def measure_ep(a) -> dict:
    import jax
    import numpy as np
    import optax

    import ebm_ppl as ep

    x_train, _ = binarized_digits()
    estimator = ep.training.pcd(k=a.k, num_chains=a.chains)
    if a.only == "ep_centered":
        estimator = ep.training.centered(estimator, rate=a.rate)
    rbm = ep.BernoulliRBM.init(jax.random.key(a.seed), 64, a.hidden, data=x_train)
    settings = dict(key=jax.random.key(a.seed + 1000), optimizer=optax.sgd(a.lr), batch_size=a.batch,
                    metrics=False)
    ep.fit(rbm, x_train, estimator, epochs=1, **settings)  # compile outside the timed call
    start = time.perf_counter()
    trained, _ = ep.fit(rbm, x_train, estimator, epochs=a.epochs, **settings)
    jax.block_until_ready(trained.W)
    seconds = time.perf_counter() - start
    return {"W": np.asarray(trained.W).tolist(), "b": np.asarray(trained.b).tolist(),
            "c": np.asarray(trained.c).tolist(), "epoch_s": seconds / a.epochs}


def measure_rbms(a) -> dict:
    import torch
    from rbms.bernoulli_bernoulli.classes import BBRBM
    from rbms.training.pcd import fit_batch_pcd

    torch.manual_seed(a.seed)
    x_train, _ = binarized_digits()
    data = torch.from_numpy(x_train)

    class Dataset:  # what BBRBM.init_parameters reads
        pass

    dataset = Dataset()
    dataset.data = data
    params = BBRBM.init_parameters(num_hiddens=a.hidden, dataset=dataset, device=torch.device("cpu"),
                                   dtype=torch.float32)
    params.init_grad()
    chains = params.init_chains(num_samples=a.chains)
    optimizer = torch.optim.SGD(params.parameters(), lr=a.lr, maximize=True)
    ones = torch.ones(a.batch)
    n = data.shape[0]
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(a.epochs):
            perm = torch.randperm(n)
            for i in range(n // a.batch):
                idx = perm[i * a.batch:(i + 1) * a.batch]
                optimizer.zero_grad(set_to_none=False)
                chains, _ = fit_batch_pcd((data[idx], ones), chains, params, gibbs_steps=a.k, beta=1.0,
                                          centered=True)
                optimizer.step()
    seconds = time.perf_counter() - start
    return {"W": params.weight_matrix.tolist(), "b": params.vbias.tolist(), "c": params.hbias.tolist(),
            "epoch_s": seconds / a.epochs, "versions": {"torch": torch.__version__}}


def measure_one(a) -> dict:
    return measure_rbms(a) if a.only == "rbms" else measure_ep(a)


def test_log_likelihood(res: dict) -> float:
    import numpy as np

    import ebm_ppl as ep

    _, x_test = binarized_digits()
    rbm = ep.BernoulliRBM(np.asarray(res["W"], np.float32), np.asarray(res["b"], np.float32),
                          np.asarray(res["c"], np.float32))
    return float(np.mean(ep.log_likelihood(rbm, x_test, ep.log_partition(rbm))))


def drive(a) -> dict:
    if a.quick:
        a.epochs = min(a.epochs, 100)
    rounds = drv.rounds_for(a)
    load0 = drv.load()
    drv.header("centering_vs_rbms", load0, f"; 64x{a.hidden} BBRBM, {a.epochs} epochs PCD-{a.k}, batch {a.batch}, "
                                           f"{a.chains} chains, lr {a.lr}, centering rate {a.rate}")
    common = ["--epochs", str(a.epochs), "--hidden", str(a.hidden), "--k", str(a.k), "--chains", str(a.chains),
              "--batch", str(a.batch), "--lr", str(a.lr), "--rate", str(a.rate)]
    lls = {p: [] for p in PEERS}
    epoch_s = {p: [] for p in PEERS}
    for r in range(rounds):
        for p in drv.round_order(PEERS, r):
            args_list = ["--only", p, "--seed", str(r)] + common
            if p == "rbms":
                res = drv.run_peer_with(a.torch_python, __file__, args_list)
            else:
                res = drv.run_peer(__file__, args_list)
            lls[p].append(test_log_likelihood(res))
            epoch_s[p].append(res["epoch_s"])
            print(f"  seed {r} {p:12s} test LL {lls[p][-1]:8.3f}  epoch {res['epoch_s'] * 1e3:7.2f} ms", flush=True)
    S = {"date": drv.today(), "rounds": rounds, "load_start": load0, "load_end": drv.load(),
         "machine": drv.machine(), "cores": drv.cores(), "settings": vars(a).copy(), "test_ll": lls, "epoch_s": epoch_s}
    print(f"\n# results {S['date']}, load {load0:.2f} -> {S['load_end']:.2f}; {rounds} seed(s); "
          f"{S['cores']} cores; {drv.machine()[0]}")
    for p in PEERS:
        mean = statistics.fmean(lls[p])
        se = statistics.stdev(lls[p]) / len(lls[p]) ** 0.5 if len(lls[p]) > 1 else float("nan")
        print(f"{p:12s} exact test LL {mean:8.3f} +- {se:.3f} (s.e.)  {[round(v, 3) for v in lls[p]]}   "
              f"epoch {drv.med(epoch_s[p]) * 1e3:7.2f} ms")
    return S


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 100 epochs")
    ap.add_argument("--only", choices=PEERS)
    ap.add_argument("--rounds", type=int, default=3, help="seeds 0 .. rounds - 1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=20)
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--chains", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--rate", type=float, default=1.0, help="ebm_ppl's centering rate (its default)")
    ap.add_argument("--torch-python", default=TORCH_PYTHON)
    ap.add_argument("--json")
    drv.dispatch(ap.parse_args(argv), measure_one, drive)


if __name__ == "__main__":
    main()
