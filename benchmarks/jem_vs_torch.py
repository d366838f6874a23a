"""JEM on the digits: ebm_ppl (``ep.JEM`` + ``ep.training.jem()`` + ``ep.fit``) against plain PyTorch.

The chapter's JEM, the same in both peers:

* network 64-512-512-512-10 with ELU (default init of each library: uniform +-1/sqrt(fan_in) for
  weights and biases in both Equinox and ``torch.nn.Linear``);
* data ``2 x / 16 - 1``, split 1000 / 350 / 447 by index (scikit-learn's order), Gaussian noise of
  std 0.03 added once to the training images;
* batch 64 (the last incomplete batch of an epoch is dropped: 15 updates per epoch), Adamax lr 1e-3;
* loss = cross-entropy + mean E(x) - mean E(x_neg), E(x) = -logsumexp f(x); 64 negatives per
  batch from 20 unadjusted Langevin steps ``x <- x - alpha grad E(x) + sigma N(0, I)`` with
  alpha = 1, sigma = 0.01, started from uniform noise on [-1, 1] (short-run, no replay buffer).

Peers (each in its own process; rounds alternate the order and use seed = round):

* ``ebm_ppl`` (this interpreter): ``ep.fit(ep.JEM.init(key(seed)), (x, y), ep.training.jem(),
  key=key(seed + 1), optimizer=optax.adamax(1e-3), epochs=E, batch_size=64, validation=(xv, yv),
  metrics=acc)``. ``acc`` replaces the estimator's default per-epoch metrics (which also run
  Langevin chains for L_gen on train and validation) with what the PyTorch loop evaluates:
  validation accuracy, plus the test accuracy kept aside; it also stamps the time.
  "train part" of an epoch = the time from the end of the previous epoch's evaluation to the start
  of this epoch's (the compiled epoch scan plus fit's bookkeeping and health checks); "epoch total"
  adds the evaluation; "fastest" is the minimum over the warm epochs (less sensitive to other jobs on
  a shared machine). Compile = first epoch's train part - warm median (every ``fit`` call compiles
  its epoch afresh); the seconds JAX logs as tracing/lowering/compiling are reported too.
* ``torch`` (``--torch-python``, default /tmp/torchvenv/bin/python, a Python 3.11 venv with
  ``torch==2.13.0`` CPU, see requirements-torch.txt): the same network, loop and loss written
  directly in PyTorch; Langevin gradients by ``torch.autograd.grad`` w.r.t. x; the model is never
  switched to eval mode (it has no dropout or batch norm). Data from scikit-learn's
  ``load_digits`` with the same split and scaling. Evaluation after each epoch under
  ``torch.no_grad()``: validation and test accuracy.

``--replay``: ebm_ppl draws its negatives from a replay buffer instead (``ep.training.jem(persistent=True)``:
10,000 persistent chains, 5% restarted from noise per draw, 20 steps each; Grathwohl et al.'s
setting), the torch peer stays short-run as above: ebm_ppl's best-settings accuracy beside the
chapter's loop (the epoch times are then not a like-for-like comparison).

Both train ``--max-epochs`` epochs without stopping. Reported: test accuracy after ``--epochs``
epochs, and test accuracy of the best-validation-accuracy epoch under early stopping with
``--patience`` (applied afterwards to the recorded validation curve with ``ep.fit``'s rule: an
epoch is best when its validation accuracy is strictly higher; stop once ``patience`` epochs pass
without one; training does not depend on the evaluation, so this equals stopping in the loop).

    python benchmarks/jem_vs_torch.py                  # 3 rounds, 40 epochs each, ~2 min
    python benchmarks/jem_vs_torch.py --quick          # 1 round, 10 epochs
    python benchmarks/jem_vs_torch.py --replay --epochs 100 --max-epochs 100   # ~5 min
    python benchmarks/jem_vs_torch.py --only torch --torch-python /tmp/torchvenv/bin/python
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # benchmarks/ is not a package: import from this folder

PEERS = ("ebm_ppl", "torch")
TORCH_PYTHON = os.environ.get("TORCH_PYTHON", "/tmp/torchvenv/bin/python")
NOISE, ALPHA, SIGMA, STEPS, BATCH, LR, WIDTH, DEPTH = 0.03, 1.0, 0.01, 20, 64, 1e-3, 512, 3


# ------------------------------------------------------------------------------------------------
# helpers shared by both peers (stdlib only: the torch peer runs under another interpreter)


def early_stop(val_acc: list, patience: int) -> tuple[int, int]:
    """``(best_epoch, stopped_epoch)`` of ep.fit's rule (strictly higher is better) on a val curve."""
    best, best_v = None, None
    for e, v in enumerate(val_acc):
        if best_v is None or v > best_v:
            best, best_v = e, v
        if e - best >= patience:
            return best, e
    return best, len(val_acc) - 1


