"""Parallel tempering against its peers: ebm_ppl, the PyTorch ``rbms`` package's PT loop (its swap
rule as shipped and corrected) and thrml's block Gibbs, on the same models, ladder, start and sweeps.

(A) Mixing, exact answer. A strongly coupled 10x4 Bernoulli RBM (W ~ N(0, 2^2), biases ~
    N(0, 0.1^2), numpy seed 0), whose visible distribution p(v) ∝ exp(-F(v)) is enumerated over the
    2^10 states (cross-checked against ``ep.log_partition``). Every peer runs ``--chains`` chains
    for ``--sweeps`` sweeps from the all-zeros visible state, the PT peers on the same ladder
    (``ep.kernels.parallel_tempering.ladder(--replicas, --min-beta)``, beta = 0 first, fixed: no
    adaptation); the figure is the total variation between the histogram of the chains' final
    beta = 1 visible states and p, against the Monte Carlo floor of ``--chains`` exact draws
    (its expected TV, simulated, and the bound 0.5 sum_s sqrt(p_s (1 - p_s) / C)). Peers:

    * ``ep_pt``: ``ep.sample(key, rbm, "parallel_tempering", betas=..., adapt=False, init=zeros,
      num_warmup=N - 1, num_samples=1)``: per sweep one block-Gibbs update of every replica, then
      even-odd swaps of neighbours (half the pairs per sweep) with the exact rule on
      ``F_beta(v) = -beta b.v - sum_j softplus(beta (c_j + (v W)_j))``;
    * ``rbms_pt``: rbms' own loop (the body of ``rbms.sampling.pt.pt_sampling`` with
      ``increment=1``; its ``find_inverse_temperatures`` crashes in 0.6.0 and the ladder is fixed
      here anyway): ``params.sample_state(chains, n_steps=1, beta)`` per rung (h, v, h), then
      ``rbms.sampling.pt.swap_configurations`` (every neighbour pair in turn, acceptance from
      ``beta * F(v)``, as shipped);
    * ``rbms_pt_corrected``: the same loop with the swap acceptance computed here from F_beta
      above (log A = F_bi(v_i) + F_bj(v_j) - F_bi(v_j) - F_bj(v_i)), swapping with rbms'
      ``swap_chains``;
    * ``ep_gibbs``: ``ep.sample(..., "block_gibbs")``, no tempering (the baseline);
    * ``thrml_gibbs`` (``--thrml-python``, a venv with ``pip install thrml``): thrml's two-block
      sampling program (hidden block, then visible block) of the equivalent Ising model
      (``IsingEBM``/``IsingSamplingProgram``, spins s = 2v - 1), chains vmapped; no tempering.

(B) Speed. A 784x500 and a 64x20 RBM (W ~ N(0, 0.1^2), zero biases), ``--speed-chains`` chains x
    ``--speed-replicas`` replicas: PT sweeps per second (one sweep: one block-Gibbs update of
    every replica of every chain plus one swap round) of ``ep_pt``, ``rbms_pt`` and
    ``rbms_pt_corrected``; and block-Gibbs sweeps per second of ``ep_gibbs`` and ``thrml_gibbs``
    on ``--speed-chains`` chains (no tempering, so R times less work per sweep than PT). Each peer
    is timed on a second call (the first compiles / warms up).

Every peer runs in its own process (``--only NAME --task mix|speed``); seeds 0 .. rounds-1, order
alternating; the tables give medians over rounds (and every round's TV).

    python benchmarks/tempering_peers.py             # 2 rounds, about 4 minutes on 2 cores
    python benchmarks/tempering_peers.py --quick     # 1 round, fewer sweeps
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # noqa: E402  benchmarks/ is not a package: import from this folder

MIX_PEERS = ("ep_pt", "rbms_pt", "rbms_pt_corrected", "ep_gibbs", "thrml_gibbs")
SPEED_PEERS = ("ep_pt", "rbms_pt", "rbms_pt_corrected", "ep_gibbs", "thrml_gibbs")
TORCH_PYTHON = "/tmp/torchvenv/bin/python"
THRML_PYTHON = "/tmp/thrmlvenv/bin/python"
SPEED_SIZES = ((64, 20), (784, 500))


# ------------------------------------------------------------------------------------------------
# the models and the ladder (numpy only: every peer's process builds the same arrays)


def model(task: str, size: str, coupling: float = 2.0):
    """(W (D, M), b (D,), c (M,)) float32; ``coupling``: the standard deviation of the mixing model's W."""
    import numpy as np

    if task == "mix":
        rng = np.random.default_rng(0)
        W = coupling * rng.standard_normal((10, 4))
        b, c = 0.1 * rng.standard_normal(10), 0.1 * rng.standard_normal(4)
    else:
        d, m = (int(s) for s in size.split("x"))
        rng = np.random.default_rng(1)
        W = 0.1 * rng.standard_normal((d, m))
        b, c = np.zeros(d), np.zeros(m)
    return W.astype(np.float32), b.astype(np.float32), c.astype(np.float32)


