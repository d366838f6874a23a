"""JEM: energies from a classifier's logits."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep


@pytest.fixture
def jem():
    return ep.JEM.init(jax.random.key(0), in_features=8, num_classes=3, width=16, depth=2)


def test_energies_are_read_from_logits(jem):
    x = jax.random.normal(jax.random.key(1), (5, 8))
    logits = jax.vmap(jem.net)(x)
    np.testing.assert_allclose(jem.logits(x), logits, rtol=1e-6)
    np.testing.assert_allclose(jem.energy(x), -jax.nn.logsumexp(logits, axis=-1), rtol=1e-6)
    y = jnp.array([0, 2, 1, 1, 0])
    np.testing.assert_allclose(jem.energy_joint(x, y), -logits[jnp.arange(5), y], rtol=1e-6)
    # p(y|x) = exp(-E(x,y)) / exp(-E(x)): the marginal is the normalizer over y
    np.testing.assert_allclose(
        jnp.exp(jem.energy(x) - jem.energy_joint(x, y)), jax.nn.softmax(logits)[jnp.arange(5), y], rtol=1e-5
    )
    np.testing.assert_array_equal(jem.classify(x), jnp.argmax(logits, -1))


def test_log_softmax_is_stable_for_huge_logits():
    net = eqx.nn.Linear(2, 3, key=jax.random.key(0))
    net = eqx.tree_at(lambda n: n.weight, net, jnp.array([[1e4, 0.0], [0.0, 0.0], [-1e4, 0.0]]))
    jem = ep.JEM(net, event_shape=(2,))
    out = jem.log_softmax(jnp.array([1.0, 0.0]))
    assert np.all(np.isfinite(out[:2])) and float(out[0]) == pytest.approx(0.0, abs=1e-6)


def test_chapter_default_architecture():
    jem = ep.JEM.init(jax.random.key(0))
    assert jem.event_shape == (64,) and jem.num_classes == 10
    widths = [layer.weight.shape for layer in jem.net.layers]
    assert widths == [(512, 64), (512, 512), (512, 512), (10, 512)]


def test_custom_network_and_image_event_shape():
    class Conv(eqx.Module):
        conv: eqx.nn.Conv2d
        head: eqx.nn.Linear

        def __call__(self, x):
            return self.head(jax.nn.elu(self.conv(x[None])).reshape(-1))

        def __init__(self, key):
            k1, k2 = jax.random.split(key)
            self.conv = eqx.nn.Conv2d(1, 2, 3, key=k1)
            self.head = eqx.nn.Linear(2 * 6 * 6, 4, key=k2)

    jem = ep.JEM(Conv(jax.random.key(0)), event_shape=(8, 8))
    assert jem.num_classes == 4
    assert jem.energy(jnp.zeros((3, 8, 8))).shape == (3,)
    grad = jax.grad(lambda x: jem.energy(x))(jnp.zeros((8, 8)))
    assert grad.shape == (8, 8)


def test_bad_input(jem):
    with pytest.raises(ValueError, match="shape"):
        jem.energy(np.zeros((2, 7)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        jem.energy_joint(np.zeros((2, 8)), np.array([0, 3]))
    with pytest.raises(ValueError, match="integers"):
        jem.energy_joint(np.zeros((2, 8)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="does not accept"):
        ep.JEM(eqx.nn.Linear(3, 2, key=jax.random.key(0)), event_shape=(4,))
    with pytest.raises(ValueError, match="activation"):
        ep.JEM.init(jax.random.key(0), activation="swishy")
    with pytest.raises(ValueError, match="exact log partition"):
        ep.log_partition(jem)


@pytest.mark.slow
def test_a_jem_on_a_box_is_a_proper_density():
    """On R^D the marginal of a random network grows without bound along some direction; on
    box(-1, 1) NUTS stays in the box and mixes (R-hat < 1.05 on 4 chains), and forward AIS and
    reverse AIS started from NUTS draws agree within their error bars (a 6-d target: both short of
    bias)."""
    import arviz as az

    jem = ep.JEM.init(jax.random.key(0), 6, 3, width=16, depth=1, support=ep.box(-1.0, 1.0))
    assert jem.support == ep.box(-1, 1) and ep.JEM.init(jax.random.key(0), 6, 3, width=16, depth=1).support == "real"
    idata = ep.sample(jax.random.key(1), jem, "nuts", num_chains=4, num_warmup=300, num_samples=500)
    x = idata.posterior["x"].values
    assert np.all(np.abs(x) <= 1.0)
    assert float(az.rhat(idata)["x"].max()) < 1.05
    forward = ep.ais(jax.random.key(2), jem, num_chains=200, num_temperatures=500)
    reverse = ep.reverse_ais(jax.random.key(3), jem, x.reshape(-1, 6)[::10][:200], num_temperatures=500)
    assert np.isfinite(forward.log_z) and abs(forward.log_z - reverse.log_z) < 0.1 + 4 * (forward.stderr + reverse.stderr)
    with pytest.raises(ValueError, match="continuous"):
        ep.JEM.init(jax.random.key(0), 6, 3, width=16, depth=1, support="binary")
    boxed = ep.JEM.init(jax.random.key(0), 6, 3, width=16, depth=1).with_support(ep.box(-1, 1))
    assert boxed.support == ep.box(-1, 1)