def summarise(res: dict, train_s: list, total_s: list, val_acc: list, test_acc: list, a) -> dict:
    best, stopped = early_stop(val_acc, a.patience)
    res.update({
        "epoch_train_s": statistics.median(train_s[1:]),
        "epoch_train_min_s": min(train_s[1:]),
        "epoch_total_s": statistics.median(total_s[1:]),
        "first_epoch_train_s": train_s[0],
        "test_acc_at_E": test_acc[min(a.epochs, len(test_acc)) - 1],
        "best_epoch": best, "stopped_epoch": stopped,
        "test_acc_early_stop": test_acc[best], "val_acc_early_stop": val_acc[best],
        "train_s": train_s, "total_s": total_s, "val_acc": val_acc, "test_acc": test_acc,
        "load_end": drv.load(), "OPENBLAS_CORETYPE": drv.openblas_coretype(),
    })
    return res


# ------------------------------------------------------------------------------------------------
# ebm_ppl


def measure_ebm(a) -> dict:
    load0 = drv.load()
    compile_log = drv.jax_compile_log()
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import ebm_ppl as ep

    seed = a.seed
    d = ep.data.digits(train_noise=NOISE, key=jax.random.key(1000 + seed))
    x_val, y_val = jnp.asarray(d.x_val), jnp.asarray(d.y_val)
    x_test, y_test = jnp.asarray(d.x_test), jnp.asarray(d.y_test)

    @eqx.filter_jit
    def accuracy(model, x, y):
        return jnp.mean(jnp.argmax(jax.vmap(model.net)(x), axis=-1) == y)

    enter, leave, val_acc, test_acc = [], [], [], []

    def acc(model, data, key, prefix):  # fit calls this after every epoch: "train_" then "val_"
        if prefix == "train_":
            enter.append(time.perf_counter())
            return {}
        va = float(accuracy(model, x_val, y_val))
        val_acc.append(va)
        test_acc.append(float(accuracy(model, x_test, y_test)))
        leave.append(time.perf_counter())
        return {"val_accuracy": va}

    model = ep.JEM.init(jax.random.key(seed), 64, 10, width=WIDTH, depth=DEPTH, activation="elu")
    estimator = ep.training.jem(langevin_steps=STEPS, step_size=ALPHA, noise_scale=SIGMA,
                                init_low=-1.0, init_high=1.0, persistent=a.replay)
    compile_log.clear()
    t0 = time.perf_counter()
    model, hist = ep.fit(model, (d.x_train, d.y_train), estimator, key=jax.random.key(seed + 1),
                         optimizer=optax.adamax(LR), epochs=a.max_epochs, batch_size=BATCH,
                         validation=(d.x_val, d.y_val), metrics=acc)
    call_s = time.perf_counter() - t0
    ends = [t0] + leave
    train_s = [enter[k] - ends[k] for k in range(len(enter))]
    total_s = [leave[k] - ends[k] for k in range(len(leave))]
    warm = statistics.median(train_s[1:])
    res = {"peer": "ebm_ppl", "seed": seed, "replay": a.replay, "load_start": load0, "call_s": call_s,
           "compile_s": max(0.0, train_s[0] - warm), "jax_logged_compile_s": sum(compile_log),
           "threads": drv.xla_threads(), "epochs_run": len(hist.records),
           "versions": {"jax": jax.__version__, "numpy": np.__version__, "optax": optax.__version__,
                        "ebm_ppl": getattr(ep, "__version__", "?")}}
    return summarise(res, train_s, total_s, val_acc, test_acc, a)


# ------------------------------------------------------------------------------------------------
# PyTorch


