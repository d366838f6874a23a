"""BernoulliRBM: free energy, conditionals and log Z against brute-force enumeration."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.potentials.enumeration import all_binary_states


def _rbm(n_visible=6, n_hidden=4, seed=0, scale=1.0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    W = scale * jax.random.normal(k1, (n_visible, n_hidden))
    b = 0.5 * jax.random.normal(k2, (n_visible,))
    c = 0.5 * jax.random.normal(k3, (n_hidden,))
    return ep.BernoulliRBM(W, b, c)


def test_free_energy_is_minus_log_sum_over_hidden_of_joint():
    with jax.enable_x64(True):
        rbm = _rbm()
        xs = all_binary_states(rbm.n_visible)
        hs = all_binary_states(rbm.n_hidden)
        joint = jax.vmap(lambda x: jax.vmap(lambda h: rbm.energy_joint(x, h))(hs))(xs)
        brute = -jax.nn.logsumexp(-joint, axis=1)
        np.testing.assert_allclose(rbm.free_energy(xs), brute, rtol=0, atol=1e-10)


def test_conditionals_match_ratios_of_enumerated_joint():
    with jax.enable_x64(True):
        rbm = _rbm()
        xs = all_binary_states(rbm.n_visible)
        hs = all_binary_states(rbm.n_hidden)
        log_joint = -jax.vmap(lambda x: jax.vmap(lambda h: rbm.energy_joint(x, h))(hs))(xs)  # (X, H)
        # p(h_j = 1 | x) = sum_{h: h_j=1} p(x, h) / sum_h p(x, h)
        p_h_given_x = jax.nn.softmax(log_joint, axis=1) @ hs
        np.testing.assert_allclose(rbm.hidden_probs(xs), p_h_given_x, atol=1e-12)
        p_x_given_h = jax.nn.softmax(log_joint, axis=0).T @ xs
        np.testing.assert_allclose(rbm.visible_probs(hs), p_x_given_h, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 4), (4, 7), (5, 5)])
def test_log_z_routes_agree_and_match_brute_force(shape):
    with jax.enable_x64(True):
        rbm = _rbm(*shape, scale=1.5)
        brute = jax.nn.logsumexp(-rbm.free_energy(all_binary_states(rbm.n_visible)))
        hidden = rbm.log_partition(route="hidden")
        visible = rbm.log_partition(route="visible")
        np.testing.assert_allclose(hidden, visible, rtol=0, atol=1e-6)
        np.testing.assert_allclose(hidden, brute, rtol=0, atol=1e-10)
        np.testing.assert_allclose(ep.log_partition(rbm), brute, rtol=0, atol=1e-10)


def test_log_z_chunking_does_not_change_the_answer():
    with jax.enable_x64(True):
        rbm = _rbm(9, 7, scale=1.0)
        ref = rbm.log_partition(route="visible", chunk_size=2**20)
        for chunk in (1, 3, 100):  # 3 and 100 do not divide 2^9: the tail chunk is masked
            np.testing.assert_allclose(rbm.log_partition(route="visible", chunk_size=chunk), ref, atol=1e-10)


def test_digits_sized_log_z_float32_close_to_float64():
    rbm32 = _rbm(64, 20, scale=0.3)
    with jax.enable_x64(True):
        rbm64 = ep.BernoulliRBM(*(np.asarray(a, np.float64) for a in (rbm32.W, rbm32.b, rbm32.c)))
        exact = float(rbm64.log_partition())
    assert abs(float(rbm32.log_partition()) - exact) < 1e-4 * abs(exact)


def test_base_rate_model():
    data = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0]], np.float32)
    rbm = ep.BernoulliRBM.base_rate(data, n_hidden=5, smoothing=1.0)
    p = (data.sum(0) + 1) / (len(data) + 2)
    np.testing.assert_allclose(jax.nn.sigmoid(rbm.b), p, rtol=1e-6)
    assert np.all(np.asarray(rbm.W) == 0) and np.all(np.asarray(rbm.c) == 0)
    closed_form = np.sum(np.log1p(np.exp(np.asarray(rbm.b)))) + 5 * np.log(2)
    np.testing.assert_allclose(rbm.log_partition(), closed_form, rtol=1e-6)
    with pytest.raises(ValueError, match="binary"):
        ep.BernoulliRBM.base_rate(data * 0.5, n_hidden=2)


def test_samplers_follow_the_conditionals():
    rbm = _rbm(5, 3, seed=3)
    x = jnp.asarray([1.0, 0.0, 1.0, 1.0, 0.0])
    n = 20_000
    draws = rbm.sample_hidden(jax.random.key(0), jnp.broadcast_to(x, (n, 5)))
    assert draws.shape == (n, 3) and draws.dtype == x.dtype
    p = rbm.hidden_probs(x)
    # 5 binomial standard errors per unit
    assert np.all(np.abs(draws.mean(0) - p) < 5 * np.sqrt(p * (1 - p) / n))
    h = jnp.asarray([0.0, 1.0, 1.0])
    draws = rbm.sample_visible(jax.random.key(1), jnp.broadcast_to(h, (n, 3)))
    p = rbm.visible_probs(h)
    assert np.all(np.abs(draws.mean(0) - p) < 5 * np.sqrt(p * (1 - p) / n))


def test_energy_jits_grads_and_vmaps():
    rbm = _rbm()
    x = jnp.ones((3, 6))
    e = jax.jit(lambda m, x: m.energy(x))(rbm, x)
    np.testing.assert_allclose(e, rbm.energy(x), rtol=1e-6)
    g = jax.grad(lambda m: m.energy(x).sum())(rbm)
    assert g.W.shape == rbm.W.shape
    # the gradient of the free energy w.r.t. W is -x p(h|x)^T
    np.testing.assert_allclose(g.W, -(x.T @ rbm.hidden_probs(x)), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(W=np.zeros((3, 2)), b=np.zeros(4), c=np.zeros(2)), r"b must have shape \(3,\)"),
        (dict(W=np.zeros((3, 2)), b=np.zeros(3), c=np.zeros(3)), r"c must have shape \(2,\)"),
        (dict(W=np.zeros(3), b=np.zeros(3), c=np.zeros(2)), "W must have 2 dimension"),
        (dict(W=np.full((3, 2), np.nan), b=np.zeros(3), c=np.zeros(2)), "NaN or inf"),
        (dict(W=np.array([["a", "b"]]), b=np.zeros(1), c=np.zeros(2)), "dtype"),
    ],
)
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ep.BernoulliRBM(**kwargs)


def test_bad_data_is_refused():
    rbm = _rbm()
    with pytest.raises(ValueError, match=r"shape \(2, 5\); expected \(\*batch, 6\)"):
        rbm.energy(np.ones((2, 5)))
    with pytest.raises(ValueError, match="binary"):
        rbm.free_energy(np.full((2, 6), 0.3))
    with pytest.raises(ValueError, match="NaN or infinite"):
        rbm.energy(np.array([1, 0, 1, np.nan, 0, 1.0]))
    with pytest.raises(ValueError, match="binary"):
        rbm.visible_probs(np.full(4, 2.0))
    with pytest.raises(ValueError, match="numeric"):
        rbm.energy(np.array(["1"] * 6))


def test_too_large_enumeration_names_size_and_points_to_ais():
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 64, 40)
    with pytest.raises(ValueError, match=r"2\^40 terms.*ais"):
        ep.log_partition(rbm)
    with pytest.raises(ValueError, match="route"):
        rbm.log_partition(route="sideways")


def test_scikit_learn_round_trip():
    """from_sklearn / to_sklearn keep the free energy (to 1e-5) and so the exact log-likelihood;
    the exported estimator works in a scikit-learn pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import BernoulliRBM as SklearnRBM
    from sklearn.pipeline import make_pipeline

    data = ep.data.digits(binarize=True)
    fitted = SklearnRBM(n_components=8, n_iter=3, random_state=0).fit(data.x_train)
    rbm = ep.BernoulliRBM.from_sklearn(fitted)
    np.testing.assert_allclose(np.asarray(rbm.free_energy(data.x_test)), fitted._free_energy(data.x_test),
                               rtol=1e-5, atol=1e-4)
    back = rbm.to_sklearn(random_state=0)
    np.testing.assert_allclose(back._free_energy(data.x_test), fitted._free_energy(data.x_test), rtol=1e-5,
                               atol=1e-4)
    again = ep.BernoulliRBM.from_sklearn(back)
    ll = lambda m: float(jnp.mean(-m.free_energy(data.x_test)) - ep.log_partition(m))  # noqa: E731
    assert abs(ll(again) - ll(rbm)) < 1e-5
    pipe = make_pipeline(rbm.to_sklearn(), LogisticRegression(max_iter=200)).fit(data.x_train, data.y_train)
    assert pipe.score(data.x_test, data.y_test) > 0.3
    with pytest.raises(ValueError, match="fitted sklearn.neural_network.BernoulliRBM"):
        ep.BernoulliRBM.from_sklearn(SklearnRBM(n_components=3))