def betas(replicas: int, min_beta: float) -> tuple:
    """ebm_ppl's geometric ladder with beta = 0 first (``ladder_values``, written out so the torch
    and thrml processes need no JAX): 0, min_beta ** (1 - k / (n - 1)) for k < n, the last 1."""
    n = replicas - 1
    upper = [min_beta ** (1.0 - k / (n - 1)) for k in range(n)] if n > 1 else [1.0]
    upper[-1] = 1.0
    return tuple([0.0] + upper)


def free_energy_np(v, W, b, c, beta=1.0):
    """F_beta(v) = -beta b.v - sum_j softplus(beta (c_j + (v W)_j)), float64."""
    import numpy as np

    v = np.asarray(v, np.float64)
    return -beta * v @ b - np.logaddexp(0.0, beta * (c + v @ W)).sum(-1)


def all_states(d: int):
    import numpy as np

    return ((np.arange(2**d)[:, None] >> np.arange(d)[::-1]) & 1).astype(np.float32)


def exact_p(W, b, c):
    import numpy as np

    f = free_energy_np(all_states(W.shape[0]), W.astype(np.float64), b.astype(np.float64), c.astype(np.float64))
    logp = -f - np.logaddexp.reduce(-f)
    return np.exp(logp), float(np.logaddexp.reduce(-f))


# ------------------------------------------------------------------------------------------------
# the peers: each returns the final beta = 1 visible states (mix) or the seconds per sweep (speed)


def run_ep(a, W, b, c, sweeps, chains):
    import jax
    import numpy as np

    import ebm_ppl as ep

    rbm = ep.BernoulliRBM(W, b, c)
    pt = a.only == "ep_pt"
    opts = dict(betas=betas(a.replicas, a.min_beta), adapt=False) if pt else {}
    init = np.zeros((chains, W.shape[0]), np.float32)

    def go(seed):
        data = ep.sample(jax.random.key(seed), rbm, "parallel_tempering" if pt else "block_gibbs",
                         num_chains=chains, num_warmup=sweeps - 1, num_samples=1, init=init, **opts)
        return np.asarray(data.posterior["x"].values[:, -1])

    go(a.seed + 1000)  # compile
    start = time.perf_counter()
    x = go(a.seed)
    return x, time.perf_counter() - start


def corrected_swap(chains, params, inverse_temperatures):
    """rbms' ``swap_configurations`` (every neighbour pair in turn, swapping with its
    ``swap_chains``) with the exact acceptance for the chain of visible states:
    log A = F_bi(v_i) + F_bj(v_j) - F_bi(v_j) - F_bj(v_i), F_b(v) = -b vbias.v - sum softplus(b (hbias + v W))."""
    import torch
    from rbms.utils import swap_chains

    def F(v, beta):
        return -beta * (v @ params.vbias) - torch.nn.functional.softplus(
            beta * (params.hbias + v @ params.weight_matrix)).sum(1)

    n_chains = chains[0]["visible"].shape[0]
    for idx in range(inverse_temperatures.shape[0] - 1):
        b0, b1 = inverse_temperatures[idx], inverse_temperatures[idx + 1]
        v0, v1 = chains[idx]["visible"], chains[idx + 1]["visible"]
        log_a = F(v0, b0) + F(v1, b1) - F(v1, b0) - F(v0, b1)
        swap = torch.exp(log_a) > torch.rand(size=(n_chains,), device=log_a.device)
        chains[idx], chains[idx + 1] = swap_chains(chains[idx], chains[idx + 1], swap)
    return chains