def measure_torch(a) -> dict:
    load0 = drv.load()
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from torch import nn
    from torch.nn import functional as F

    seed = a.seed
    torch.manual_seed(seed)
    raw = load_digits()
    x = (2.0 * raw.data / 16.0 - 1.0).astype(np.float32)
    y = raw.target.astype(np.int64)
    rng = np.random.default_rng(1000 + seed)
    x_train = torch.from_numpy(x[:1000] + NOISE * rng.standard_normal((1000, 64)).astype(np.float32))
    y_train = torch.from_numpy(y[:1000])
    x_val, y_val = torch.from_numpy(x[1000:1350]), torch.from_numpy(y[1000:1350])
    x_test, y_test = torch.from_numpy(x[1350:]), torch.from_numpy(y[1350:])

    layers, width_in = [], 64
    for _ in range(DEPTH):
        layers += [nn.Linear(width_in, WIDTH), nn.ELU()]
        width_in = WIDTH
    model = nn.Sequential(*layers, nn.Linear(width_in, 10))  # never .eval(): no dropout / batch norm
    opt = torch.optim.Adamax(model.parameters(), lr=LR)

    def energy(inp):
        return -torch.logsumexp(model(inp), dim=-1)

    def negatives(n):
        xk = torch.rand(n, 64) * 2.0 - 1.0
        for _ in range(STEPS):
            xk.requires_grad_(True)
            (g,) = torch.autograd.grad(energy(xk).sum(), xk)
            xk = (xk - ALPHA * g + SIGMA * torch.randn_like(xk)).detach()
        return xk

    def accuracy(xs, ys):
        with torch.no_grad():
            return float((model(xs).argmax(dim=-1) == ys).float().mean())

    nb = 1000 // BATCH
    train_s, total_s, val_acc, test_acc = [], [], [], []
    for _ in range(a.max_epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(1000)[: nb * BATCH].view(nb, BATCH)
        for idx in perm:
            xb, yb = x_train[idx], y_train[idx]
            x_neg = negatives(BATCH)
            logits = model(xb)
            clf = F.cross_entropy(logits, yb)
            gen = (-torch.logsumexp(logits, dim=-1)).mean() - energy(x_neg).mean()
            loss = clf + gen
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        t1 = time.perf_counter()
        val_acc.append(accuracy(x_val, y_val))
        test_acc.append(accuracy(x_test, y_test))
        t2 = time.perf_counter()
        train_s.append(t1 - t0)
        total_s.append(t2 - t0)
    res = {"peer": "torch", "seed": seed, "load_start": load0,
           "threads": f"torch.get_num_threads()={torch.get_num_threads()}, "
                      f"interop {torch.get_num_interop_threads()}",
           "versions": {"torch": torch.__version__, "numpy": np.__version__}}
    return summarise(res, train_s, total_s, val_acc, test_acc, a)


# ------------------------------------------------------------------------------------------------
# driver


def run_torch_peer(a, args_list) -> dict:
    """Like drv.run_peer, but under the torch venv's interpreter."""
    return drv.run_peer_with(a.torch_python, __file__, args_list)


def measure_one(a) -> dict:
    return measure_ebm(a) if a.only == "ebm_ppl" else measure_torch(a)


def drive(a) -> dict:
    if a.quick:
        a.max_epochs, a.epochs = min(a.max_epochs, 10), min(a.epochs, 10)
    rounds = drv.rounds_for(a)
    load0 = drv.load()
    drv.header("jem_vs_torch", load0, f"; E={a.epochs}, max epochs {a.max_epochs}, patience {a.patience}; "
                                      f"torch python {a.torch_python}"
                                      + ("; ebm_ppl with a replay buffer, torch short-run" if a.replay else ""))
    runs = {p: [] for p in PEERS}
    common = ["--epochs", str(a.epochs), "--max-epochs", str(a.max_epochs), "--patience", str(a.patience)]
    common += ["--replay"] if a.replay else []
    for r in range(rounds):
        for p in drv.round_order(PEERS, r):
            args_list = ["--only", p, "--seed", str(r)] + common
            res = drv.run_peer(__file__, args_list) if p == "ebm_ppl" else run_torch_peer(a, args_list)
            runs[p].append(res)
            extra = f" compile {res['compile_s']:.2f} s" if p == "ebm_ppl" else ""
            print(f"  round {r + 1} {p:8s} epoch train {res['epoch_train_s'] * 1e3:7.1f} ms, total "
                  f"{res['epoch_total_s'] * 1e3:7.1f} ms, first {res['first_epoch_train_s']:.2f} s{extra}; "
                  f"test acc @{a.epochs} {res['test_acc_at_E']:.3f}, early-stop {res['test_acc_early_stop']:.3f} "
                  f"(best epoch {res['best_epoch']}, stop {res['stopped_epoch']}); load "
                  f"{res['load_start']:.2f}->{res['load_end']:.2f}; {res['threads']}", flush=True)
            time.sleep(1.0)
    S = {"date": drv.today(), "replay": a.replay, "epochs": a.epochs, "max_epochs": a.max_epochs, "patience": a.patience,
         "rounds": rounds, "load_start": load0, "load_end": drv.load(), "machine": drv.machine(),
         "cores": drv.cores(), "OPENBLAS_CORETYPE": drv.openblas_coretype(), "runs": runs}
    keys = ("epoch_train_s", "epoch_train_min_s", "epoch_total_s", "first_epoch_train_s", "test_acc_at_E",
            "test_acc_early_stop", "best_epoch")
    for p, rs in runs.items():
        S[p] = {k: drv.med(x[k] for x in rs) for k in keys}
        S[p]["acc_at_E_all"] = [x["test_acc_at_E"] for x in rs]
        S[p]["acc_early_all"] = [x["test_acc_early_stop"] for x in rs]
        S[p]["threads"] = rs[0]["threads"]
        S[p]["versions"] = rs[0]["versions"]
    S["ebm_ppl"]["compile_s"] = drv.med(x["compile_s"] for x in runs["ebm_ppl"])
    S["ebm_ppl"]["jax_logged_compile_s"] = drv.med(x["jax_logged_compile_s"] for x in runs["ebm_ppl"])
    pairs = list(zip(runs["ebm_ppl"], runs["torch"]))
    S["ratio_train"] = drv.median_ratio((e["epoch_train_s"], t["epoch_train_s"]) for e, t in pairs)
    S["ratio_total"] = drv.median_ratio((e["epoch_total_s"], t["epoch_total_s"]) for e, t in pairs)
    S["ratio_train_all"] = [e["epoch_train_s"] / t["epoch_train_s"] for e, t in pairs]
    S["ratio_min_all"] = [e["epoch_train_min_s"] / t["epoch_train_min_s"] for e, t in pairs]
    e, t = S["ebm_ppl"], S["torch"]
    print(f"\n# results {S['date']}, load {load0:.2f} -> {S['load_end']:.2f}; {rounds} round(s); "
          f"{S['cores']} cores (shared); OPENBLAS_CORETYPE={S['OPENBLAS_CORETYPE']}")
    print(f"# threads: ebm_ppl {e['threads']}; torch {t['threads']}")
    print(f"# versions: {e['versions']} / {t['versions']}")
    print(f"{'':28s} {'ebm_ppl':>10s} {'torch':>10s}")
    print(f"{'warm epoch, train part, ms':28s} {e['epoch_train_s'] * 1e3:10.1f} {t['epoch_train_s'] * 1e3:10.1f}")
    print(f"{'fastest warm epoch, ms':28s} {e['epoch_train_min_s'] * 1e3:10.1f} {t['epoch_train_min_s'] * 1e3:10.1f}")
    print(f"{'warm epoch incl. eval, ms':28s} {e['epoch_total_s'] * 1e3:10.1f} {t['epoch_total_s'] * 1e3:10.1f}")
    print(f"{'first epoch, s':28s} {e['first_epoch_train_s']:10.2f} {t['first_epoch_train_s']:10.2f}")
    print(f"{'compile (first - warm), s':28s} {e['compile_s']:10.2f}   (JAX-logged {e['jax_logged_compile_s']:.2f} s)")
    print(f"{'test acc after E epochs':28s} {e['test_acc_at_E']:10.3f} {t['test_acc_at_E']:10.3f}   "
          f"{[round(v, 3) for v in e['acc_at_E_all']]} / {[round(v, 3) for v in t['acc_at_E_all']]}")
    print(f"{'test acc, early-stopped':28s} {e['test_acc_early_stop']:10.3f} {t['test_acc_early_stop']:10.3f}   "
          f"{[round(v, 3) for v in e['acc_early_all']]} / {[round(v, 3) for v in t['acc_early_all']]}")
    print(f"epoch-time ratio ebm_ppl/torch (median per round): train part {S['ratio_train']:.3f} "
          f"{[round(v, 3) for v in S['ratio_train_all']]}, incl. eval {S['ratio_total']:.3f} "
          + ("(ebm_ppl with a replay buffer: not the target's comparison)" if a.replay else "(target <= 0.6)"))
    print(f"fastest-epoch ratio per round (less sensitive to other jobs on the machine): "
          f"{[round(v, 3) for v in S['ratio_min_all']]}")
    return S


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 round, 10 epochs")
    ap.add_argument("--only", choices=PEERS)
    ap.add_argument("--epochs", type=int, default=20, help="test accuracy is reported after this many epochs")
    ap.add_argument("--max-epochs", type=int, default=40, help="epochs trained (early stopping applied after)")
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--torch-python", default=TORCH_PYTHON)
    ap.add_argument("--replay", action="store_true",
                    help="ebm_ppl's negatives from a replay buffer (torch stays short-run)")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if a.max_epochs < max(2, a.epochs):
        ap.error("--max-epochs must be >= max(2, --epochs)")
    drv.dispatch(a, measure_one, drive)


if __name__ == "__main__":
    main()
