"""ep.fit data-parallel over 4 forced CPU devices equals the one-device run, and checkpoints move
between device counts.

The 4-device half runs in a subprocess (the device count is fixed when JAX starts); the reference
is the same process with sharding switched off (same key, same numbers: ebm_ppl's Philox is drawn
through its partitionable twin), and this process (one device) for the checkpoints. Gradients are
summed across devices in another order, so the parameters agree to float32 rounding.
"""

from __future__ import annotations

import importlib
import shutil
import textwrap

import jax
import numpy as np
import pytest

import ebm_ppl as ep

from forced_devices import assert_script_ok

COMMON = """
import numpy as np
import jax
import ebm_ppl as ep
rng = np.random.default_rng(0)
x = (rng.random((400, 12)) < 0.3).astype(np.float32)
y = rng.integers(0, 3, 400)
rbm = ep.BernoulliRBM.init(jax.random.key(0), 12, 8, scale=0.1)


def pcd_run(epochs, directory, resume=False):
    return ep.fit(rbm, x, ep.training.pcd(1, 20), key=jax.random.key(1), epochs=epochs, batch_size=40,
                  validation=x[:100], checkpoint_dir=directory, resume=resume)
"""

SHARDED = COMMON + """
import importlib, sys
import equinox as eqx
import optax
run_module = importlib.import_module("ebm_ppl.training.run")
epochs_module = importlib.import_module("ebm_ppl.training.epochs")
assert jax.device_count() == 4, jax.devices()
out = sys.argv[1]

layouts = []
original_epochs = epochs_module.run_epochs
def spy(*args, **kwargs):  # the estimator state's per-chain arrays after a sharded group
    result = original_epochs(*args, **kwargs)
    layouts.append([getattr(leaf.sharding, "spec", ()) for leaf in jax.tree.leaves(result[0][2]) if leaf.ndim >= 2])
    return result
epochs_module.run_epochs = spy


def fit(model, data, estimator, sharded, **options):
    original = run_module.axis_sharding
    if not sharded:
        run_module.axis_sharding = lambda size, key: None
    try:
        return ep.fit(model, data, estimator, key=jax.random.key(1), epochs=2, batch_size=40, metrics=False,
                      **options)
    finally:
        run_module.axis_sharding = original


jem = ep.JEM.init(jax.random.key(0), 12, 3, width=16, depth=2)
xr = (2 * x - 1) * 0.9
cases = {"pcd": (rbm, x, ep.training.pcd(1, 20), {}),
         "pt_pcd": (rbm, x, ep.training.pt_pcd(1, 20, 4), {}),
         "class_rbm": (ep.ClassRBM.init(jax.random.key(0), 12, 3, 4, scale=0.1), (x, y),
                       ep.training.class_rbm("hybrid", num_chains=20), {}),
         "jem": (jem, (xr, y), ep.training.jem(langevin_steps=3, buffer_size=200), {"optimizer": optax.adam(1e-3)})}
for name, (model, data, estimator, options) in cases.items():
    layouts.clear()
    a, ha = fit(model, data, estimator, True, **options)
    if name != "jem":  # the chains were laid over the devices (JEM's replay buffer stays replicated)
        assert any(spec and spec[0] == "chains" or len(spec) > 1 and spec[1] == "chains"
                   for spec in layouts[-1]), (name, layouts)
    b, hb = fit(model, data, estimator, False, **options)
    for u, v in zip(*(jax.tree.leaves(eqx.filter(m, eqx.is_array)) for m in (a, b))):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-4, atol=1e-5, err_msg=name)
    for ra, rb in zip(ha.records, hb.records):
        for k in ra:
            np.testing.assert_allclose(ra[k], rb[k], rtol=1e-4, atol=1e-5, err_msg=f"{name}: {k}")
    # the returned model lives on one device: a later ep.ais with the default Philox compiles
    assert all(len(leaf.devices()) == 1 for leaf in jax.tree.leaves(a) if isinstance(leaf, jax.Array)), name

# the divergence guard re-seeds the (replicated) sampler key after a sharded group: an estimator
# whose gradient is NaN with probability 0.3 per update recovers as on one device
inner = ep.training.pcd(1, 20)


def flaky_update(model, batch, state):
    grads, new_state, metrics = inner.update(model, batch, state)
    poison = jax.random.uniform(jax.random.fold_in(state.key, 7)) < 0.3
    return jax.tree.map(lambda g: jax.numpy.where(poison, jax.numpy.nan, g), grads), new_state, metrics


flaky = ep.training.GradientEstimator(inner.init, flaky_update)
(a, ha), (b, hb) = (fit(rbm, x, flaky, sharded, max_retries=30) for sharded in (True, False))
assert ha.recoveries == hb.recoveries >= 1, (ha.recoveries, hb.recoveries)
np.testing.assert_allclose(np.asarray(a.W), np.asarray(b.W), rtol=1e-4, atol=1e-5)

# shard=False keeps one device; shard=True with a batch the devices do not divide is an error
layouts.clear()
a, _ = ep.fit(rbm, x, ep.training.pcd(1, 20), key=jax.random.key(1), epochs=2, batch_size=40, metrics=False,
              shard=False)
assert not any("chains" in tuple(spec) for spec in layouts[-1]), layouts
b, _ = fit(rbm, x, ep.training.pcd(1, 20), False)  # sharding switched off inside
np.testing.assert_array_equal(np.asarray(a.W), np.asarray(b.W))
try:
    ep.fit(rbm, x, ep.training.pcd(1, 20), key=jax.random.key(1), epochs=1, batch_size=30, shard=True)
except ValueError as e:
    assert "do not divide batch_size=30" in str(e), e
else:
    raise AssertionError("shard=True with 4 devices and batch 30 was accepted")

# JEM's Langevin negatives are laid over the devices
sharding = ep.sharding.axis_sharding(40)


@jax.jit
def negatives(key, x0):
    with ep.sharding.rows_over(sharding):
        return importlib.import_module("ebm_ppl.training.jem").langevin_negatives(key, jem, x0, 3, 1.0, 0.01)


assert negatives(ep.random.for_sharding(ep.random.rekey(jax.random.key(0))), xr[:40]).sharding.spec[0] == "chains"

# checkpoints: written here on 4 devices, and one written on 1 device resumed here
pcd_run(2, out + "/four")
model, history = pcd_run(4, out + "/one_resumed", resume=True)
np.savez(out + "/four_resumed.npz", W=np.asarray(model.W), ll=history.records[-1]["val_log_likelihood"])
print("ok")
"""