def run_rbms(a, W, b, c, sweeps, chains):
    import numpy as np
    import torch
    from rbms.bernoulli_bernoulli.classes import BBRBM
    from rbms.sampling.pt import swap_configurations

    params = BBRBM(torch.from_numpy(W), torch.from_numpy(b), torch.from_numpy(c))
    ladder = torch.tensor(betas(a.replicas, a.min_beta), dtype=torch.float32)
    start_v = torch.zeros((chains, W.shape[0]), dtype=torch.float32)

    def go(seed, n):
        torch.manual_seed(seed)
        rungs = [params.init_chains(num_samples=chains, start_v=start_v.clone()) for _ in range(len(ladder))]
        for _ in range(n):
            for i in range(len(rungs)):
                rungs[i] = params.sample_state(n_steps=1, chains=rungs[i], beta=ladder[i].item())
            if a.only == "rbms_pt":
                rungs, _, _ = swap_configurations(chains=rungs, params=params, inverse_temperatures=ladder)
            else:
                rungs = corrected_swap(rungs, params, ladder)
        return rungs[-1]["visible"].numpy()

    with torch.no_grad():
        go(a.seed + 1000, min(sweeps, 20))  # warm up the TorchScript functions
        start = time.perf_counter()
        x = go(a.seed, sweeps)
        seconds = time.perf_counter() - start
    return np.asarray(x), seconds


def run_thrml(a, W, b, c, sweeps, chains):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from thrml import Block, SamplingSchedule, SpinNode, sample_states
    from thrml.models import IsingEBM, IsingSamplingProgram

    d, m = W.shape
    vis, hid = [SpinNode() for _ in range(d)], [SpinNode() for _ in range(m)]
    # E(v, h) = -b.v - c.h - v W h with v = (s + 1) / 2, h = (t + 1) / 2: an Ising model with
    # couplings W / 4 and fields b / 2 + W 1 / 4, c / 2 + W^T 1 / 4 (up to a constant)
    biases = np.concatenate([b / 2 + W.sum(1) / 4, c / 2 + W.sum(0) / 4]).astype(np.float32)
    ii, jj = np.meshgrid(np.arange(d), np.arange(m), indexing="ij")
    edges = [(vis[i], hid[j]) for i, j in zip(ii.ravel(), jj.ravel())]
    t0 = time.perf_counter()
    ebm = IsingEBM(vis + hid, edges, jnp.asarray(biases), jnp.asarray((W / 4).ravel()), jnp.array(1.0))
    blocks = [Block(hid), Block(vis)]  # h | v first, then v | h, as ebm_ppl's and rbms' sweeps
    program = IsingSamplingProgram(ebm, blocks, clamped_blocks=[])
    build_s = time.perf_counter() - t0
    schedule = SamplingSchedule(n_warmup=sweeps, n_samples=1, steps_per_sample=1)
    init = [jnp.zeros((chains, m), jnp.bool_), jnp.zeros((chains, d), jnp.bool_)]

    @jax.jit
    def run(keys, state):
        return jax.vmap(lambda k, s: sample_states(k, program, schedule, s, [], [Block(vis)]))(keys, state)

    def go(seed):
        out = run(jax.random.split(jax.random.key(seed), chains), init)
        return np.asarray(jax.block_until_ready(out[0]))[:, -1].astype(np.float32)

    go(a.seed + 1000)  # compile
    start = time.perf_counter()
    x = go(a.seed)
    return x, time.perf_counter() - start, build_s


def measure_one(a) -> dict:
    W, b, c = model(a.task, a.size, a.coupling)
    chains = a.chains if a.task == "mix" else a.speed_chains
    if a.task == "speed":
        a.replicas = a.speed_replicas
    sweeps = a.sweeps if a.task == "mix" else a.speed_sweeps
    extra = {}
    if a.only.startswith("ep_"):
        run = run_ep
        import jax
        extra["versions"] = {"jax": jax.__version__}
    elif a.only.startswith("rbms"):
        run = run_rbms
        import torch
        extra["versions"] = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    else:
        run = run_thrml
        import jax
        extra["versions"] = {"jax": jax.__version__}
    x, seconds, *build = run(a, W, b, c, sweeps, chains)
    if build:
        extra["build_s"] = build[0]
    res = {"seconds": seconds, "sweeps": sweeps, "chains": chains, **extra}
    if a.task == "mix":  # the final states, packed as integers (bit k of a state: unit D - 1 - k)
        res["x"] = pack(x)
        res["x_short"] = pack(run(a, W, b, c, a.short_sweeps, chains)[0])
    return res


def pack(x) -> list:
    import numpy as np

    x = np.asarray(x).round().astype(np.int64)
    return (x @ (1 << np.arange(x.shape[1])[::-1])).tolist()


# ------------------------------------------------------------------------------------------------
# the driver


def tv(idx, p) -> float:
    """Total variation between the histogram of the packed states ``idx`` and ``p``."""
    import numpy as np

    idx = np.asarray(idx, np.int64)
    q = np.bincount(idx, minlength=p.shape[0]) / idx.shape[0]
    return 0.5 * float(np.abs(q - p).sum())


