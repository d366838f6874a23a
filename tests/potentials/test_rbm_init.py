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
