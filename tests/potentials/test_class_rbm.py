"""The classification RBM against brute-force enumeration of (x, y, h): free energies, the exact
p(y | x), log Z, exact samples, block-Gibbs and joint-sweep invariance, AIS, saving, bad input."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import ebm_ppl as ep

D, M, K = 4, 3, 3


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _model(dtype=jnp.float64):
    keys = jax.random.split(jax.random.key(0), 5)
    normal = lambda k, *shape: jax.random.normal(k, shape, dtype)  # noqa: E731
    return ep.ClassRBM(normal(keys[0], D, M), normal(keys[1], K, M), 0.5 * normal(keys[2], D),
                       0.5 * normal(keys[3], M), 0.5 * normal(keys[4], K))


def _brute(model):
    """log of exp(-E(x, y, h)) summed over h, as an array (16, K): images in itertools order."""
    W, U, b, c, d = (np.asarray(a, np.float64) for a in (model.W, model.U, model.b, model.c, model.d))
    xs = np.array(list(itertools.product([0.0, 1.0], repeat=D)))
    hs = np.array(list(itertools.product([0.0, 1.0], repeat=M)))
    out = np.empty((len(xs), K))
    for i, x in enumerate(xs):
        for y in range(K):
            neg_e = x @ b + hs @ c + d[y] + (x @ W) @ hs.T + hs @ U[y]
            out[i, y] = np.logaddexp.reduce(neg_e)
    return xs, out


def test_free_energies_labels_and_log_z_equal_enumeration(x64):
    model = _model()
    xs, log_xy = _brute(model)
    log_z = np.logaddexp.reduce(log_xy.ravel())
    np.testing.assert_allclose(model.energy_joint(xs, np.zeros(len(xs), int)), -log_xy[:, 0], rtol=1e-10)
    np.testing.assert_allclose(model.energy(xs), -np.logaddexp.reduce(log_xy, axis=1), rtol=1e-10)
    p_y = np.exp(log_xy - np.logaddexp.reduce(log_xy, axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(xs), p_y, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(model.predict(xs), p_y.argmax(1))
    np.testing.assert_allclose(float(ep.log_partition(model)), log_z, rtol=1e-10)
    base = model.base_model()
    _, log_base = _brute(base)
    np.testing.assert_allclose(float(base.factorized_log_partition()), np.logaddexp.reduce(log_base.ravel()),
                               rtol=1e-10)


def _chi_square(index, p):
    counts = np.bincount(index, minlength=len(p))
    big = p * len(index) >= 5  # states expected at least 5 times; the rest pooled
    observed, expected = counts[big], p[big] * len(index)
    if not big.all():
        observed, expected = np.append(observed, counts[~big].sum()), np.append(expected, p[~big].sum() * len(index))
    return stats.chisquare(observed, expected).pvalue


def test_exact_samples_and_gibbs_moves_keep_the_exact_distribution():
    """Exact samples of x; one block-Gibbs sweep from them; and for labelled chains (x, y) with
    y ~ p(y | x), one joint sweep: each passes a chi-square test against enumeration."""
    model = _model(jnp.float32)
    xs, log_xy = _brute(model)
    p_x = np.exp(np.logaddexp.reduce(log_xy, axis=1) - np.logaddexp.reduce(log_xy.ravel()))
    p_xy = np.exp(log_xy - np.logaddexp.reduce(log_xy.ravel())).ravel()
    index = lambda x: np.asarray(x).astype(int) @ (2 ** np.arange(D)[::-1])  # noqa: E731
    n = 40_000
    start = ep.partition.exact_samples(jax.random.key(1), model, n)
    assert _chi_square(index(start), p_x) > 1e-3
    algorithm = ep.kernels.block_gibbs(model)
    state = jax.vmap(algorithm.init)(start)
    moved, _ = jax.vmap(algorithm.step)(jax.random.split(jax.random.key(2), n), state)
    assert _chi_square(index(moved.position), p_x) > 1e-3
    y = jax.random.categorical(jax.random.key(3), model.label_logits(start), axis=-1)
    x2, y2 = model.joint_sweep(jax.random.key(4), start, y)
    assert _chi_square(index(x2) * K + np.asarray(y2), p_xy) > 1e-3


@pytest.mark.slow
def test_ais_is_within_0_05_nats_of_the_exact_log_z():
    model = _model(jnp.float32)
    exact = float(ep.log_partition(model))
    forward = ep.ais(jax.random.key(0), model, num_chains=200, num_temperatures=300)
    start = ep.partition.exact_samples(jax.random.key(1), model, 200)
    reverse = ep.reverse_ais(jax.random.key(2), model, start, exact=True, num_temperatures=300)
    for est in (forward, reverse):
        assert abs(est.log_z - exact) < 0.05, (est, exact)


def test_saves_loads_and_refuses_bad_input(tmp_path):
    model = ep.ClassRBM.init(jax.random.key(0), 6, 3, 4, scale=0.1)
    ep.save(tmp_path / "c.ebm", model)
    again = ep.load(tmp_path / "c.ebm")
    assert isinstance(again, ep.ClassRBM) and np.array_equal(np.asarray(again.U), np.asarray(model.U))
    with pytest.raises(ValueError, match=r"U must have shape \(n_classes >= 2, 3\)"):
        ep.ClassRBM(model.W, jnp.zeros((4, 2)), model.b, model.c, model.d)
    with pytest.raises(ValueError, match="labels must be integers 0 .. 3"):
        model.energy_joint(jnp.zeros((2, 6)), jnp.array([0, 4]))
    with pytest.raises(ValueError, match="must be binary"):
        model.predict_proba(jnp.full((1, 6), 0.5))
    with pytest.raises(ValueError, match="route must be 'hidden' or None"):
        model.log_partition(route="visible")


def test_generative_gradient_equals_the_exact_gradient_within_monte_carlo_error():
    """With labelled chains at exact joint samples (which the joint sweep keeps exact), the
    generative objective's gradient equals the exact gradient of -mean log p(x, y) (log Z
    differentiated by enumeration) within 5 Monte Carlo standard errors in every parameter; the
    discriminative one is the exact gradient of -mean log p(y | x)."""
    import equinox as eqx

    model = ep.ClassRBM.init(jax.random.key(0), 6, 3, 3, scale=0.7)
    n = 20_000
    x_m = ep.partition.exact_samples(jax.random.key(1), model, n)
    y_m = jax.random.categorical(jax.random.key(2), model.label_logits(x_m), axis=-1).astype(jnp.int32)
    x = ep.partition.exact_samples(jax.random.key(3), model, 40)
    y = jnp.arange(40) % 3
    estimator = ep.training.class_rbm("generative", num_chains=n)
    state = estimator.init(jax.random.key(4), model, (x, y))._replace(chains=(x_m, y_m))
    grads, _, _ = estimator.update(model, (x, y), state)
    exact = eqx.filter_grad(lambda m: jnp.mean(m.free_energy_joint(x, y)) + m.log_partition())(model)
    per_chain = eqx.filter_vmap(eqx.filter_grad(lambda m, a, b: m.free_energy_joint(a, b)),
                                in_axes=(None, 0, 0))(model, x_m, y_m)
    flat = lambda t: np.concatenate([np.ravel(a) for a in jax.tree.leaves(eqx.filter(t, eqx.is_inexact_array))])  # noqa: E731
    se = flat(jax.tree.map(lambda g: jnp.std(g, axis=0) / np.sqrt(n), per_chain))
    assert np.all(np.abs(flat(grads) - flat(exact)) <= 5 * se + 1e-5)
    disc, _, _ = ep.training.class_rbm("discriminative").update(model, (x, y), state)
    exact_disc = eqx.filter_grad(lambda m: -jnp.mean(m.predict_log_proba(x)[jnp.arange(40), y]))(model)
    np.testing.assert_allclose(flat(disc), flat(exact_disc), rtol=1e-5, atol=1e-7)


def test_fit_hybrid_on_the_digits_learns_the_labels_and_the_pixels():
    """Hybrid training (Adam 0.01, 20 epochs, 20 hidden units): validation accuracy above 0.8
    and the exact validation pixel log-likelihood above the first evaluated epoch's."""
    import optax

    digits = ep.data.digits(binarize=True)
    model = ep.ClassRBM.init(jax.random.key(0), 64, 20, 10, data=digits.x_train)
    trained, history = ep.fit(model, (digits.x_train, digits.y_train), ep.training.class_rbm("hybrid"),
                              key=jax.random.key(1), epochs=20, eval_every=5, optimizer=optax.adam(0.01),
                              validation=(digits.x_val, digits.y_val), monitor="val_accuracy")
    accuracy = history["val_accuracy"][~np.isnan(history["val_accuracy"])]
    ll = history["val_log_likelihood"][~np.isnan(history["val_log_likelihood"])]
    assert accuracy.max() > 0.8 and ll[-1] > ll[0], (accuracy, ll)
    assert float(jnp.mean(trained.predict(digits.x_val) == digits.y_val)) == pytest.approx(accuracy.max())


