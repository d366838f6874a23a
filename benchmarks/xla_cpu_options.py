"""XLA's CPU choices (dot library, threads, vector width) against issue 21's three targets.

ebm_ppl compiles its loops with XLA's CPU defaults plus host-chosen options (the vector width, and
on Intel CPUs oneDNN for the products of large models; ``ebm_ppl.compiler``). This script measures
what XLA's CPU choices give on the machine in front of you, each in its own process with
``XLA_FLAGS`` set (or ``taskset``), against the peers measured in the same rounds:

* ``gibbs784``: the block-Gibbs kernel loop at 784 x 500, 100 chains, sweeps/s
  (``gibbs_sweeps.py --only jax_philox2x32_64 --lite``) / scikit-learn's ``BernoulliRBM.gibbs``
  (the faster of its default and one-thread BLAS); target >= 3.
* ``gibbs64``: the same at 64 x 20 (no target; the small-model end).
* ``pcd``: a PCD-1 epoch of the 64 x 20 digits RBM (``rbm_training.py --only ep``) / scikit-learn's
  epoch; target <= 0.25.
* ``jem``: a JEM epoch's train part (``jem_vs_torch.py --only ebm_ppl``) / PyTorch's (the torch
  venv, ``--torch-python``); target <= 0.6.

Configurations (``--configs`` picks some; each changes only how XLA compiles). All but the first
set ``EBM_PPL_CPU_DOTS=ynnpack``, so that ebm_ppl adds nothing of its own to the flags:

* ``ebm_ppl``: what ebm_ppl does on this host (the user's default);
* ``ynnpack``: XLA's defaults (YNNPACK for every product) with ebm_ppl's vector width;
* ``ynn_fusions``: YNNPACK also for elementwise and reduction fusions;
* ``onednn``: every product through oneDNN fusions instead of YNNPACK; ``onednn_matmul``: through
  oneDNN's matmul custom call;
* ``eigen``: XLA's own dot emitter with Eigen (no library), ``eigen_1thread`` the same single-threaded;
* ``vector256``: XLA's default 256-bit vector width (``EBM_PPL_CPU_VECTOR_WIDTH=256``);
* ``one_core``: ``ynnpack`` pinned to one core (``taskset -c 0``): what the second core gives.

Every configuration's result values are printed beside ``ynnpack``'s (the Gibbs chains' mean, the
RBM's test log-likelihood, JEM's test accuracy): a dot library that rounds differently can move
them, and the column says so. ``--probe`` prints which library computes each product of a Gibbs
sweep under each configuration, so that a flag XLA ignored shows as the same kernels.

    python benchmarks/xla_cpu_options.py                 # 2 rounds, all configurations (~8 min)
    python benchmarks/xla_cpu_options.py --quick         # 1 round, ebm_ppl / ynnpack / onednn
    python benchmarks/xla_cpu_options.py --probe         # who computes each product (~20 s)

Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _driver as drv  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NO_YNN_DOT = "--xla_cpu_experimental_ynn_fusion_type=-individual_dot"
OWN = {"EBM_PPL_CPU_DOTS": "ynnpack"}
CONFIGS = {  # name: (XLA_FLAGS, other environment, command prefix)
    "ebm_ppl": ("", {}, ()),
    "ynnpack": ("", OWN, ()),
    "ynn_fusions": ("--xla_cpu_experimental_ynn_fusion_type=+dot,+eltwise,+reduce", OWN, ()),
    "onednn": (f"{NO_YNN_DOT} --xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=+individual_dot",
               OWN, ()),
    "onednn_matmul": (f"{NO_YNN_DOT} --xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true",
                      OWN, ()),
    "eigen": (NO_YNN_DOT, OWN, ()),
    "eigen_1thread": (f"{NO_YNN_DOT} --xla_cpu_multi_thread_eigen=false", OWN, ()),
    "vector256": ("", {**OWN, "EBM_PPL_CPU_VECTOR_WIDTH": "256"}, ()),
    "one_core": ("", OWN, ("taskset", "-c", "0")),
}
BASE = "ynnpack"  # the configuration results are compared with
QUICK = ("ebm_ppl", "ynnpack", "onednn")
TARGETS = {"gibbs784": (">=", 3.0), "gibbs64": None, "pcd": ("<=", 0.25), "jem": ("<=", 0.6)}
JEM_EPOCHS = 4


def ours(workload: str, config: str) -> tuple[float, float]:
    """``(ebm_ppl's figure, its result value)`` for one workload under one configuration: sweeps/s
    for Gibbs (result: the chains' mean), seconds per epoch otherwise (test LL / test accuracy)."""
    flags, env, prefix = CONFIGS[config]
    env = {**env, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()}
    if workload.startswith("gibbs"):
        size = "784x500" if workload == "gibbs784" else "64x20"
        r = drv.run_peer(os.path.join(HERE, "gibbs_sweeps.py"),
                         ["--only", "jax_philox2x32_64", "--size", size, "--lite"], env, prefix)
        return r["rate"]["library"], r["mean_x"]["library"]
    if workload == "pcd":
        r = drv.run_peer(os.path.join(HERE, "rbm_training.py"), ["--only", "ep"], env, prefix)
        return r["epoch_s"], r["test_ll"]
    r = drv.run_peer(os.path.join(HERE, "jem_vs_torch.py"),
                     ["--only", "ebm_ppl", "--epochs", str(JEM_EPOCHS), "--max-epochs", str(JEM_EPOCHS)], env, prefix)
    return r["epoch_train_s"], r["test_acc_at_E"]


def peer(workload: str, torch_python: str) -> float | None:
    """The peer's figure in the same unit as :func:`ours` (None: the peer could not run)."""
    if workload.startswith("gibbs"):
        size = "784x500" if workload == "gibbs784" else "64x20"
        r = drv.run_peer(os.path.join(HERE, "gibbs_sweeps.py"), ["--only", "sklearn", "--size", size])
        return max(r["rate"].values())  # default or one-thread BLAS, the faster
    if workload == "pcd":
        return drv.run_peer(os.path.join(HERE, "rbm_training.py"), ["--only", "sklearn"])["epoch_s"]
    if not os.path.exists(torch_python):
        return None
    return drv.run_peer_with(torch_python, os.path.join(HERE, "jem_vs_torch.py"),
                             ["--only", "torch", "--epochs", str(JEM_EPOCHS), "--max-epochs", str(JEM_EPOCHS)]
                             )["epoch_train_s"]


def probe() -> None:
    """Emit who computes the dots of one block-Gibbs sweep at 784 x 500 (run per configuration)."""
    import jax
    import jax.numpy as jnp

    import ebm_ppl as ep

    rbm = ep.BernoulliRBM.init(jax.random.key(0), 784, 500, scale=0.01)
    step = ep.kernels.block_gibbs(rbm).step
    states = jax.vmap(ep.kernels.block_gibbs(rbm).init)(jnp.zeros((100, 784)), jax.random.split(jax.random.key(1), 100))
    keys = jax.random.split(jax.random.key(2), 100)
    options = ep.compiler.options_for(rbm)  # what ep.sample compiles this model's programs with
    text = jax.jit(jax.vmap(step), compiler_options=options or None).lower(keys, states).compile().as_text()
    drv.emit_result({"dots": dot_kernels(text), "compiler_options": options})


def dot_kernels(hlo: str) -> list[str]:
    """Who computes each dot of a compiled module's text: a library fusion (``__ynn_fusion``,
    ``__onednn_fusion``), a library custom call, or ``xla`` (XLA's own emitter, with Eigen)."""
    bodies = {m.group(1): m.group(2) for m in re.finditer(r"^(?:ENTRY )?%(\S+) \(.*?\{\n(.*?)^\}", hlo, re.M | re.S)}
    fused = set(re.findall(r"calls=%([\w.-]+)", hlo))
    out = []
    for name, body in bodies.items():
        if name in fused:
            continue
        for line in body.splitlines():
            if " dot(" in line:
                out.append("xla")
            elif "custom_call_target=" in line:
                out.append(re.search(r'custom_call_target="([^"]+)"', line).group(1))
            elif (m := re.search(r"fusion\(.*calls=%([\w.-]+)", line)) and " dot(" in bodies.get(m.group(1), ""):
                kind = re.search(r'"kind":"(\w+)"', line)
                out.append(kind.group(1) if kind else "xla fusion")
    return sorted(out)


def run_probe(configs) -> None:
    print(f"{'config':14s} the dots of one Gibbs sweep at 784 x 500 (x W, h W^T, b.x) and who computes them")
    for c in configs:
        flags, env, prefix = CONFIGS[c]
        env = {**env, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()}
        r = drv.run_peer(__file__, ["--only-probe"], env, prefix)
        print(f"{c:14s} dots by: {', '.join(r['dots'])}; ebm_ppl's options {r['compiler_options']}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 round of " + ", ".join(QUICK))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), help="default: all (--quick: a few)")
    ap.add_argument("--workloads", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    ap.add_argument("--torch-python", default="/tmp/torchvenv/bin/python")
    ap.add_argument("--probe", action="store_true", help="print the kernels each configuration emits, then stop")
    ap.add_argument("--only-probe", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.only_probe:
        return probe()
    configs = a.configs or (list(QUICK) if a.quick else list(CONFIGS))
    if BASE not in configs:
        configs = [BASE, *configs]
    load0 = drv.load()
    drv.header("xla_cpu_options", load0)
    if a.probe:
        return run_probe(configs)
    rounds = drv.rounds_for(a)
    figures = {(w, c): [] for w in a.workloads for c in configs}
    values = {(w, c): [] for w in a.workloads for c in configs}
    peers = {w: [] for w in a.workloads}
    for r in range(rounds):
        for w in a.workloads:
            for name in drv.round_order(["peer", *configs], r):
                t = time.perf_counter()
                if name == "peer":
                    peers[w].append(peer(w, a.torch_python))
                    shown = peers[w][-1]
                else:
                    fig, val = ours(w, name)
                    figures[w, name].append(fig)
                    values[w, name].append(val)
                    shown = fig
                print(f"  round {r + 1} {w:9s} {name:14s} {shown if shown is None else f'{shown:.6g}':>12s} "
                      f"({time.perf_counter() - t:.0f} s, load {drv.load():.2f})", flush=True)
    print(f"\n# {drv.cpu_model()}, {drv.cores()} cores; load {load0:.2f} -> {drv.load():.2f}; {rounds} round(s); "
          "ratio = median over rounds of ebm_ppl / peer in sweeps (Gibbs) or seconds (epochs)")
    for w in a.workloads:
        target = TARGETS[w]
        unit = "sweeps/s" if w.startswith("gibbs") else "ms/epoch"
        scale = 1.0 if w.startswith("gibbs") else 1e3
        base = values[w, BASE][0]
        print(f"\n{w} (target {'none' if target is None else ' '.join(map(str, target))}); "
              f"peer {drv.med(peers[w]) * scale:.4g} {unit}")
        for c in configs:
            pairs = [(f, p) for f, p in zip(figures[w, c], peers[w]) if p is not None]
            ratio = drv.median_ratio(pairs) if pairs else float("nan")
            met = "" if target is None or not pairs else (
                "met" if (ratio >= target[1] if target[0] == ">=" else ratio <= target[1]) else "not met")
            same = "same result" if values[w, c][0] == base else f"result {values[w, c][0]:.6g} ({BASE} {base:.6g})"
            print(f"  {c:14s} {drv.med(figures[w, c]) * scale:10.4g} {unit}  ratio {ratio:6.3f} {met:8s} {same}")


if __name__ == "__main__":
    main()