def check_swap_rule(coupling: float) -> float:
    """Enumeration check of the free energy the corrected swap uses: for the Model-A RBM at
    beta = 0.3, the visible marginal of exp(-beta E(v, h)) (all 2^14 joint states) against
    exp(-F_beta(v)) / Z; returns the largest absolute difference of the probabilities."""
    import numpy as np

    W, b, c = (t.astype(np.float64) for t in model("mix", "", coupling))
    beta = 0.3
    V, H = all_states(10).astype(np.float64), all_states(4).astype(np.float64)
    E = -(V @ b)[:, None] - (H @ c)[None, :] - V @ W @ H.T
    joint = -beta * E
    marg = np.logaddexp.reduce(joint, axis=1)
    marg = np.exp(marg - np.logaddexp.reduce(marg))
    f = -free_energy_np(V, W, b, c, beta)
    return float(np.abs(marg - np.exp(f - np.logaddexp.reduce(f))).max())


def peer(a, name, task, seed, size="", **over):
    args_list = ["--only", name, "--task", task, "--seed", str(seed), "--size", size,
                 "--chains", str(a.chains), "--coupling", str(a.coupling), "--replicas", str(a.replicas),
                 "--min-beta", str(a.min_beta), "--sweeps", str(a.sweeps), "--short-sweeps", str(a.short_sweeps),
                 "--speed-chains", str(a.speed_chains), "--speed-replicas", str(a.speed_replicas),
                 "--speed-sweeps", str(over.get("speed_sweeps", a.speed_sweeps))]
    if name.startswith("rbms"):
        return drv.run_peer_with(a.torch_python, __file__, args_list)
    if name.startswith("thrml"):
        return drv.run_peer_with(a.thrml_python, __file__, args_list)
    return drv.run_peer(__file__, args_list)


