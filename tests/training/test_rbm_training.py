"""CD/PCD gradients against exact enumerated gradients; fit on digits; checkpoints; divergence guard."""

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ebm_ppl as ep
from ebm_ppl.potentials.enumeration import all_binary_states


def _exact_nll_grad(model, x_data):
    """grad [mean F(x_data) + log Z] with E_model by enumerating every visible state (float64)."""

    def nll(m):
        states = all_binary_states(m.event_shape[0], jnp.float64)
        log_z = jax.nn.logsumexp(-jax.vmap(m.unbatched_energy)(states))
        return jnp.mean(jax.vmap(m.unbatched_energy)(x_data)) + log_z

    return eqx.filter_grad(nll)(model)


def _per_chain_grad_se(model, chains):
    """Monte Carlo s.e. of the model term mean_i grad F(x_i) over independent chains."""
    per = jax.vmap(lambda x: eqx.filter_grad(lambda m: m.unbatched_energy(x))(model))(chains)
    return jax.tree.map(lambda g: jnp.std(g, axis=0) / np.sqrt(chains.shape[0]), eqx.filter(per, eqx.is_array))


@pytest.mark.parametrize("make", [
    lambda k: ep.BernoulliRBM.init(k, 6, 4, scale=1.0),
    lambda k: ep.SubspaceRBM.init(k, 6, 2, 2, scale=1.0),
], ids=["bernoulli_rbm", "subspace_rbm"])
def test_pcd_gradient_with_many_chains_equals_the_exact_gradient(make):
    """After the persistent chains have equilibrated (parameters held fixed), the PCD gradient is
    unbiased for the exact NLL gradient; with 20,000 chains each entry must lie within 5 Monte
    Carlo standard errors (computed from the per-chain gradients) of the enumerated value."""
    with jax.enable_x64(True):
        model = make(jax.random.key(0))
        x_data = jax.random.bernoulli(jax.random.key(1), 0.4, (50, 6)).astype(jnp.float64)
        est = ep.training.pcd(k=1, num_chains=20_000)
        state = est.init(jax.random.key(2), model)
        update = eqx.filter_jit(est.update)
        for _ in range(30):  # burn-in of the persistent chains under the fixed model
            grads, state, _ = update(model, (x_data,), state)
        exact = _exact_nll_grad(model, x_data)
        se = _per_chain_grad_se(model, state.chains)
        for g, e, s in zip(jax.tree.leaves(eqx.filter(grads, eqx.is_array)), jax.tree.leaves(exact),
                           jax.tree.leaves(se)):
            assert np.all(np.abs(np.asarray(g) - np.asarray(e)) <= 5 * np.asarray(s) + 1e-9)


def test_cd_k_approaches_the_exact_gradient_for_large_k_and_is_biased_for_k1():
    with jax.enable_x64(True):
        model = ep.BernoulliRBM.init(jax.random.key(3), 6, 4, scale=1.5)
        x_data = jnp.tile(jnp.array([[1.0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]]), (5000, 1))
        exact = _exact_nll_grad(model, x_data).W
        errs = {}
        for k in (1, 100):
            est = ep.training.cd(k)
            grads, _, _ = eqx.filter_jit(est.update)(model, (x_data,), est.init(jax.random.key(4), model))
            errs[k] = float(jnp.max(jnp.abs(grads.W - exact)))
        se = float(jnp.max(_per_chain_grad_se(model, x_data).W))  # scale of the chain noise
        assert errs[100] < 5 * se + 1e-3
        assert errs[1] > errs[100]


@pytest.fixture(scope="module")
def digits():
    return ep.data.digits(binarize=True)


@pytest.mark.slow
def test_pcd_training_on_digits_beats_the_independent_pixel_model(digits):
    base = ep.BernoulliRBM.base_rate(digits.x_train, 16)
    init = ep.BernoulliRBM(0.01 * jax.random.normal(jax.random.key(0), (64, 16)), base.b, base.c)
    model, history = ep.fit(init, digits.x_train, ep.training.pcd(k=1, num_chains=100), key=jax.random.key(1),
                            epochs=20, optimizer=optax.sgd(0.1, momentum=0.5), validation=digits.x_val)
    test_ll = float(ep.log_likelihood(model, digits.x_test, ep.log_partition(model)).mean())
    base_ll = float(ep.log_likelihood(base, digits.x_test, ep.log_partition(base)).mean())
    assert test_ll > base_ll + 0.5, (test_ll, base_ll)
    assert history.monitor == "val_log_likelihood" and len(history.records) == 20
    assert history.best_epoch == int(np.nanargmax(history["val_log_likelihood"]))
    assert {"train_reconstruction_error", "val_pseudo_log_likelihood", "train_free_energy_gap"} <= set(
        history.metric_names)


