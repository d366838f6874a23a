"""RBM training: ebm_ppl's ``ep.fit`` (PCD-1) against scikit-learn's ``BernoulliRBM.fit`` (PCD-1).

Bernoulli RBM, 64 visible x 20 hidden, on the binarized digits train split (1000 x 64), batch
100, learning rate 0.05, E epochs (10 updates each), 100 persistent chains:

* ``ep``      ``ep.fit(ep.BernoulliRBM.init(key(seed), 64, 20, scale=0.01), x_train,
              ep.training.pcd(k=1, num_chains=100), key=key(seed + 1), optimizer=opt,
              epochs=E, batch_size=100, metrics=False, shuffle=False)`` (no per-epoch metrics: the
              E epochs run fused in one compiled call; minibatches in the data's order, as
              scikit-learn takes them), with one ``opt = optax.sgd(0.05)`` object per process:

              - ``first call``: the first ``fit`` in the process (after importing ebm_ppl and
                loading the data), compile included;
              - ``cached call``: the same call again with a fresh ``pcd(...)`` (equal settings)
                and the same optimizer object: nothing compiles (median of 5);
              - ``epoch``: the warm epoch inside a call, (cached call of 2E epochs - cached call of
                E epochs) / E (median of 5 adjacent pairs, E and 2E calls
                alternating); the same with ``shuffle=True`` (fit's default:
                a fresh permutation every epoch);
              - ``compiled``: the compiled epoch loop alone (``ebm_ppl.training.epochs.run_epochs``
                called directly on the same state), per update; the rest of a call is Python;
              - ``unfused epoch``: median gap between successive calls of a ``metrics`` callback
                that only records the time, which makes ``fit`` run one epoch per compiled call;
              - with ``--with-metrics`` (first round): an E-epoch call with the default per-epoch
                metrics (reconstruction error, pseudo-LL, exact train log-likelihood: one 2^20-term
                log Z per epoch), after a 1-epoch call that compiled them, per epoch.
* ``sklearn`` ``BernoulliRBM(n_components=20, learning_rate=0.05, batch_size=100, n_iter=E,
              random_state=seed).fit(x_train)``: the whole call and per epoch = total / E; timed
              with OpenBLAS at its default thread count and limited to 1 thread (the faster is the
              comparison).

The ebm_ppl process also trains the same run from ``ep.BernoulliRBM.init(..., data=x_train)``
(visible biases from the training marginals, Hinton's guide Sec. 8.1; scikit-learn has no such
option) and reports its test log-likelihood.

Both models are then scored by the exact mean test log-likelihood (447 test digits), with log Z
from ``ep.log_partition`` (scikit-learn's model rebuilt as ``ep.BernoulliRBM(components_.T,
intercept_visible_, intercept_hidden_)``). Each peer runs in its own process; rounds alternate
the order and use seed = round.

    python benchmarks/rbm_training.py             # 3 rounds, E = 20
    python benchmarks/rbm_training.py --quick     # 1 round
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # benchmarks/ is not a package: import from this folder


def test_ll(W, b, c) -> float:
    import jax
    import jax.numpy as jnp

    import ebm_ppl as ep

    rbm = ep.BernoulliRBM(jnp.asarray(W, jnp.float32), jnp.asarray(b, jnp.float32), jnp.asarray(c, jnp.float32))
    x = jnp.asarray(ep.data.digits(binarize=True).x_test)
    return float(jnp.mean(-jax.vmap(rbm.unbatched_energy)(x)) - ep.log_partition(rbm))


def measure_ep(epochs: int, seed: int, with_metrics: bool) -> dict:

    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import ebm_ppl as ep

    from ebm_ppl.training import epochs as fit_epochs
    from ebm_ppl.training.optimizers import guarded as guard
    from ebm_ppl.training.rows import bucket_rows, pad_rows
    x = ep.data.digits(binarize=True).x_train
    opt = optax.sgd(0.05)

    def run(E, init_data=None, **kw):
        rbm = ep.BernoulliRBM.init(jax.random.key(seed), 64, 20, scale=0.01, data=init_data)
        t = time.perf_counter()
        model, history = ep.fit(rbm, x, ep.training.pcd(k=1, num_chains=100), key=jax.random.key(seed + 1),
                                optimizer=opt, epochs=E, batch_size=100, **{"metrics": False, "shuffle": False, **kw})
        jax.block_until_ready(model.W)
        return time.perf_counter() - t, model, history

    def per_epoch(**kw):
        """(cached calls of E epochs, median over 5 adjacent pairs of (2E call - E call) / E)."""
        # E and 2E epochs run the same compiled program (MAX_FUSED_EPOCHS >= 2E)
        pairs = [(run(epochs, **kw)[0], run(2 * epochs, **kw)[0]) for _ in range(5)]
        diff = statistics.median((d - c) / epochs for c, d in pairs)
        if diff <= 0:
            print(f"  warning: {2 * epochs} epochs timed no slower than {epochs}: the epoch is inside this "
                  "machine's timing noise; use more --epochs", file=sys.stderr)
        return [c for c, _ in pairs], diff

    first, model, _ = run(epochs)
    cached, epoch = per_epoch()
    run(epochs, shuffle=True)  # compiles the shuffling variant
    _, shuffled = per_epoch(shuffle=True)

    # the compiled loop alone, on the state fit starts from
    rbm = ep.BernoulliRBM.init(jax.random.key(seed), 64, 20, scale=0.01)
    params, static = eqx.partition(rbm, eqx.is_inexact_array)
    guarded, mask = guard(opt), fit_epochs.freeze_mask(params, ())
    est = ep.training.pcd(k=1, num_chains=100)
    state, key_loop = fit_epochs.init_state(params, static, est, guarded, (x,), jax.random.key(seed + 1),
                                             ep.random.DEFAULT_IMPL)
    carry = (state.params, state.opt_state, state.estimator_state)
    plan = np.array([0, epochs, 0, 4, len(x)], np.int32)
    padded = pad_rows((jnp.asarray(x),), bucket_rows(len(x)))  # as fit holds the data
    compiled = []
    for _ in range(5):
        t = time.perf_counter()
        jax.block_until_ready(fit_epochs.run_epochs(static, est, guarded, mask, 100, False, fit_epochs.MAX_FUSED_EPOCHS,
                                                     carry, padded, key_loop, plan))
        compiled.append(time.perf_counter() - t)
    compiled_call = statistics.median(compiled)

    stamps = []

    def stamp(model, data, key, prefix):  # fit calls it after every epoch: timestamps only
        stamps.append(time.perf_counter())
        return {}

    run(2, metrics=stamp)
    stamps.clear()
    run(epochs, metrics=stamp)
    unfused = statistics.median(b - a for a, b in itertools.pairwise(stamps))
    # the library's recommended start: visible biases from the data's marginals (Hinton's guide 8.1)
    data_init_ll = test_ll(*(lambda m: (m.W, m.b, m.c))(run(epochs, init_data=x)[1]))
    out = {"peer": "ep", "test_ll_data_init": data_init_ll, "epoch_s": epoch, "epoch_shuffled_s": shuffled, "first_call_s": first, "cached_call_s": statistics.median(cached),
           "compiled_call_s": compiled_call, "compiled_update_s": compiled_call / (epochs * 10),
           "unfused_epoch_s": unfused, "test_ll": test_ll(model.W, model.b, model.c), "threads": drv.xla_threads()}
    if with_metrics:
        run(1, metrics=None)  # compiles the metrics
        out["epoch_with_metrics_s"] = run(epochs, metrics=None)[0] / epochs
    return out


def measure_sklearn(epochs: int, seed: int) -> dict:
    import warnings

    from sklearn.neural_network import BernoulliRBM
    from threadpoolctl import threadpool_limits

    import ebm_ppl as ep

    x = ep.data.digits(binarize=True).x_train.astype("float64")
    BernoulliRBM(n_components=20, n_iter=1, random_state=seed).fit(x)  # warm imports/BLAS
    times = {}
    for name, lim in (("default", None), ("1thread", 1), ) if seed % 2 == 0 else (("1thread", 1), ("default", None)):
        with threadpool_limits(limits=lim, user_api="blas"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = BernoulliRBM(n_components=20, learning_rate=0.05, batch_size=100, n_iter=epochs, random_state=seed)
            t = time.perf_counter()
            m.fit(x)
            times[name] = time.perf_counter() - t
        time.sleep(0.1)
    return {"peer": "sklearn", "call_s": min(times.values()), "epoch_s": min(times.values()) / epochs,
            "epoch_s_by_threads": {k: v / epochs for k, v in times.items()},
            "test_ll": test_ll(m.components_.T, m.intercept_visible_, m.intercept_hidden_),
            "threads": "OpenBLAS default threads and 1 thread"}


def drive(a) -> dict:
    rounds = drv.rounds_for(a)
    load0 = drv.load()
    drv.header("rbm_training", load0, f"; E={a.epochs}")
    runs = {"ep": [], "sklearn": []}
    for r in range(rounds):
        for p in drv.round_order(["ep", "sklearn"], r):
            extra = ["--with-metrics"] if (p == "ep" and r == 0) else []
            res = drv.run_peer(__file__, ["--only", p, "--epochs", str(a.epochs), "--seed", str(r)] + extra)
            runs[p].append(res)
            call = res.get("cached_call_s", res.get("call_s"))
            print(f"  round {r + 1} {p:8s} epoch {res['epoch_s'] * 1e3:.3f} ms  call {call * 1e3:.1f} ms  "
                  f"test LL {res['test_ll']:.3f}", flush=True)
    S = {"date": drv.today(), "epochs": a.epochs, "rounds": rounds, "load_start": load0,
         "load_end": drv.load(), "runs": runs}
    for p, rs in runs.items():
        S[p] = {"epoch_s": statistics.median(x["epoch_s"] for x in rs),
                "test_ll": statistics.mean(x["test_ll"] for x in rs),
                "test_ll_all": [x["test_ll"] for x in rs]}
    S["ep"]["test_ll_data_init_all"] = [x["test_ll_data_init"] for x in runs["ep"]]
    S["ep"]["test_ll_data_init"] = statistics.mean(S["ep"]["test_ll_data_init_all"])
    e, s_ = runs["ep"], runs["sklearn"]
    for k in ("first_call_s", "cached_call_s", "compiled_call_s", "compiled_update_s", "unfused_epoch_s",
              "epoch_shuffled_s"):
        S["ep"][k] = statistics.median(x[k] for x in e)
    S["ep"]["epoch_with_metrics_s"] = e[0].get("epoch_with_metrics_s")
    S["sklearn"]["call_s"] = statistics.median(x["call_s"] for x in s_)
    S["sklearn"]["by_threads"] = {k: statistics.median(x["epoch_s_by_threads"][k] for x in s_)
                                  for k in ("default", "1thread")}
    S["ratio_epoch"] = drv.median_ratio((x["epoch_s"], y["epoch_s"]) for x, y in zip(e, s_))
    S["ratio_epoch_shuffled"] = drv.median_ratio((x["epoch_shuffled_s"], y["epoch_s"]) for x, y in zip(e, s_))
    S["ratio_cached_call"] = drv.median_ratio((x["cached_call_s"], y["call_s"]) for x, y in zip(e, s_))
    S["ratio_first_call"] = drv.median_ratio((x["first_call_s"], y["call_s"]) for x, y in zip(e, s_))
    E = a.epochs
    ep_, sk = S["ep"], S["sklearn"]
    print(f"\n# results {S['date']}, load {load0:.2f} -> {S['load_end']:.2f}; {rounds} round(s); E={E}")
    print(f"ebm_ppl epoch inside a fused call {ep_['epoch_s'] * 1e3:7.3f} ms, with shuffle=True "
          f"{ep_['epoch_shuffled_s'] * 1e3:.3f} ms (compiled loop alone "
          f"{ep_['compiled_call_s'] / E * 1e3:.3f} ms, {ep_['compiled_update_s'] * 1e6:.1f} us per update; "
          f"one epoch per call {ep_['unfused_epoch_s'] * 1e3:.3f} ms; with default metrics "
          f"~{(ep_['epoch_with_metrics_s'] or float('nan')) * 1e3:.1f} ms)")
    print(f"ebm_ppl {E}-epoch fit call: first in process {ep_['first_call_s']:.3f} s, cached "
          f"{ep_['cached_call_s'] * 1e3:.1f} ms  test LL {ep_['test_ll']:.3f} {[round(v, 3) for v in ep_['test_ll_all']]}")
    print(f"ebm_ppl, same run from ep.BernoulliRBM.init(..., data=x_train) (visible biases from the data): "
          f"test LL {ep_['test_ll_data_init']:.3f} {[round(v, 3) for v in ep_['test_ll_data_init_all']]}")
    print(f"sklearn .fit: call {sk['call_s'] * 1e3:.1f} ms, epoch {sk['epoch_s'] * 1e3:.3f} ms (default threads "
          f"{sk['by_threads']['default'] * 1e3:.3f}, 1 thread {sk['by_threads']['1thread'] * 1e3:.3f})  "
          f"test LL {sk['test_ll']:.3f} {[round(v, 3) for v in sk['test_ll_all']]}")
    print(f"ratios ebm_ppl/sklearn (median per round): epoch {S['ratio_epoch']:.3f} (target <= 0.25; "
          f"shuffle=True {S['ratio_epoch_shuffled']:.3f}), "
          f"cached call {S['ratio_cached_call']:.3f}, first call {S['ratio_first_call']:.1f}")
    return S


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("ep", "sklearn"))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--with-metrics", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    drv.dispatch(a, measure_one, drive)


def measure_one(a) -> dict:
    return measure_ep(a.epochs, a.seed, a.with_metrics) if a.only == "ep" else measure_sklearn(a.epochs, a.seed)


if __name__ == "__main__":
    main()
