"""A model or data committed to one device (``jax.device_put(model, jax.devices()[3])``, as a
model is put on one GPU) in a run sharded over every device: the same results as uncommitted
inputs. Before, XLA refused the sharded program ("incompatible devices") for ep.ais,
ep.reverse_ais, ep.sample and ep.fit. Runs in a subprocess with 4 forced CPU devices."""

from __future__ import annotations

from forced_devices import assert_script_ok


SCRIPT = """
import jax, numpy as np, ebm_ppl as ep
assert jax.device_count() == 4
d3 = jax.devices()[3]
rbm0 = ep.BernoulliRBM.init(jax.random.key(0), 16, 4, scale=0.5)
rbm = jax.device_put(rbm0, d3)
x = (np.random.default_rng(0).random((64, 16)) < 0.5).astype(np.float32)
x3 = jax.device_put(x, d3)


def same(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


kw = dict(num_chains=8, num_temperatures=20)
same(ep.ais(jax.random.key(1), rbm, **kw).log_weights, ep.ais(jax.random.key(1), rbm0, **kw).log_weights)
same(ep.ais(jax.random.key(1), rbm0, data=x3, **kw).log_weights, ep.ais(jax.random.key(1), rbm0, data=x, **kw).log_weights)
same(ep.reverse_ais(jax.random.key(1), rbm, x3[:8], num_temperatures=20).log_weights,
     ep.reverse_ais(jax.random.key(1), rbm0, x[:8], num_temperatures=20).log_weights)
same(ep.sample(jax.random.key(1), rbm, num_chains=8, num_samples=10).posterior["x"].values,
     ep.sample(jax.random.key(1), rbm0, num_chains=8, num_samples=10).posterior["x"].values)
g = jax.device_put(ep.Gaussian(np.zeros(3, np.float32), scale_diag=np.ones(3, np.float32)), d3)
ep.sample(jax.random.key(1), g, "nuts", num_chains=8, num_samples=10, num_warmup=10)
fit = dict(key=jax.random.key(2), epochs=2, batch_size=16)
m1, _ = ep.fit(rbm, x3, ep.training.pcd(num_chains=8), validation=x3[:16], **fit)
m0, _ = ep.fit(rbm0, x, ep.training.pcd(num_chains=8), validation=x[:16], **fit)
same(m1.W, m0.W)


class OwnPCD(ep.training.PCDEstimator):  # a user's estimator: its init sees the data as given
    init_takes_num_rows = False

    def init(self, key, model, data=None):
        return super().init(key, model, data)


m2, _ = ep.fit(rbm, x3, OwnPCD(1, 8), **fit)
same(m2.W, m0.W)
print("ok")
"""


def test_inputs_committed_to_one_device_join_a_sharded_run():
    assert_script_ok(SCRIPT)