def drive(a) -> dict:
    import numpy as np

    if a.quick:
        a.chains, a.sweeps, a.speed_sweeps = min(a.chains, 1000), min(a.sweeps, 200), min(a.speed_sweeps, 50)
    rounds = drv.rounds_for(a)
    load0 = drv.load()
    ladder = betas(a.replicas, a.min_beta)
    drv.header("tempering_peers", load0, f"; (A) 10x4 RBM W~N(0,{a.coupling:g}^2), {a.chains} chains x "
                                         f"{a.replicas} rungs "
                                         f"{[round(x, 4) for x in ladder]}, {a.sweeps} sweeps from v = 0; "
                                         f"(B) {a.speed_chains} chains x {a.speed_replicas} replicas")
    with open("/proc/loadavg") as f:
        print(f"# /proc/loadavg: {f.read().strip()}")
    have_thrml = os.path.exists(a.thrml_python)
    mix_peers = [p for p in MIX_PEERS if have_thrml or not p.startswith("thrml")]
    speed_peers = [p for p in SPEED_PEERS if have_thrml or not p.startswith("thrml")]

    W, b, c = model("mix", "", a.coupling)
    p, log_z = exact_p(W, b, c)
    import ebm_ppl as ep
    ep_log_z = float(ep.log_partition(ep.BernoulliRBM(W, b, c)))
    C = a.chains
    rng = np.random.default_rng(123)
    exact_tv = float(np.mean([0.5 * np.abs(rng.multinomial(C, p) / C - p).sum() for _ in range(400)]))
    bound = 0.5 * float(np.sum(np.sqrt(p * (1 - p) / C)))
    print(f"# exact: log Z {log_z:.5f} (ep.log_partition {ep_log_z:.5f}); largest p {p.max():.4f}; "
          f"swap-rule free energy checked by joint enumeration: max |diff| {check_swap_rule(a.coupling):.2e}")

    tvs = {q: [] for q in mix_peers}
    tvs_short = {q: [] for q in mix_peers}
    secs = {q: [] for q in mix_peers}
    for r in range(rounds):
        for q in drv.round_order(mix_peers, r):
            res = peer(a, q, "mix", r)
            tvs[q].append(tv(res["x"], p))
            tvs_short[q].append(tv(res["x_short"], p))
            secs[q].append(res["seconds"])
            print(f"  mix seed {r} {q:18s} TV {tvs[q][-1]:.4f} after {a.sweeps} sweeps ({res['seconds']:.2f} s), "
                  f"{tvs_short[q][-1]:.4f} after {a.short_sweeps}", flush=True)

    speed = {}
    for d, m in SPEED_SIZES:
        size = f"{d}x{m}"
        n = a.speed_sweeps * (10 if d * m < 10_000 else 1)
        speed[size] = {q: [] for q in speed_peers}
        for r in range(rounds):
            for q in drv.round_order(speed_peers, r):
                res = peer(a, q, "speed", r, size, speed_sweeps=n)
                speed[size][q].append(res["sweeps"] / res["seconds"])
                print(f"  speed {size} seed {r} {q:18s} {speed[size][q][-1]:9.1f} sweeps/s"
                      + (f" (thrml program built in {res['build_s']:.1f} s)" if "build_s" in res else ""), flush=True)

    load1 = drv.load()
    with open("/proc/loadavg") as f:
        loadavg1 = f.read().strip()
    S = {"date": drv.today(), "rounds": rounds, "load_start": load0, "load_end": load1, "machine": drv.machine(),
         "cpu": drv.cpu_model(), "cores": drv.cores(), "settings": vars(a).copy(), "ladder": ladder, "tv": tvs,
         "tv_short": tvs_short,
         "mix_seconds": secs, "exact_draw_tv": exact_tv, "floor_bound": bound, "sweeps_per_s": speed}
    print(f"\n# results {S['date']}; CPU {S['cpu']}; {S['cores']} cores; load {load0:.2f} -> {load1:.2f} "
          f"(/proc/loadavg at end: {loadavg1}); {rounds} round(s)")
    print(f"\n(A) 10x4 RBM, W ~ N(0, {a.coupling:g}^2): TV of the beta = 1 states of {C} chains after "
          f"{a.sweeps} sweeps "
          f"(ladder {[round(x, 3) for x in ladder]})")
    print(f"    exact draws of {C}: expected TV {exact_tv:.4f}; 0.5 sum sqrt(p(1-p)/C) = {bound:.4f}")
    print(f"{'peer':20s} {'TV @' + str(a.short_sweeps):>9s} {'TV @' + str(a.sweeps):>9s} {'/ exact-draw':>13s}  "
          f"{'run s':>7s}  per round @{a.sweeps}")
    for q in mix_peers:
        print(f"{q:20s} {drv.med(tvs_short[q]):9.4f} {drv.med(tvs[q]):9.4f} {drv.med(tvs[q]) / exact_tv:13.2f}  "
              f"{drv.med(secs[q]):7.2f}  {[round(v, 4) for v in tvs[q]]}")
    print(f"\n(B) sweeps per second, {a.speed_chains} chains; PT peers x {a.speed_replicas} replicas "
          f"(one sweep: every replica updated once + one swap round); Gibbs peers no tempering")
    print(f"{'peer':20s} " + " ".join(f"{s:>12s}" for s in speed) + "   (median; x ep_pt or x ep_gibbs)")
    for q in speed_peers:
        ref = "ep_gibbs" if q.endswith("gibbs") else "ep_pt"
        cells = [f"{drv.med(v[q]):9.1f} ({drv.med(v[q]) / drv.med(v[ref]):4.2f}x)" for v in speed.values()]
        print(f"{q:20s} " + " ".join(f"{x:>12s}" for x in cells))
    return S


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 round, 1000 chains x 200 mixing sweeps, 50 (500) speed sweeps")
    ap.add_argument("--only", choices=sorted(set(MIX_PEERS) | set(SPEED_PEERS)))
    ap.add_argument("--task", choices=("mix", "speed"), default="mix")
    ap.add_argument("--size", default="", help="speed task: DxM")
    ap.add_argument("--rounds", type=int, default=2, help="seeds 0 .. rounds - 1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chains", type=int, default=10000)
    ap.add_argument("--coupling", type=float, default=2.0, help="standard deviation of the mixing model's W")
    ap.add_argument("--replicas", type=int, default=6)
    ap.add_argument("--min-beta", type=float, default=0.1)
    ap.add_argument("--sweeps", type=int, default=500, help="mixing sweeps")
    ap.add_argument("--short-sweeps", type=int, default=10, help="the mixing table's short run")
    ap.add_argument("--speed-chains", type=int, default=100)
    ap.add_argument("--speed-replicas", type=int, default=8)
    ap.add_argument("--speed-sweeps", type=int, default=100, help="timed sweeps at 784x500 (x10 at 64x20)")
    ap.add_argument("--torch-python", default=TORCH_PYTHON)
    ap.add_argument("--thrml-python", default=THRML_PYTHON)
    ap.add_argument("--json")
    drv.dispatch(ap.parse_args(argv), measure_one, drive)


if __name__ == "__main__":
    main()
