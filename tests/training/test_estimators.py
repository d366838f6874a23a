"""CD/PCD estimators as values (equal settings are equal), and the closed-form Bernoulli-RBM
gradient against autodiff of the free-energy gap."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.training.estimators import CDEstimator, PCDEstimator, free_energy_gap, grads_and_metrics


def test_equal_settings_give_equal_hashable_estimators():
    assert ep.training.cd(2) == ep.training.cd(2) and hash(ep.training.cd(2)) == hash(ep.training.cd(2))
    assert ep.training.pcd(1, 100) == PCDEstimator(1, 100)
    assert ep.training.pcd(1, 100) != ep.training.pcd(1, 50)
    assert ep.training.cd(1) != ep.training.cd(3)
    assert jax.tree.leaves(ep.training.pcd(1, 100)) == []  # nothing traced: all settings are static
    with pytest.raises(ValueError, match="num_chains must be a positive integer"):
        PCDEstimator(1, 0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        CDEstimator(1.5)


def test_closed_form_bernoulli_rbm_gradient_equals_autodiff():
    """float64: the closed form (Hinton's update) and autodiff of mean F(x_data) - mean F(x_model)
    agree to 1e-12 in every parameter and in the reported gap (gradients and x.b come out of two
    shared matmuls with the weights and biases stacked, so a mix-up of rows or columns shows)."""
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(0), 5)
        rbm = ep.BernoulliRBM(2 * jax.random.normal(k[0], (12, 7), jnp.float64),
                              jax.random.normal(k[1], (12,), jnp.float64), 3 * jax.random.normal(k[2], (7,), jnp.float64))
        x_data = jax.random.bernoulli(k[3], 0.3, (30, 12)).astype(jnp.float64)
        x_model = jax.random.bernoulli(k[4], 0.6, (45, 12)).astype(jnp.float64)
        grads, metrics = eqx.filter_jit(grads_and_metrics)(rbm, x_data, x_model)
        gap, expected = eqx.filter_value_and_grad(free_energy_gap)(rbm, x_data, x_model)
        for name in ("W", "b", "c"):
            np.testing.assert_allclose(getattr(grads, name), getattr(expected, name), rtol=0, atol=1e-12)
        np.testing.assert_allclose(metrics["free_energy_gap"], gap, rtol=0, atol=1e-12)
        assert type(grads) is ep.BernoulliRBM


def test_estimators_work_as_before_under_jit():
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 6, 3, scale=0.5)
    x = jax.random.bernoulli(jax.random.key(1), 0.5, (10, 6)).astype(jnp.float32)
    for est in (ep.training.cd(2), ep.training.pcd(1, 8)):
        state = est.init(jax.random.key(2), rbm, (x,))
        grads, new_state, metrics = eqx.filter_jit(est.update)(rbm, (x,), state)
        assert grads.W.shape == (6, 3) and set(metrics) == {"free_energy_gap"}
        assert type(new_state) is type(state)
    assert ep.training.pcd(1, 8).init(jax.random.key(2), rbm, (x,)).chains.shape == (8, 6)