def test_resuming_from_a_checkpoint_reproduces_the_uninterrupted_run(tmp_path, digits):
    x = digits.x_train[:400]
    model0 = ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1)
    kwargs = dict(key=jax.random.key(5), batch_size=50, validation=digits.x_val[:100],
                  optimizer=optax.adam(1e-2))
    full, full_history = ep.fit(model0, x, ep.training.pcd(k=1, num_chains=50), epochs=6, **kwargs)
    ckpt = tmp_path / "run"
    ep.fit(model0, x, ep.training.pcd(k=1, num_chains=50), epochs=3, checkpoint_dir=ckpt, checkpoint_every=1,
           **kwargs)
    resumed, history = ep.fit(model0, x, ep.training.pcd(k=1, num_chains=50), epochs=6, checkpoint_dir=ckpt,
                              resume=True, **kwargs)
    np.testing.assert_array_equal(resumed.W, full.W)
    np.testing.assert_array_equal(history["val_log_likelihood"], full_history["val_log_likelihood"])
    loaded = ep.load(ckpt / "model.ebm")
    np.testing.assert_array_equal(loaded.W, resumed.W)
    assert not [f for f in os.listdir(ckpt) if f.endswith(".tmp")]


def test_divergence_guard_stops_cleanly_with_the_last_good_model(tmp_path, digits):
    model0 = ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1)
    with pytest.warns(ep.training.TrainingDiverged, match="diverged"):
        model, history = ep.fit(model0, digits.x_train[:200], ep.training.cd(1), key=jax.random.key(0), epochs=3,
                                batch_size=50, optimizer=optax.sgd(1e30), max_retries=2,
                                checkpoint_dir=tmp_path)
    assert history.stopped == "diverged" and "last good" in history.message
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_array)))
    np.testing.assert_array_equal(model.W, model0.W)  # no epoch ever succeeded
    assert (tmp_path / "model.ebm").exists()


def test_divergence_guard_recovers_by_restoring_and_reseeding():
    """An estimator that poisons its gradient with NaN at random (p = 0.5 per update, decided by
    its own key): the first attempt at epoch 0 fails with this seed (key 1 under the default
    generator, ebm_ppl's Philox-2x32), and a retry, re-seeded from the restored state, succeeds. The result is
    finite and the step was halved once."""
    model0 = ep.BernoulliRBM.init(jax.random.key(0), 6, 3, scale=0.1)
    x = jax.random.bernoulli(jax.random.key(1), 0.5, (40, 6)).astype(jnp.float32)
    inner = ep.training.cd(1)

    def update(model, batch, state):
        grads, new_state, metrics = inner.update(model, batch, state)
        poison = jax.random.uniform(jax.random.fold_in(state.key, 7)) < 0.5
        return jax.tree.map(lambda g: jnp.where(poison, jnp.nan, g), grads), new_state, metrics

    flaky = ep.training.GradientEstimator(inner.init, update)
    model, history = ep.fit(model0, x, flaky, key=jax.random.key(1), epochs=1, batch_size=40,
                            optimizer=optax.sgd(0.1), max_retries=5)
    assert history.stopped == "completed" and len(history.records) == 1
    assert history.recoveries == 1
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_array)))
    assert not np.array_equal(model.W, model0.W)


def test_bad_arguments(digits):
    model = ep.BernoulliRBM.init(jax.random.key(0), 64, 4)
    with pytest.raises(ValueError, match="binary"):
        ep.fit(model, digits.x_train * 0.5, ep.training.cd(1), key=jax.random.key(0))
    with pytest.raises(ValueError, match="batch_size=5000 exceeds"):
        ep.fit(model, digits.x_train, ep.training.cd(1), key=jax.random.key(0), batch_size=5000)
    with pytest.raises(ValueError, match="no field"):
        ep.fit(model, digits.x_train, ep.training.cd(1), key=jax.random.key(0), freeze=("sigma",))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        ep.training.cd(0)
    with pytest.raises(ValueError, match="CD/PCD need"):
        ep.training.gibbs_sweeps(jax.random.key(0), ep.Gaussian.standard(2), jnp.zeros((3, 2)), 1)


def test_gibbs_sweeps_carry_the_type_a_sweep_returns_under_x64():
    """Float32 states of a float64 Gaussian-Bernoulli RBM come back float64 (a sweep's Gaussian
    draw is float64): the loop starts at that type instead of failing on a changed carry; they
    equal the sweeps of the same states given as float64."""
    with jax.enable_x64(True):
        model = ep.GaussianBernoulliRBM.init(jax.random.key(0), 6, 3)
        xs = jax.random.normal(jax.random.key(1), (4, 6), jnp.float32)
        out = ep.training.gibbs_sweeps(jax.random.key(2), model, xs, 3)
        assert out.dtype == jnp.float64
        np.testing.assert_array_equal(out, ep.training.gibbs_sweeps(jax.random.key(2), model, xs.astype(jnp.float64), 3))
