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

(A, pooled) The same model, ladder and start, ``--chains`` chains of ``ep_pt``, ``rbms_pt``,
    ``rbms_pt_corrected`` and ``ep_gibbs``: after a burn-in of ``--burn-in`` sweeps, the beta = 1
    visible state of every chain after every sweep is counted, per chain, over the next S =
    ``--pool-sweeps`` sweeps and, in the same run, over T = ``--pool-factor`` x S sweeps (the first
    S included); the figure is the TV between the pooled histogram f (C S or C T states) and p.
    ``ep_pt``/``ep_gibbs`` draw with ``ep.sample(..., num_warmup=B, num_samples=T)`` (every draw
    of the beta = 1 replica, ``posterior.x``) in batches of 2000 chains; the rbms peers count inside
    their loop (:func:`rbms_loop`). Pooled states are autocorrelated, so the floor is not the
    i.i.d. one: the variance v_s of each state's frequency is estimated from the spread of the
    per-chain frequencies over the C independent chains (v_s = var_c(n_cs / T) / C, which includes
    the autocorrelation), and the table gives, per pool size, the TV, the floor 0.5 sum_s
    sqrt(2 v_s / pi) (the expected TV of a sampler with these variances and no bias), their ratio,
    and chi2/K, the mean of (f_s - p_s)^2 / v_s over the K states with p_s C S >= 100 (the same
    states at both sizes; 1 without bias). A sampler whose stationary distribution q is p has
    TV/floor and chi2/K near 1 at both sizes and TV @T / TV @S near sqrt(S / T); one with q != p
    has f -> q, so its TV levels off at TV(q, p) (ratio -> 1) and its chi2/K - 1 grows like the
    pooled sweeps (x T / S from S to T). ``ep_pt`` and
    ``rbms_pt_corrected`` are the reference for "a correct sampler with this much pooling". The
    i.i.d. floor of C S / C T exact draws and tau = (floor / i.i.d. floor)^2 (about the sweeps
    per independent draw) are printed too. ``--pool-sweeps 0`` (or ``--tasks`` without ``pool``)
    skips it.

(B) Speed. A 784x500 and a 64x20 RBM (W ~ N(0, 0.1^2), zero biases), ``--speed-chains`` chains x
    ``--speed-replicas`` replicas: PT sweeps per second (one sweep: one block-Gibbs update of
    every replica of every chain plus one swap round) of ``ep_pt``, ``rbms_pt`` and
    ``rbms_pt_corrected``; and block-Gibbs sweeps per second of ``ep_gibbs`` and ``thrml_gibbs``
    on ``--speed-chains`` chains (no tempering, so R times less work per sweep than PT). Each peer
    is timed on a second call (the first compiles / warms up).