def test_metrics_of_sizes_in_one_bucket_share_a_program_and_match_direct_computation(caplog):
    """The objective's metrics pad (x, y) to a bucket of rows: 270 and 310 examples share one
    program, and each value is the direct mean over the data (accuracy exactly)."""
    import logging

    caplog.set_level(logging.WARNING)
    digits = ep.data.digits(binarize=True)
    model = ep.ClassRBM.init(jax.random.key(0), 64, 9, 10, data=digits.x_train)  # a shape no other test uses
    metrics = ep.training.class_rbm().metrics
    log_z = float(model.log_partition())
    for n in (270, 310):
        x, y = digits.x_train[:n], digits.y_train[:n]
        with jax.log_compiles():
            values = metrics(model, (x, y), jax.random.key(0), "val_")
        assert values["val_accuracy"] == pytest.approx(float(np.mean(np.asarray(model.predict(x)) == y)), abs=1e-7)
        logits = np.asarray(model.label_logits(x), np.float64)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        assert values["val_label_log_likelihood"] == pytest.approx(np.mean(log_p[np.arange(n), y]), rel=1e-5)
        energies = np.asarray(jax.vmap(model.unbatched_energy)(jnp.asarray(x)), np.float64)
        assert values["val_log_likelihood"] == pytest.approx(np.mean(-energies) - log_z, rel=1e-5)
    compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling jit(_metric_values)")]
    assert len(compiled) == 1, compiled


def test_the_objective_refuses_bad_settings_and_models():
    with pytest.raises(ValueError, match="objective must be one of"):
        ep.training.class_rbm("joint")
    with pytest.raises(ValueError, match="alpha"):
        ep.training.class_rbm(alpha=-1.0)
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 6, 2)
    with pytest.raises(TypeError, match="needs a classification RBM"):
        ep.training.class_rbm().init(jax.random.key(0), rbm, (jnp.zeros((4, 6)), jnp.zeros(4)))
    model = ep.ClassRBM.init(jax.random.key(0), 6, 2, 3)
    with pytest.raises(ValueError, match=r"must be \(x, y\)"):
        ep.training.class_rbm().init(jax.random.key(0), model, jnp.zeros((4, 6)))
