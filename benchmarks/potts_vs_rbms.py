"""Potts RBM on the gray-level digits: ebm_ppl against the PyTorch ``rbms`` package (``PBRBM``).

The same model and data in every Potts peer: a Potts(64 sites, q = ``--q``)-Bernoulli(``--hidden``)
RBM on the digits cut into q gray levels (``ep.data.digits(levels=q)``: ``floor(v * q / 17)`` of
the pixel values 0..16; the first 1000 images of scikit-learn's order for training, the last 447
for testing), PCD-``--k`` with ``--chains`` persistent chains, minibatches of ``--batch`` drawn
from a fresh permutation every epoch, SGD with learning rate ``--lr`` for ``--epochs`` epochs.
Every trained model is scored in the driver with ebm_ppl's exact test log-likelihood
(``ep.log_partition``, 2^16 hidden states), the ``rbms`` model rebuilt from its parameters, so
the peers differ only in how they train.

The parameter mapping is exact, no sign or gauge change: ``rbms``' energy is
``E(v, h) = -sum_i vbias[i, v_i] - hbias . h - sum_i sum_m weight_matrix[i, v_i, m] h_m`` with
``v_i`` in 0..q-1, and ``ep.RBM(ep.layers.Potts(vbias), ep.layers.Binary(hbias), weight_matrix)``
has the same ``E(x, h) = E_v(x) + E_h(h) - one_hot(x) W h`` (``--check-mapping`` verifies it on a
random model: joint and free energies, and both libraries' exact log Z).

Peers (each in its own process; seeds 0 .. rounds-1, order alternating):

* ``ep_potts``: ``ep.fit(ep.RBM.init(key, ep.layers.Potts.standard(64, num_categories=q),
  ep.layers.Binary.standard(M), data=x), x, ep.training.pcd(k, chains), optimizer=optax.sgd(lr),
  epochs=E, batch_size=B, metrics=False)`` (W ~ N(0, 0.01^2), visible fields the data's log
  frequencies with one pseudo count, no gauge imposed);
* ``ep_potts_centered``: the same with ``ep.training.centered(pcd, rate=--rate)``;
* ``rbms_potts`` (``--torch-python``, a venv with ``pip install rbms``, see requirements-torch.txt):
  ``PBRBM.init_parameters`` (weights N(0, 1e-4^2), visible fields the data's log frequencies in
  the zero-sum gauge), chains started as its ``init_chains`` does (uniform states), then per
  minibatch its own ``fit_batch_pcd`` (centered gradient, offsets the batch's means, normalized
  to unit norm), ``torch.optim.SGD(lr, maximize=True)`` and ``ensure_zero_sum_gauge``, as its
  ``train`` loop does for a PBRBM. The process also computes ``rbms``' exact log Z (its
  ``compute_partition_function`` over the 2^16 hidden states) and its AIS log Z
  (``compute_partition_function_ais``: uniform base, linear schedule of ``--ais-temps`` steps,
  ``--ais-chains`` chains, ``--ais-runs`` runs) of the trained model. ``--rbms-variant`` runs
  ablations of it: ``uncentered`` (its plain gradient, still normalized), ``unnormalized`` (centered,
  not normalized), ``ep_init`` (ebm_ppl's initialization);
* ``ep_bernoulli``: ``ep.BernoulliRBM.init(key, 64, M, data=x)`` with plain PCD on the binarized
  digits (``ep.data.digits(binarize=True)``, ``v >= 8``), for the bits per pixel.

In the driver, for every Potts model: exact log Z, ``ep.ais`` from the uniform base with the same
linear schedule and chains as ``rbms``' AIS, and ``ep.ais`` with its defaults (base: W = 0, hidden
biases 0, the model's own visible fields kept; schedule denser near beta = 1). ``rbms``' AIS runs
only on its own trained model (so both libraries' AIS see that same model).

Bits per pixel are ``-LL / (64 ln 2)`` on each model's own data: 4 gray levels carry up to 2 bits
per pixel, binary pixels up to 1, so the two figures are not of the same data. The
independent-pixels model (per-pixel frequencies of the training set, one pseudo count) is
printed beside them as a reference.

Epoch times: ebm_ppl's ``fit`` runs the epochs fused (a call of E epochs after a 1-epoch call that
compiles), ``rbms`` is a Python loop per minibatch; torch runs with ``--torch-threads`` threads
(default 1: on 2 cores shared with other jobs, torch's 2-thread pool spins and ran this loop 40x
slower, 889 ms against 23 ms per epoch at load 4.7).

    python benchmarks/potts_vs_rbms.py                  # 2 seeds x 1000 epochs, ~2.5 min
    python benchmarks/potts_vs_rbms.py --quick          # 1 seed, 30 epochs, < 1 min
    python benchmarks/potts_vs_rbms.py --check-mapping  # the rbms -> ebm_ppl mapping on a random model
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # benchmarks/ is not a package: import from this folder

PEERS = ("ep_potts", "ep_potts_centered", "rbms_potts", "ep_bernoulli")
POTTS_PEERS = PEERS[:3]
TORCH_PYTHON = "/tmp/torchvenv/bin/python"
N_VISIBLE = 64


# ------------------------------------------------------------------------------------------------
# data (both venvs: no ebm_ppl import here, the driver checks the equality with ep.data.digits)


def quantized_digits(q: int):
    """(x_train (1000, 64), x_test (447, 64)) float32 gray levels ``floor(v * q / 17)``."""
    import numpy as np
    from sklearn.datasets import load_digits

    x = np.floor(load_digits().data * q / 17).astype(np.float32)
    return x[:1000], x[1350:]


def binarized_digits():
    import numpy as np
    from sklearn.datasets import load_digits

    x = (load_digits().data >= 8).astype(np.float32)
    return x[:1000], x[1350:]


# ------------------------------------------------------------------------------------------------
# peers


def measure_ep(a) -> dict:
    import jax
    import numpy as np
    import optax

    import ebm_ppl as ep

    estimator = ep.training.pcd(k=a.k, num_chains=a.chains)
    if a.only == "ep_potts_centered":
        estimator = ep.training.centered(estimator, rate=a.rate)
    if a.only == "ep_bernoulli":
        x_train = ep.data.digits(binarize=True).x_train
        model = ep.BernoulliRBM.init(jax.random.key(a.seed), N_VISIBLE, a.hidden, data=x_train)
    else:
        x_train = ep.data.digits(levels=a.q).x_train
        model = ep.RBM.init(jax.random.key(a.seed), ep.layers.Potts.standard(N_VISIBLE, num_categories=a.q),
                            ep.layers.Binary.standard(a.hidden), data=x_train)
    settings = {"key": jax.random.key(a.seed + 1000), "optimizer": optax.sgd(a.lr), "batch_size": a.batch,
                "metrics": False}
    ep.fit(model, x_train, estimator, epochs=1, **settings)  # compile outside the timed call
    start = time.perf_counter()
    trained, _ = ep.fit(model, x_train, estimator, epochs=a.epochs, **settings)
    jax.block_until_ready(trained.W)
    seconds = time.perf_counter() - start
    if a.only == "ep_bernoulli":
        b, c = trained.b, trained.c
    else:
        b, c = trained.visible.bias, trained.hidden.bias
    return {"W": np.asarray(trained.W).tolist(), "b": np.asarray(b).tolist(), "c": np.asarray(c).tolist(),
            "epoch_s": seconds / a.epochs, "load": drv.load(), "versions": {"jax": jax.__version__}}


def _rbms_all_hidden(m: int):
    import torch

    idx = torch.arange(2**m)
    return ((idx[:, None] >> torch.arange(m)) & 1).float()


def measure_rbms(a) -> dict:
    import torch
    from rbms.partition_function.ais import compute_partition_function_ais
    from rbms.partition_function.exact import compute_partition_function
    from rbms.potts_bernoulli.classes import PBRBM
    from rbms.potts_bernoulli.utils import ensure_zero_sum_gauge
    from rbms.training.pcd import fit_batch_pcd

    torch.set_num_threads(a.torch_threads)
    torch.manual_seed(a.seed)
    x_train, _ = quantized_digits(a.q)
    data = torch.from_numpy(x_train)

    class Dataset:  # what PBRBM.init_parameters reads
        pass

    dataset = Dataset()
    dataset.data = data
    params = PBRBM.init_parameters(num_hiddens=a.hidden, dataset=dataset, device=torch.device("cpu"),
                                   dtype=torch.float32)
    if params.num_states() != a.q:
        raise RuntimeError(f"rbms read {params.num_states()} states from the data, expected {a.q}")
    if a.rbms_variant == "ep_init":  # ebm_ppl's init: W ~ N(0, 0.01^2), log frequencies with one pseudo count
        params.weight_matrix = 0.01 * torch.randn_like(params.weight_matrix)
        counts = torch.stack([(data == s).sum(0) for s in range(a.q)], -1).float() + 1.0
        params.vbias = torch.log(counts / counts.sum(-1, keepdim=True))
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
                if a.rbms_variant in ("default", "ep_init"):
                    chains, _ = fit_batch_pcd((data[idx], ones), chains, params, gibbs_steps=a.k, beta=1.0,
                                              centered=True)
                else:  # fit_batch_pcd's body with centering or the normalization left out
                    batch = params.init_chains(num_samples=a.batch, weights=ones, start_v=data[idx])
                    chains = params.sample_state(chains=chains, n_steps=a.k, beta=1.0)
                    params.compute_gradient(data=batch, chains=chains, centered=a.rbms_variant != "uncentered")
                    if a.rbms_variant != "unnormalized":
                        params.normalize_grad()
                optimizer.step()
                ensure_zero_sum_gauge(params)
    seconds = time.perf_counter() - start
    load = drv.load()
    with torch.no_grad():
        log_z_exact = compute_partition_function(params, _rbms_all_hidden(a.hidden))
        ais, ais_s = [], []
        for r in range(a.ais_runs):
            torch.manual_seed(10_000 + 100 * a.seed + r)
            t = time.perf_counter()
            ais.append(compute_partition_function_ais(a.ais_chains, a.ais_temps + 1, params))
            ais_s.append(time.perf_counter() - t)
    from importlib.metadata import version

    return {"W": params.weight_matrix.tolist(), "b": params.vbias.tolist(), "c": params.hbias.tolist(),
            "epoch_s": seconds / a.epochs, "load": load, "rbms_log_z_exact": log_z_exact,
            "rbms_log_z_ais": ais, "rbms_ais_s": ais_s,
            "versions": {"torch": torch.__version__, "rbms": version("rbms"),
                         "torch_threads": torch.get_num_threads()}}


def measure_one(a) -> dict:
    return measure_rbms(a) if a.only == "rbms_potts" else measure_ep(a)


# ------------------------------------------------------------------------------------------------
# scoring (driver, ebm_ppl's venv)


def potts_model(res: dict):
    import numpy as np

    import ebm_ppl as ep

    return ep.RBM(ep.layers.Potts(np.asarray(res["b"], np.float32)), ep.layers.Binary(np.asarray(res["c"], np.float32)),
                  np.asarray(res["W"], np.float32))


def independent_pixels_ll(x_train, x_test, q: int) -> float:
    """Mean test log-likelihood of independent pixels with the training frequencies (+1 count)."""
    import numpy as np

    counts = np.stack([(x_train == s).sum(0) for s in range(q)], -1) + 1.0
    logp = np.log(counts / counts.sum(-1, keepdims=True))
    idx = x_test.astype(int)
    return float(np.mean(np.sum(np.take_along_axis(logp[None], idx[..., None], -1)[..., 0], -1)))


def score(p: str, res: dict, a, seed: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ebm_ppl as ep

    if p == "ep_bernoulli":
        x_test = ep.data.digits(binarize=True).x_test
        model = ep.BernoulliRBM(np.asarray(res["W"], np.float32), np.asarray(res["b"], np.float32),
                                np.asarray(res["c"], np.float32))
        log_z = ep.log_partition(model)
        ll = float(np.mean(ep.log_likelihood(model, x_test, log_z)))
        return {"ll": ll, "bpp": -ll / (N_VISIBLE * math.log(2)), "log_z": float(log_z)}
    x_test = ep.data.digits(levels=a.q).x_test
    model = potts_model(res)
    log_z = float(ep.log_partition(model))
    ll = float(np.mean(ep.log_likelihood(model, x_test, log_z)))
    out = {"ll": ll, "bpp": -ll / (N_VISIBLE * math.log(2)), "log_z": log_z}
    uniform = model.with_layers(ep.layers.Potts(jnp.zeros_like(model.visible.bias)),
                                ep.layers.Binary(jnp.zeros_like(model.hidden.bias)), jnp.zeros_like(model.W))
    linear = jnp.linspace(0.0, 1.0, a.ais_temps + 1)
    key = jax.random.key(20_000 + 100 * seed + PEERS.index(p))
    k1, k2 = jax.random.split(key)
    est = ep.ais(k1, model, num_chains=a.ais_chains, schedule=linear, base=uniform)
    out["ep_ais_uniform"] = (est.log_z, est.stderr, est.wall_time)
    est = ep.ais(k2, model, num_chains=a.ais_chains, num_temperatures=a.ais_temps)
    out["ep_ais_default"] = (est.log_z, est.stderr, est.wall_time)
    if p == "rbms_potts":
        out["rbms_log_z_exact"] = res["rbms_log_z_exact"]
        out["rbms_log_z_ais"] = res["rbms_log_z_ais"]
        out["rbms_ais_s"] = res["rbms_ais_s"]
    return out


# ------------------------------------------------------------------------------------------------
# the mapping check


def check_mapping(a) -> None:
    """A random PBRBM in rbms (its process), rebuilt in ebm_ppl: joint and free energies of a few
    configurations and the exact log Z of both libraries; the zero-sum gauge leaves the
    log-likelihood unchanged."""
    import json

    import numpy as np

    import ebm_ppl as ep

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pbrbm.json")
        drv.run_peer_with(a.torch_python, __file__, ["--only", "rbms_potts", "--mapping-out", path, "--q", str(a.q),
                                                      "--torch-threads", str(a.torch_threads)])
        with open(path) as f:
            d = json.load(f)
    v, h = np.asarray(d["v"], np.float32), np.asarray(d["h"], np.float32)
    for name, res, joint, free, log_z in (("random", d, d["E_joint"], d["F"], d["log_z"]),
                                          ("zero-sum gauged", d["gauged"], None, d["gauged"]["F"],
                                           d["gauged"]["log_z"])):
        model = potts_model(res)
        print(f"# mapping, {name} PBRBM {np.asarray(res['W']).shape}:")
        if joint is not None:
            gap = np.max(np.abs(np.asarray(model.energy_joint(v, h)) - joint))
            print(f"#   max |E_ep(v, h) - E_rbms(v, h)| = {gap:.2e}")
        print(f"#   max |F_ep(v) - F_rbms(v)|       = {np.max(np.abs(np.asarray(model.free_energy(v)) - free)):.2e}")
        lz = float(ep.log_partition(model))
        print(f"#   log Z ep.log_partition {lz:.5f}  rbms exact {log_z:.5f}  diff {lz - log_z:+.2e}")
        log_p = -np.asarray(model.free_energy(v)) - lz
        print(f"#   log p(v) of the configurations: {[round(float(t), 4) for t in log_p]}")


def make_mapping_model(a) -> None:
    """(in the rbms venv) a random PBRBM, some configurations, its energies and exact log Z,
    and the same after ``ensure_zero_sum_gauge``; written to ``--mapping-out``."""
    import json

    import torch
    from rbms.partition_function.exact import compute_partition_function
    from rbms.potts_bernoulli.classes import PBRBM
    from rbms.potts_bernoulli.utils import ensure_zero_sum_gauge

    torch.set_num_threads(a.torch_threads)
    torch.manual_seed(0)
    n, m = 12, 7
    p = PBRBM(0.8 * torch.randn(n, a.q, m), torch.randn(n, a.q), torch.randn(m))
    v = torch.randint(0, a.q, (6, n)).float()
    h = torch.bernoulli(torch.full((6, m), 0.5))
    allh = _rbms_all_hidden(m)
    out = {"W": p.weight_matrix.tolist(), "b": p.vbias.tolist(), "c": p.hbias.tolist(), "v": v.tolist(),
           "h": h.tolist(), "E_joint": p.compute_energy(v, h).tolist(), "F": p.compute_energy_visibles(v).tolist(),
           "log_z": compute_partition_function(p, allh)}
    ensure_zero_sum_gauge(p)
    out["gauged"] = {"W": p.weight_matrix.tolist(), "b": p.vbias.tolist(), "c": p.hbias.tolist(),
                     "F": p.compute_energy_visibles(v).tolist(), "log_z": compute_partition_function(p, allh)}
    with open(a.mapping_out, "w") as f:
        json.dump(out, f)
    drv.emit_result({"ok": True})


# ------------------------------------------------------------------------------------------------
# driver


def _mean_se(xs):
    mean = statistics.fmean(xs)
    se = statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else float("nan")
    return mean, se


def drive(a) -> dict:
    import numpy as np

    import ebm_ppl as ep

    if a.quick:
        a.epochs = min(a.epochs, 30)
        a.ais_runs = 1
    rounds = drv.rounds_for(a)
    load0 = drv.load()
    drv.header("potts_vs_rbms", load0, f"; Potts(64, q={a.q})-Bernoulli({a.hidden}) RBM, {a.epochs} epochs PCD-{a.k}, "
                                       f"batch {a.batch}, {a.chains} chains, SGD lr {a.lr}, centering rate {a.rate}; "
                                       f"torch threads {a.torch_threads}; rbms variant {a.rbms_variant}")
    x_tr, x_te = quantized_digits(a.q)
    d = ep.data.digits(levels=a.q)
    if not (np.array_equal(d.x_train, x_tr) and np.array_equal(d.x_test, x_te)):
        raise RuntimeError("the rbms peer's quantization differs from ep.data.digits(levels=q)")
    b_tr, b_te = binarized_digits()
    indep = {"potts": independent_pixels_ll(x_tr, x_te, a.q), "bernoulli": independent_pixels_ll(b_tr, b_te, 2)}
    common = ["--epochs", str(a.epochs), "--hidden", str(a.hidden), "--q", str(a.q), "--k", str(a.k),
              "--chains", str(a.chains), "--batch", str(a.batch), "--lr", str(a.lr), "--rate", str(a.rate),
              "--ais-chains", str(a.ais_chains), "--ais-temps", str(a.ais_temps), "--ais-runs", str(a.ais_runs),
              "--torch-threads", str(a.torch_threads), "--rbms-variant", a.rbms_variant]
    warm = {"W": np.zeros((N_VISIBLE, a.q, a.hidden)), "b": np.zeros((N_VISIBLE, a.q)), "c": np.zeros(a.hidden)}
    score("ep_potts", warm, a, -1)  # compile ep.ais once, so its figures below are warm calls
    S = {p: [] for p in PEERS}
    versions = {}
    for r in range(rounds):
        for p in drv.round_order(PEERS, r):
            args_list = ["--only", p, "--seed", str(r)] + common
            if p == "rbms_potts":
                res = drv.run_peer_with(a.torch_python, __file__, args_list)
            else:
                res = drv.run_peer(__file__, args_list)
            versions.update(res.get("versions", {}))
            sc = score(p, res, a, r)
            sc.update(epoch_s=res["epoch_s"], load=res["load"])
            S[p].append(sc)
            line = (f"  seed {r} {p:18s} test LL {sc['ll']:8.3f}  {sc['bpp']:.4f} bits/pixel  "
                    f"epoch {sc['epoch_s'] * 1e3:7.2f} ms  (load {sc['load']:.2f})")
            if p != "ep_bernoulli":
                line += (f"  log Z exact {sc['log_z']:.3f}, ep AIS uniform {sc['ep_ais_uniform'][0]:.3f}, "
                         f"default {sc['ep_ais_default'][0]:.3f}")
            if p == "rbms_potts":
                line += (f", rbms exact {sc['rbms_log_z_exact']:.3f}, rbms AIS "
                         f"{[round(v, 3) for v in sc['rbms_log_z_ais']]}")
            print(line, flush=True)
    load1 = drv.load()
    summary = {"date": drv.today(), "rounds": rounds, "load_start": load0, "load_end": load1,
               "machine": drv.machine(), "cores": drv.cores(), "settings": vars(a).copy(), "versions": versions,
               "independent_pixels_ll": indep, "results": S}
    loads = [sc["load"] for p in PEERS for sc in S[p]] + [load0, load1]
    print(f"\n# results {summary['date']}, {drv.cpu_model()}, {summary['cores']} cores, load {min(loads):.2f}-"
          f"{max(loads):.2f} (1-min average at start, after each peer's training, end); {rounds} seed(s); "
          f"{a.epochs} epochs; versions {versions}")
    print("\n| peer | data | epoch ms (median) | rbms / this | exact test LL (nats/image) | bits/pixel |")
    print("|---|---|---|---|---|---|")
    for p in PEERS:
        lls = [sc["ll"] for sc in S[p]]
        mean, se = _mean_se(lls)
        bpp = -mean / (N_VISIBLE * math.log(2))
        ep_ms = drv.med([sc["epoch_s"] for sc in S[p]]) * 1e3
        ratio = (f"{statistics.median(sr['epoch_s'] / sp['epoch_s'] for sr, sp in zip(S['rbms_potts'], S[p])):.2f}"
                 if p in POTTS_PEERS else "")
        data = "binarized (v >= 8)" if p == "ep_bernoulli" else f"{a.q} gray levels"
        print(f"| `{p}` | {data} | {ep_ms:.2f} | {ratio} | {mean:.3f} +- {se:.3f} {[round(v, 3) for v in lls]} "
              f"| {bpp:.4f} |")
    for name, key, q in (("independent pixels", "potts", a.q), ("independent pixels", "bernoulli", 2)):
        data = "binarized (v >= 8)" if key == "bernoulli" else f"{q} gray levels"
        print(f"| {name} | {data} | | | {indep[key]:.3f} | {-indep[key] / (N_VISIBLE * math.log(2)):.4f} |")
    print(f"\nlog Z of the Potts models (exact: ep.log_partition; AIS {a.ais_chains} chains, "
          f"{a.ais_temps} temperatures; ep's error: its delta-method s.e., its time a warm call; "
          "rbms: mean +- sd over its runs)")
    print("| model, seed | exact | rbms exact - exact | ep AIS uniform, linear - exact "
          "| rbms AIS uniform, linear - exact | ep AIS default - exact | AIS s (ep uniform / rbms) |")
    print("|---|---|---|---|---|---|---|")
    for p in POTTS_PEERS:
        for r, sc in enumerate(S[p]):
            lz = sc["log_z"]
            eu, ed = sc["ep_ais_uniform"], sc["ep_ais_default"]
            row = f"| `{p}` {r} | {lz:.3f} | "
            if p == "rbms_potts":
                ra = sc["rbms_log_z_ais"]
                rsd = statistics.stdev(ra) if len(ra) > 1 else float("nan")
                row += f"{sc['rbms_log_z_exact'] - lz:+.1e} | {eu[0] - lz:+.3f} +- {eu[1]:.3f} | "
                row += f"{statistics.fmean(ra) - lz:+.3f} +- {rsd:.3f} ({len(ra)} runs) | "
                row += f"{ed[0] - lz:+.3f} +- {ed[1]:.3f} | {eu[2]:.2f} / {statistics.median(sc['rbms_ais_s']):.2f} |"
            else:
                row += f" | {eu[0] - lz:+.3f} +- {eu[1]:.3f} | | {ed[0] - lz:+.3f} +- {ed[1]:.3f} | {eu[2]:.2f} / |"
            print(row)
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 30 epochs, 1 rbms AIS run")
    ap.add_argument("--check-mapping", action="store_true", help="verify the rbms -> ebm_ppl parameter mapping")
    ap.add_argument("--mapping-out", help=argparse.SUPPRESS)
    ap.add_argument("--only", choices=PEERS)
    ap.add_argument("--rounds", type=int, default=2, help="seeds 0 .. rounds - 1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--q", type=int, default=4)
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--chains", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--rate", type=float, default=1.0, help="ebm_ppl's centering rate (its default)")
    ap.add_argument("--ais-chains", type=int, default=100)
    ap.add_argument("--ais-temps", type=int, default=1000)
    ap.add_argument("--ais-runs", type=int, default=3, help="runs of rbms' AIS per model (it reports no error)")
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--rbms-variant", choices=("default", "uncentered", "unnormalized", "ep_init"), default="default",
                    help="ablations of the rbms peer: its loop without centering, without the gradient's "
                         "normalization, or with ebm_ppl's initialization")
    ap.add_argument("--torch-python", default=TORCH_PYTHON)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.mapping_out:
        return make_mapping_model(args)
    if args.check_mapping:
        return check_mapping(args)
    drv.dispatch(args, measure_one, drive)


if __name__ == "__main__":
    main()