Every peer runs in its own process (``--only NAME --task mix|pool|speed``); seeds 0 .. rounds-1,
order alternating; the tables give medians over rounds (and every round's TV).

    python benchmarks/tempering_peers.py             # 2 rounds, about 10 minutes on 2 cores
    python benchmarks/tempering_peers.py --quick     # 1 round, fewer chains and sweeps
    python benchmarks/tempering_peers.py --coupling 3 --rounds 3 --tasks mix,pool   # no speed task
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # noqa: E402  benchmarks/ is not a package: import from this folder

MIX_PEERS = ("ep_pt", "rbms_pt", "rbms_pt_corrected", "ep_gibbs", "thrml_gibbs")
POOL_PEERS = ("ep_pt", "rbms_pt", "rbms_pt_corrected", "ep_gibbs")
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
# the peers: each returns the final beta = 1 visible states (mix) or the seconds per sweep (speed);
# the pooled run's per-chain counts (pool) further down


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


def rbms_loop(a, W, b, c, chains):
    """rbms' PT loop on ``chains`` chains as ``go(seed, sweeps, each=None)``: every rung started at
    v = 0, per sweep ``params.sample_state`` of each rung, then the swap round (as shipped for
    ``rbms_pt``, :func:`corrected_swap` otherwise), then ``each(t, v)`` with the sweep's index t
    and the beta = 1 visible states v; returns the final v. Call it under ``torch.no_grad()``."""
    import torch
    from rbms.bernoulli_bernoulli.classes import BBRBM
    from rbms.sampling.pt import swap_configurations

    params = BBRBM(torch.from_numpy(W), torch.from_numpy(b), torch.from_numpy(c))
    ladder = torch.tensor(betas(a.replicas, a.min_beta), dtype=torch.float32)
    start_v = torch.zeros((chains, W.shape[0]), dtype=torch.float32)

    def go(seed, n, each=None):
        torch.manual_seed(seed)
        rungs = [params.init_chains(num_samples=chains, start_v=start_v.clone()) for _ in range(len(ladder))]
        for t in range(n):
            for i in range(len(rungs)):
                rungs[i] = params.sample_state(n_steps=1, chains=rungs[i], beta=ladder[i].item())
            if a.only == "rbms_pt":
                rungs, _, _ = swap_configurations(chains=rungs, params=params, inverse_temperatures=ladder)
            else:
                rungs = corrected_swap(rungs, params, ladder)
            if each is not None:
                each(t, rungs[-1]["visible"])
        return rungs[-1]["visible"]

    return go


def run_rbms(a, W, b, c, sweeps, chains):
    import numpy as np
    import torch

    go = rbms_loop(a, W, b, c, chains)
    with torch.no_grad():
        go(a.seed + 1000, min(sweeps, 20))  # warm up the TorchScript functions
        start = time.perf_counter()
        x = go(a.seed, sweeps).numpy()
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


POOL_BATCH = 2000  # ep.sample's chains per call in the pooled run (its draws stay a few 100 MB)


def pool_ep(a, W, b, c, chains):
    """The pooled run of ``ep_pt`` / ``ep_gibbs``: ``ep.sample(..., num_warmup=--burn-in,
    num_samples=T)`` (T = --pool-factor x --pool-sweeps; every draw of the beta = 1 replica, one
    per sweep) from v = 0, in batches of :data:`POOL_BATCH` chains (independent keys); returns the
    per-chain counts of the first --pool-sweeps draws and of all T, and the seconds (compile
    included)."""
    import jax
    import numpy as np

    import ebm_ppl as ep

    rbm = ep.BernoulliRBM(W, b, c)
    pt = a.only == "ep_pt"
    opts = {"betas": betas(a.replicas, a.min_beta), "adapt": False} if pt else {}
    n_states, T = 2 ** W.shape[0], a.pool_factor * a.pool_sweeps
    short, full = [], []
    start = time.perf_counter()
    for k, lo in enumerate(range(0, chains, POOL_BATCH)):
        m = min(POOL_BATCH, chains - lo)
        data = ep.sample(jax.random.fold_in(jax.random.key(a.seed), k), rbm,
                         "parallel_tempering" if pt else "block_gibbs", num_chains=m, num_warmup=a.burn_in,
                         num_samples=T, init=np.zeros((m, W.shape[0]), np.float32), **opts)
        idx = pack_np(data.posterior["x"].values)  # (m, T)
        short.append(chain_counts(idx[:, :a.pool_sweeps], n_states))
        full.append(chain_counts(idx, n_states))
    return [np.concatenate(short), np.concatenate(full)], time.perf_counter() - start


def pool_rbms(a, W, b, c, chains):
    """The pooled run of ``rbms_pt`` / ``rbms_pt_corrected``: :func:`rbms_loop` for --burn-in + T
    sweeps, counting inside the loop, after every sweep past the burn-in, each chain's beta = 1
    state; returns the per-chain counts after the first --pool-sweeps of them and after all T, and
    the seconds (after a 20-sweep warm-up)."""
    import torch

    go = rbms_loop(a, W, b, c, chains)
    d = W.shape[0]
    counts = torch.zeros((chains, 2 ** d), dtype=torch.int64)
    rows, powers = torch.arange(chains), 2 ** torch.arange(d - 1, -1, -1)
    short = []

    def each(t, v):
        if t >= a.burn_in:
            counts[rows, (v.round().long() * powers).sum(1)] += 1
            if t == a.burn_in + a.pool_sweeps - 1:
                short.append(counts.clone())

    with torch.no_grad():
        go(a.seed + 1000, 20)  # warm up the TorchScript functions
        start = time.perf_counter()
        go(a.seed, a.burn_in + a.pool_factor * a.pool_sweeps, each)
        seconds = time.perf_counter() - start
    return [short[0].numpy(), counts.numpy()], seconds


def chain_counts(idx, n_states: int):
    """Per-chain histograms (C, n_states) of the packed states ``idx`` (C, T)."""
    import numpy as np

    rows = np.arange(idx.shape[0])[:, None] * n_states
    return np.bincount((rows + idx).ravel(), minlength=idx.shape[0] * n_states).reshape(idx.shape[0], n_states)


def count_moments(counts) -> dict:
    """What the driver needs of per-chain counts n_cs: sum_c n_cs and sum_c n_cs^2 per state."""
    import numpy as np

    counts = np.asarray(counts, np.int64)
    return {"sum": counts.sum(0).tolist(), "sumsq": (counts**2).sum(0).tolist()}


def measure_one(a) -> dict:
    W, b, c = model("speed" if a.task == "speed" else "mix", a.size, a.coupling)
    chains = a.speed_chains if a.task == "speed" else a.chains
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
    if a.task == "pool":
        counts, seconds = (pool_ep if a.only.startswith("ep_") else pool_rbms)(a, W, b, c, chains)
        return {"seconds": seconds, "chains": chains, "burn_in": a.burn_in,
                "sweeps": [a.pool_sweeps, a.pool_factor * a.pool_sweeps],
                "moments": [count_moments(n) for n in counts], **extra}
    x, seconds, *build = run(a, W, b, c, sweeps, chains)
    if build:
        extra["build_s"] = build[0]
    res = {"seconds": seconds, "sweeps": sweeps, "chains": chains, **extra}
    if a.task == "mix":  # the final states, packed as integers (bit k of a state: unit D - 1 - k)
        res["x"] = pack(x)
        res["x_short"] = pack(run(a, W, b, c, a.short_sweeps, chains)[0])
    return res


def pack(x) -> list:
    return pack_np(x).tolist()


def pack_np(x):
    """The states of the last axis of ``x`` as integers (bit k: unit D - 1 - k)."""
    import numpy as np

    x = np.asarray(x).round().astype(np.int64)
    return x @ (1 << np.arange(x.shape[-1])[::-1])


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
                 "--burn-in", str(a.burn_in), "--pool-sweeps", str(a.pool_sweeps), "--pool-factor", str(a.pool_factor),
                 "--speed-chains", str(a.speed_chains), "--speed-replicas", str(a.speed_replicas),
                 "--speed-sweeps", str(over.get("speed_sweeps", a.speed_sweeps))]
    if name.startswith("rbms"):
        return drv.run_peer_with(a.torch_python, __file__, args_list)
    if name.startswith("thrml"):
        return drv.run_peer_with(a.thrml_python, __file__, args_list)
    return drv.run_peer(__file__, args_list)


