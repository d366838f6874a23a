"""ep.sample, ep.ais, ep.reverse_ais and ep.fit across two processes under jax.distributed (2 CPU
devices each) equal one process."""

import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import ebm_ppl as ep

WORKER = """
import os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
jax.distributed.initialize(coordinator_address=sys.argv[2], num_processes=2, process_id=int(sys.argv[1]))
import numpy as np
import ebm_ppl as ep
assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
g = ep.Gaussian(np.zeros(3), scale_diag=np.ones(3))
rbm = ep.BernoulliRBM.init(jax.random.key(0), 6, 4, scale=1.0)
x = ep.sample(jax.random.key(7), g, "mala", num_chains=8, num_warmup=30, num_samples=40).posterior["x"].values
z = ep.sample(jax.random.key(7), rbm, num_chains=8, num_warmup=10, num_samples=20).posterior["x"].values
fwd = ep.ais(jax.random.key(3), rbm, num_chains=8, num_temperatures=40).log_weights
start = (np.arange(48).reshape(8, 6) % 3 == 0).astype(np.float32)
rev = ep.reverse_ais(jax.random.key(3), rbm, start, num_temperatures=40).log_weights
# data-parallel training: minibatches and persistent chains over both processes' devices; process
# 0 alone writes the checkpoint and the model
data = (np.random.default_rng(0).random((400, 12)) < 0.3).astype(np.float32)
start_model = ep.BernoulliRBM.init(jax.random.key(0), 12, 8, scale=0.1)
folder = sys.argv[3] + ".fit"
model, history = ep.fit(start_model, data, ep.training.pcd(1, 20), key=jax.random.key(1), epochs=3, batch_size=40,
                        validation=data[:100], checkpoint_dir=folder, checkpoint_every=1)
assert sorted(os.listdir(folder)) == (["checkpoint.ckpt", "model.ebm"] if jax.process_index() == 0 else [])
np.savez(sys.argv[3], x=x, z=z, fwd=fwd, rev=rev, W=np.asarray(model.W), ll=history.records[-1]["val_log_likelihood"])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_single_process_draws(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    address = f"127.0.0.1:{_free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [subprocess.Popen([sys.executable, str(script), str(i), address, str(tmp_path / f"out{i}.npz")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out[-3000:]
    first, second = np.load(tmp_path / "out0.npz"), np.load(tmp_path / "out1.npz")
    np.testing.assert_array_equal(first["x"], second["x"])  # every process sees all chains
    g = ep.Gaussian(np.zeros(3), scale_diag=np.ones(3))
    single = ep.sample(jax.random.key(7), g, "mala", num_chains=8, num_warmup=30, num_samples=40).posterior["x"].values
    np.testing.assert_allclose(first["x"], single, rtol=1e-3, atol=1e-3)  # float32 rounding, 70 MALA steps
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 6, 4, scale=1.0)
    np.testing.assert_array_equal(first["z"], ep.sample(jax.random.key(7), rbm, num_chains=8, num_warmup=10,
                                                        num_samples=20).posterior["x"].values)
    # AIS with its chains over both processes' devices: the one-process weights, bit for bit (Gibbs path)
    np.testing.assert_array_equal(first["fwd"], second["fwd"])
    fwd = ep.ais(jax.random.key(3), rbm, num_chains=8, num_temperatures=40)
    np.testing.assert_array_equal(first["fwd"], fwd.log_weights)
    start = (np.arange(48).reshape(8, 6) % 3 == 0).astype(np.float32)
    rev = ep.reverse_ais(jax.random.key(3), rbm, start, num_temperatures=40)
    np.testing.assert_array_equal(first["rev"], rev.log_weights)
    # data-parallel ep.fit: the one-process parameters to float32 rounding (gradients summed across devices)
    np.testing.assert_array_equal(first["W"], second["W"])
    data = (np.random.default_rng(0).random((400, 12)) < 0.3).astype(np.float32)
    model, history = ep.fit(ep.BernoulliRBM.init(jax.random.key(0), 12, 8, scale=0.1), data, ep.training.pcd(1, 20),
                            key=jax.random.key(1), epochs=3, batch_size=40, validation=data[:100])
    np.testing.assert_allclose(first["W"], np.asarray(model.W), rtol=1e-4, atol=1e-5)
    assert abs(float(first["ll"]) - history.records[-1]["val_log_likelihood"]) < 1e-4
    assert ep.load(str(tmp_path / "out0.npz.fit" / "model.ebm")).W.shape == (12, 8)
