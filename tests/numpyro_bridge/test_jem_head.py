"""The Bayesian JEM head: NUTS convergence, calibration next to the point head, OOD scores."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.metrics import roc_auc_score

import ebm_ppl as ep
from ebm_ppl.numpyro import expected_calibration_error, fit_jem_head, ood_auroc


@pytest.fixture(scope="module")
def trained():
    """A small JEM classifier trained by cross-entropy alone (the head only needs features)."""
    d = ep.data.digits()
    jem = ep.JEM.init(jax.random.key(0), 64, 10, width=16, depth=1)
    opt = optax.adam(3e-3)
    params, static = eqx.partition(jem, eqx.is_inexact_array)

    @jax.jit
    def run(params):
        def step(carry, _):
            params, state = carry

            def loss(p):
                logp = jax.nn.log_softmax(jax.vmap(eqx.combine(p, static).net)(d.x_train))
                return -jnp.mean(jnp.take_along_axis(logp, d.y_train[:, None], 1))

            grads = jax.grad(loss)(params)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        return jax.lax.scan(step, (params, opt.init(params)), None, length=500)[0][0]

    return eqx.combine(run(params), static), d


@pytest.mark.slow
def test_nuts_head_converges_and_reports_calibration_next_to_the_point_head(trained):
    jem, d = trained
    # 400 of the 1000 training images: the posterior of 170 weights is as well posed, NUTS 2.5x cheaper
    head, point = fit_jem_head(jax.random.key(1), jem, d.x_train[:400], d.y_train[:400], method="nuts",
                               num_chains=4, num_warmup=500, num_samples=1000)
    assert head.diagnostics["max_rhat"] < 1.01, head.diagnostics
    assert head.diagnostics["divergences"] == 0
    probs, point_probs = head.predict_proba(d.x_test), point.predict_proba(d.x_test)
    assert float((probs.argmax(-1) == d.y_test).mean()) > 0.85
    np.testing.assert_allclose(point_probs, jax.nn.softmax(jem.logits(d.x_test)), atol=1e-4)  # same head
    ece, point_ece = expected_calibration_error(probs, d.y_test), expected_calibration_error(point_probs, d.y_test)
    assert 0 <= ece < 0.1 and 0 <= point_ece < 0.2
    # the energy OOD score is posterior-averaged: the point head's energy is its mean's special case
    assert head.energy(d.x_test).shape == (447,) and np.all(np.isfinite(head.energy(d.x_test)))


def test_svi_head_and_bad_input(trained):
    jem, d = trained
    head, _ = fit_jem_head(jax.random.key(3), jem, d.x_train, d.y_train, method="svi", svi_steps=500,
                           num_samples=100)
    assert head.W.shape == (100, 16, 10) and np.isfinite(head.diagnostics["final_elbo_loss"])
    assert float((head.predict_proba(d.x_test).argmax(-1) == d.y_test).mean()) > 0.8
    with pytest.raises(ValueError, match="method"):
        fit_jem_head(jax.random.key(0), jem, d.x_train, d.y_train, method="mcmc")
    with pytest.raises(ValueError, match="integer labels"):
        fit_jem_head(jax.random.key(0), jem, d.x_train, d.y_train.astype(float))


def test_calibration_error_and_auroc_against_hand_and_sklearn():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y = np.array([0, 1, 1, 0])
    # bins of width 0.5: confidences 0.9, 0.8, 0.7, 0.6 all fall in [0.5, 1]: |3/4 - 0.75| = 0
    assert expected_calibration_error(probs, y, num_bins=2) == pytest.approx(0.0)
    # 10 bins: 0.9 (right), 0.8 (wrong), 0.7 (right), 0.6 (right) each alone
    assert expected_calibration_error(probs, y, num_bins=10) == pytest.approx((0.1 + 0.8 + 0.3 + 0.4) / 4)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200).round(1), rng.normal(0.5, size=150).round(1)  # with ties
    expected = roc_auc_score(np.r_[np.zeros(200), np.ones(150)], np.r_[a, b])
    assert ood_auroc(a, b) == pytest.approx(expected, abs=1e-12)