def pool_stats(m: dict, p, chains: int, sweeps: int, keep) -> dict:
    """The pooled histogram f_s = sum_c n_cs / (C T) of the per-chain counts n_cs of C chains over
    T sweeps (``m``: :func:`count_moments`) against the exact p:

    * ``tv``: 0.5 sum_s |f_s - p_s|;
    * ``floor``: 0.5 sum_s sqrt(2 v_s / pi) with v_s = var_c(n_cs / T) / C, the variance of f_s
      over independent chains (autocorrelation included): the expected TV of a sampler without
      bias whose frequencies have these variances (normal approximation);
    * ``chi2_k``: the mean of (f_s - p_s)^2 / v_s over the K states of the mask ``keep`` (the
      same states at every T): 1 for a sampler without bias, otherwise 1 + the mean of
      (q_s - p_s)^2 / v_s, whose second term grows like T (v_s shrinks like 1 / T);
    * ``iid``: the same floor for C T exact draws, 0.5 sum_s sqrt(2 p_s (1 - p_s) / (pi C T)), and
      ``tau`` = (floor / iid)^2, about the sweeps per independent draw."""
    import numpy as np

    s1, s2 = np.asarray(m["sum"], np.float64), np.asarray(m["sumsq"], np.float64)
    f = s1 / (chains * sweeps)
    v = np.maximum(s2 / sweeps**2 - chains * f**2, 0.0) / (chains - 1) / chains
    floor = 0.5 * float(np.sqrt(2 * v / np.pi).sum())
    iid = 0.5 * float(np.sqrt(2 * p * (1 - p) / (np.pi * chains * sweeps)).sum())
    keep = keep & (v > 0)
    chi2_k = float(np.mean((f - p)[keep] ** 2 / v[keep]))
    return {"tv": 0.5 * float(np.abs(f - p).sum()), "floor": floor, "chi2_k": chi2_k, "k": int(keep.sum()),
            "iid": iid, "tau": (floor / iid) ** 2}