@pytest.mark.slow
def test_data_parallel_fit_equals_one_device_and_checkpoints_cross_device_counts(tmp_path):
    namespace: dict = {}
    exec(textwrap.dedent(COMMON), namespace)
    pcd_run = namespace["pcd_run"]
    pcd_run(2, str(tmp_path / "one"))  # one device, two epochs
    shutil.copytree(tmp_path / "one", tmp_path / "one_resumed")
    assert_script_ok(SHARDED, str(tmp_path))
    # the 4-device checkpoint resumed on one device
    shutil.copytree(tmp_path / "four", tmp_path / "four_here")
    resumed, history = pcd_run(4, str(tmp_path / "four_here"), resume=True)
    straight, straight_history = pcd_run(4, None)
    other = np.load(tmp_path / "four_resumed.npz")
    for w, ll in ((resumed.W, history.records[-1]["val_log_likelihood"]), (other["W"], float(other["ll"]))):
        np.testing.assert_allclose(np.asarray(w), np.asarray(straight.W), rtol=1e-4, atol=1e-5)
        assert abs(ll - straight_history.records[-1]["val_log_likelihood"]) < 1e-4


def test_shard_rows_is_a_no_op_outside_a_sharded_program():
    x = jax.numpy.ones((8, 3))
    assert ep.sharding.shard_rows(x) is x
    with ep.sharding.rows_over(None):
        assert ep.sharding.shard_rows(x) is x
    assert importlib.import_module("ebm_ppl.sharding").axis_sharding(8) is None  # one device here
