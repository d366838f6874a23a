"""RBM initialisation from data: visible biases from the training marginals (Hinton's guide 8.1)."""

import jax
import numpy as np
import pytest

import ebm_ppl as ep


def test_init_with_data_sets_the_visible_biases_from_the_data_and_nothing_else():
    x = ep.data.digits(binarize=True).x_train
    plain = ep.BernoulliRBM.init(jax.random.key(0), 64, 7)
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 64, 7, data=x)
    np.testing.assert_array_equal(rbm.W, plain.W)
    np.testing.assert_array_equal(rbm.c, plain.c)
    p = (x.sum(0) + 1.0) / (x.shape[0] + 2.0)  # one pseudo-count of each value
    np.testing.assert_allclose(rbm.b, np.log(p / (1 - p)), rtol=1e-5, atol=1e-5)
    sub = ep.SubspaceRBM.init(jax.random.key(0), 64, 3, 2, data=x)
    np.testing.assert_array_equal(sub.b, rbm.b)
    real = ep.data.digits(scale="signed").x_train
    grbm = ep.GaussianBernoulliRBM.init(jax.random.key(0), 64, 5, data=real)
    np.testing.assert_allclose(grbm.b, real.mean(0), rtol=1e-5, atol=1e-6)


def test_init_with_bad_data_names_the_problem():
    x = ep.data.digits(binarize=True).x_train
    with pytest.raises(ValueError, match=r"data must have shape \(N, 64\)"):
        ep.BernoulliRBM.init(jax.random.key(0), 64, 7, data=x[:, :10])
    with pytest.raises(ValueError, match="binary"):
        ep.BernoulliRBM.init(jax.random.key(0), 64, 7, data=x + 0.5)
    with pytest.raises(ValueError, match=r"data must have shape \(N, 64\)"):
        ep.GaussianBernoulliRBM.init(jax.random.key(0), 64, 5, data=x[0])
    bad = np.array(x, np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN|finite"):
        ep.GaussianBernoulliRBM.init(jax.random.key(0), 64, 5, data=bad)


def test_gaussian_visible_units_constant_in_the_data_keep_float32_log_likelihoods_exact():
    """Three pixels of the digits are constant (-1) in x_train. Their variance was floored at 1e-6
    (precision 1e6, log Z ~1.6e6, float32 log-likelihoods 0.1 nats off); floored at 1e-2 of the
    median unit variance, the float32 log-likelihoods of every training image match the float64
    ones computed from the same parameters within 2e-3 nats (float32 keeps ~1e-7 of log Z ~ 2e3:
    2e-4 nats per term). Units above the floor keep the data's variance."""
    x = np.asarray(ep.data.digits().x_train)
    variance = x.var(0)
    assert np.sum(variance == 0) == 3
    rbm = ep.RBM.init(jax.random.key(0), ep.layers.Gaussian.standard(64), ep.layers.Binary.standard(8), data=x,
                      scale=0.1)
    floor = 1e-2 * np.median(variance)
    np.testing.assert_allclose(1 / rbm.visible.precision, np.maximum(variance, floor), rtol=1e-5)
    ll32 = np.asarray(-rbm.energy(x) - ep.log_partition(rbm))
    with jax.enable_x64(True):
        rbm64 = jax.tree.map(lambda a: jax.numpy.asarray(a, np.float64), rbm)
        ll64 = np.asarray(-rbm64.energy(jax.numpy.asarray(x, np.float64)) - ep.log_partition(rbm64))
    assert np.max(np.abs(ll32 - ll64)) < 2e-3 and abs(ll32.mean() - ll64.mean()) < 1e-3
    # data constant in every unit: the typical variance falls back to 1, the floor to 1e-2
    flat = ep.layers.Gaussian.standard(3).base(np.full((5, 3), 2.0, np.float32))
    np.testing.assert_allclose(flat.precision, 100.0)