def mix_reference(a, p) -> tuple:
    """The Monte Carlo floor of --chains exact draws: (expected TV, simulated; the bound)."""
    import numpy as np

    C = a.chains
    rng = np.random.default_rng(123)
    exact_tv = float(np.mean([0.5 * np.abs(rng.multinomial(C, p) / C - p).sum() for _ in range(400)]))
    return exact_tv, 0.5 * float(np.sum(np.sqrt(p * (1 - p) / C)))


def drive_mix(a, peers, p, rounds) -> dict:
    """Task (A): every peer's final-state TV (after --sweeps and --short-sweeps) and seconds."""
    out = {"tv": {q: [] for q in peers}, "tv_short": {q: [] for q in peers}, "seconds": {q: [] for q in peers}}
    for r in range(rounds):
        for q in drv.round_order(peers, r):
            res = peer(a, q, "mix", r)
            out["tv"][q].append(tv(res["x"], p))
            out["tv_short"][q].append(tv(res["x_short"], p))
            out["seconds"][q].append(res["seconds"])
            print(f"  mix seed {r} {q:18s} TV {out['tv'][q][-1]:.4f} after {a.sweeps} sweeps ({res['seconds']:.2f} s), "
                  f"{out['tv_short'][q][-1]:.4f} after {a.short_sweeps}", flush=True)
    return out


def drive_pool(a, peers, p, rounds) -> dict:
    """Task (A), pooled: every peer's :func:`pool_stats` after --pool-sweeps and --pool-factor x
    that many pooled sweeps (``short``, ``long``), and the seconds of the pooled run, per seed."""
    out = {q: [] for q in peers}
    for r in range(rounds):
        for q in drv.round_order(peers, r):
            res = peer(a, q, "pool", r)
            keep = p * res["chains"] * res["sweeps"][0] >= 100  # chi2/K's states: >= 100 expected in the short pool
            short, long = (pool_stats(m, p, res["chains"], t, keep) for m, t in zip(res["moments"], res["sweeps"]))
            out[q].append({"short": short, "long": long, "seconds": res["seconds"]})
            print(f"  pool seed {r} {q:18s} TV {short['tv']:.4f} / {long['tv']:.4f} pooled over "
                  f"{res['sweeps'][0]} / {res['sweeps'][1]} sweeps (no-bias floor {short['floor']:.4f} / "
                  f"{long['floor']:.4f}; chi2/K {short['chi2_k']:.2f} / {long['chi2_k']:.2f}) "
                  f"({res['seconds']:.1f} s)", flush=True)
    return out


def drive_speed(a, peers, rounds) -> dict:
    """Task (B): sweeps per second of every peer at every size, per seed."""
    speed = {}
    for d, m in SPEED_SIZES:
        size = f"{d}x{m}"
        n = a.speed_sweeps * (10 if d * m < 10_000 else 1)
        speed[size] = {q: [] for q in peers}
        for r in range(rounds):
            for q in drv.round_order(peers, r):
                res = peer(a, q, "speed", r, size, speed_sweeps=n)
                speed[size][q].append(res["sweeps"] / res["seconds"])
                print(f"  speed {size} seed {r} {q:18s} {speed[size][q][-1]:9.1f} sweeps/s"
                      + (f" (thrml program built in {res['build_s']:.1f} s)" if "build_s" in res else ""), flush=True)
    return speed


def print_mix(a, mix, exact_tv, bound, ladder) -> None:
    C = a.chains
    print(f"\n(A) 10x4 RBM, W ~ N(0, {a.coupling:g}^2): TV of the beta = 1 states of {C} chains after "
          f"{a.sweeps} sweeps "
          f"(ladder {[round(x, 3) for x in ladder]})")
    print(f"    exact draws of {C}: expected TV {exact_tv:.4f}; 0.5 sum sqrt(p(1-p)/C) = {bound:.4f}")
    print(f"{'peer':20s} {'TV @' + str(a.short_sweeps):>9s} {'TV @' + str(a.sweeps):>9s} {'/ exact-draw':>13s}  "
          f"{'run s':>7s}  per round @{a.sweeps}")
    for q in mix["tv"]:
        tvs = mix["tv"][q]
        print(f"{q:20s} {drv.med(mix['tv_short'][q]):9.4f} {drv.med(tvs):9.4f} {drv.med(tvs) / exact_tv:13.2f}  "
              f"{drv.med(mix['seconds'][q]):7.2f}  {[round(v, 4) for v in tvs]}")


def print_pool(a, pool) -> None:
    S, T = a.pool_sweeps, a.pool_factor * a.pool_sweeps
    C = a.chains
    first = next(iter(pool.values()))[0]
    print(f"\n(A, pooled) the same model, ladder and start: the beta = 1 states of {C} chains after every "
          f"sweep past a burn-in of {a.burn_in}, pooled over {S} sweeps ({C * S} states) and {T} ({C * T}); "
          f"TV of the pooled histogram against p")
    print(f"    floor: the expected TV without bias, from the variance of each state's frequency over the "
          f"independent chains; i.i.d. floor of {C * S} / {C * T} exact draws {first['short']['iid']:.5f} / "
          f"{first['long']['iid']:.5f}; tau = (floor / i.i.d. floor)^2 @{T}; chi2/K: mean (f - p)^2 / var "
          f"over the K = {first['short']['k']} states with p C {S} >= 100 (1 without bias; 1 + b T with a bias)")
    print(f"{'peer':20s} {'TV @' + str(S):>9s} {'floor':>7s} {'TV/fl':>6s} {'chi2/K':>7s} "
          f"{'TV @' + str(T):>9s} {'floor':>7s} {'TV/fl':>6s} {'chi2/K':>7s} {'TV ratio':>8s} {'tau':>5s} "
          f"{'run s':>6s}  per seed TV @{S} / @{T}")

    def m(runs, part, key):
        return drv.med([r[part][key] for r in runs])

    for q, runs in pool.items():
        ratio = drv.med([r["long"]["tv"] / r["short"]["tv"] for r in runs])
        cells = []
        for part in ("short", "long"):
            ratio_floor = drv.med([r[part]["tv"] / r[part]["floor"] for r in runs])
            cells.append(f"{m(runs, part, 'tv'):9.5f} {m(runs, part, 'floor'):7.5f} {ratio_floor:6.2f} "
                         f"{m(runs, part, 'chi2_k'):7.2f}")
        seeds = ", ".join(f"{r['short']['tv']:.5f} / {r['long']['tv']:.5f}" for r in runs)
        print(f"{q:20s} {cells[0]} {cells[1]} {ratio:8.2f} {m(runs, 'long', 'tau'):5.1f} "
              f"{drv.med([r['seconds'] for r in runs]):6.1f}  {seeds}")
    print(f"    TV ratio: TV @{T} / TV @{S} (median over seeds); without bias about "
          f"{(S / T) ** 0.5:.2f} (= sqrt({S}/{T})); with a bias it tends to 1")


def print_speed(a, speed) -> None:
    print(f"\n(B) sweeps per second, {a.speed_chains} chains; PT peers x {a.speed_replicas} replicas "
          f"(one sweep: every replica updated once + one swap round); Gibbs peers no tempering")
    print(f"{'peer':20s} " + " ".join(f"{s:>12s}" for s in speed) + "   (median; x ep_pt or x ep_gibbs)")
    for q in next(iter(speed.values())):
        ref = "ep_gibbs" if q.endswith("gibbs") else "ep_pt"
        cells = [f"{drv.med(v[q]):9.1f} ({drv.med(v[q]) / drv.med(v[ref]):4.2f}x)" for v in speed.values()]
        print(f"{q:20s} " + " ".join(f"{x:>12s}" for x in cells))


def drive(a) -> dict:
    if a.quick:
        a.chains, a.sweeps, a.speed_sweeps = min(a.chains, 1000), min(a.sweeps, 200), min(a.speed_sweeps, 50)
        a.pool_sweeps, a.burn_in = min(a.pool_sweeps, 100), min(a.burn_in, 50)
    tasks = set(a.tasks.split(","))
    if a.pool_sweeps <= 0:
        tasks.discard("pool")
    rounds = drv.rounds_for(a)
    load0 = drv.load()
    ladder = betas(a.replicas, a.min_beta)
    drv.header("tempering_peers", load0, f"; (A) 10x4 RBM W~N(0,{a.coupling:g}^2), {a.chains} chains x "
                                         f"{a.replicas} rungs "
                                         f"{[round(x, 4) for x in ladder]}, {a.sweeps} sweeps from v = 0; "
                                         f"pooled: burn-in {a.burn_in}, {a.pool_sweeps} and "
                                         f"{a.pool_factor * a.pool_sweeps} sweeps; "
                                         f"(B) {a.speed_chains} chains x {a.speed_replicas} replicas; "
                                         f"tasks {sorted(tasks)}")
    with open("/proc/loadavg") as f:
        print(f"# /proc/loadavg: {f.read().strip()}")
    have_thrml = os.path.exists(a.thrml_python)
    mix_peers = [p for p in MIX_PEERS if have_thrml or not p.startswith("thrml")]
    speed_peers = [p for p in SPEED_PEERS if have_thrml or not p.startswith("thrml")]

    W, b, c = model("mix", "", a.coupling)
    p, log_z = exact_p(W, b, c)
    import ebm_ppl as ep
    ep_log_z = float(ep.log_partition(ep.BernoulliRBM(W, b, c)))
    exact_tv, bound = mix_reference(a, p)
    print(f"# exact: log Z {log_z:.5f} (ep.log_partition {ep_log_z:.5f}); largest p {p.max():.4f}; "
          f"swap-rule free energy checked by joint enumeration: max |diff| {check_swap_rule(a.coupling):.2e}")

    mix = drive_mix(a, mix_peers, p, rounds) if "mix" in tasks else None
    pool = drive_pool(a, POOL_PEERS, p, rounds) if "pool" in tasks else None
    speed = drive_speed(a, speed_peers, rounds) if "speed" in tasks else None

    load1 = drv.load()
    with open("/proc/loadavg") as f:
        loadavg1 = f.read().strip()
    S = {"date": drv.today(), "rounds": rounds, "load_start": load0, "load_end": load1, "machine": drv.machine(),
         "cpu": drv.cpu_model(), "cores": drv.cores(), "settings": vars(a).copy(), "ladder": ladder,
         "tv": mix and mix["tv"], "tv_short": mix and mix["tv_short"], "mix_seconds": mix and mix["seconds"],
         "exact_draw_tv": exact_tv, "floor_bound": bound, "pool": pool, "sweeps_per_s": speed}
    print(f"\n# results {S['date']}; CPU {S['cpu']}; {S['cores']} cores; load {load0:.2f} -> {load1:.2f} "
          f"(/proc/loadavg at end: {loadavg1}); {rounds} round(s)")
    if mix:
        print_mix(a, mix, exact_tv, bound, ladder)
    if pool:
        print_pool(a, pool)
    if speed:
        print_speed(a, speed)
    return S


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 round, 1000 chains x 200 mixing sweeps, pooled 50 + 100 / 400, 50 (500) speed sweeps")
    ap.add_argument("--only", choices=sorted(set(MIX_PEERS) | set(SPEED_PEERS)))
    ap.add_argument("--task", choices=("mix", "pool", "speed"), default="mix", help="with --only: what to measure")
    ap.add_argument("--tasks", default="mix,pool,speed", help="the driver's tasks, comma-separated")
    ap.add_argument("--size", default="", help="speed task: DxM")
    ap.add_argument("--rounds", type=int, default=2, help="seeds 0 .. rounds - 1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chains", type=int, default=10000)
    ap.add_argument("--coupling", type=float, default=2.0, help="standard deviation of the mixing model's W")
    ap.add_argument("--replicas", type=int, default=6)
    ap.add_argument("--min-beta", type=float, default=0.1)
    ap.add_argument("--sweeps", type=int, default=500, help="mixing sweeps")
    ap.add_argument("--short-sweeps", type=int, default=10, help="the mixing table's short run")
    ap.add_argument("--burn-in", type=int, default=100, help="pooled mixing run: sweeps before pooling")
    ap.add_argument("--pool-sweeps", type=int, default=500,
                    help="pooled mixing run: the short pool (sweeps after the burn-in); 0: no pooled run")
    ap.add_argument("--pool-factor", type=int, default=4, help="pooled mixing run: the long pool is this x the short")
    ap.add_argument("--speed-chains", type=int, default=100)
    ap.add_argument("--speed-replicas", type=int, default=8)
    ap.add_argument("--speed-sweeps", type=int, default=100, help="timed sweeps at 784x500 (x10 at 64x20)")
    ap.add_argument("--torch-python", default=TORCH_PYTHON)
    ap.add_argument("--thrml-python", default=THRML_PYTHON)
    ap.add_argument("--json")
    drv.dispatch(ap.parse_args(argv), measure_one, drive)


if __name__ == "__main__":
    main()
