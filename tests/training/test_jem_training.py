"""The JEM objective: the loss by hand, the Langevin negatives and the replay buffer, training on
digits, the divergence guard, checkpoints, and the figures."""

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import pytest

import ebm_ppl as ep
from ebm_ppl.kernels import langevin
from ebm_ppl.diagnostics.training_figures import image_grid, jem_figure, rbm_figure
from ebm_ppl.training.jem import jem_loss, langevin_negatives, replay_negatives

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _finite(model) -> bool:
    return all(bool(np.all(np.isfinite(leaf))) for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_array)))


def _assert_same_params(a, b) -> None:
    leaves_a = jax.tree.leaves(eqx.filter(a, eqx.is_array))
    leaves_b = jax.tree.leaves(eqx.filter(b, eqx.is_array))
    assert len(leaves_a) == len(leaves_b)
    for u, v in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def _numpy_logits(model, x):
    """The MLP's logits in float64 NumPy from its weights (ELU between layers), independent of JAX."""
    h = np.asarray(x, np.float64)
    layers = model.net.layers
    for i, layer in enumerate(layers):
        h = h @ np.asarray(layer.weight, np.float64).T + np.asarray(layer.bias, np.float64)
        if i < len(layers) - 1:
            h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))
    return h


def _logsumexp(a):
    m = a.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=-1, keepdims=True)))[..., 0]


# -- (a) the loss ------------------------------------------------------------------------------------

def test_loss_equals_a_hand_computation_with_fixed_negatives():
    """L = mean CE + w (mean E(x) - mean E(x~)) + l2 (mean E(x)^2 + mean E(x~)^2) with E = -logsumexp f,
    computed in float64 NumPy from the weights; float32 JAX agrees to 1e-5 relative."""
    model = ep.JEM.init(jax.random.key(0), 3, 4, width=5, depth=2)
    x = jax.random.normal(jax.random.key(1), (6, 3))
    y = jnp.array([0, 1, 2, 3, 1, 0])
    x_neg = jax.random.uniform(jax.random.key(2), (9, 3), minval=-1, maxval=1)
    logits, logits_neg = _numpy_logits(model, x), _numpy_logits(model, x_neg)
    ce = _logsumexp(logits) - logits[np.arange(6), np.asarray(y)]
    e_data, e_neg = -_logsumexp(logits), -_logsumexp(logits_neg)
    gen = e_data.mean() - e_neg.mean()
    expected = ce.mean() + 0.5 * gen + 0.1 * ((e_data**2).mean() + (e_neg**2).mean())

    loss, aux = eqx.filter_jit(jem_loss)(model, x, y, x_neg, energy_l2=0.1, gen_weight=0.5)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    np.testing.assert_allclose(float(aux["clf_loss"]), ce.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(aux["gen_loss"]), gen, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(aux["energy_data"]), e_data.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(aux["energy_neg"]), e_neg.mean(), rtol=1e-5)
    assert float(aux["accuracy"]) == pytest.approx(np.mean(logits.argmax(-1) == np.asarray(y)))
    # the negatives are constants of the loss: no gradient reaches them
    g_neg = jax.jit(jax.grad(lambda xn: jem_loss(model, x, y, xn, 0.1, 0.5)[0]))(x_neg)
    np.testing.assert_array_equal(np.asarray(g_neg), 0.0)
    # and the model gradient is that of the hand formula's pieces (the defaults: no l2, weight 1)
    grads = eqx.filter_jit(eqx.filter_grad(lambda m: jem_loss(m, x, y, x_neg)[0]))(model)
    ref = eqx.filter_jit(eqx.filter_grad(lambda m: jnp.mean(-jax.nn.log_softmax(m.logits(x))[jnp.arange(6), y])
                          + jnp.mean(m.energy(x)) - jnp.mean(m.energy(x_neg))))(model)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-5, atol=1e-6)


def test_cross_entropy_is_minus_log_softmax_and_finite_for_huge_logits():
    """Logits of order 1e4 overflow exp() in float32; log_softmax stays exact: CE = lse(f) - f[y]
    (float64 NumPy with the max subtracted)."""
    net = eqx.nn.Linear(3, 4, key=jax.random.key(3))
    net = eqx.tree_at(lambda n: n.weight, net, net.weight * 1e4)
    model = ep.JEM(net, (3,))
    x = jax.random.normal(jax.random.key(4), (5, 3))
    y = jnp.array([0, 1, 2, 3, 0])
    logits = np.asarray(x, np.float64) @ np.asarray(net.weight, np.float64).T + np.asarray(net.bias, np.float64)
    assert np.abs(logits).max() > 1e3
    expected = np.mean(_logsumexp(logits) - logits[np.arange(5), np.asarray(y)])
    loss, aux = eqx.filter_jit(jem_loss)(model, x, y, x, gen_weight=0.0)
    assert np.isfinite(float(loss)) and np.isfinite(float(aux["clf_loss"]))
    np.testing.assert_allclose(float(aux["clf_loss"]), expected, rtol=1e-4)
    grads = eqx.filter_jit(eqx.filter_grad(lambda m: jem_loss(m, x, y, x)[0]))(model)
    assert _finite(grads)


# -- (b) the negatives -------------------------------------------------------------------------------

def test_negatives_are_the_library_langevin_kernel_vmapped_over_the_batch():
    """Chain i is ep.kernels.langevin stepped by hand (init, then step with the keys
    split(split(key, N)[i], steps)): the same draws and positions. With sigma = 0 the dynamics is
    plain gradient ascent x + alpha grad log p, by hand."""
    model = ep.JEM.init(jax.random.key(0), 4, 3, width=8, depth=1)
    x0 = jax.random.uniform(jax.random.key(1), (7, 4), minval=-1, maxval=1)
    key, steps = jax.random.key(2), 5
    out = langevin_negatives(key, model, x0, steps, 0.5, 0.01)
    assert out.shape == (7, 4)

    algorithm = langevin(lambda x: -model.unbatched_energy(x), 0.5, 0.01)
    for i, chain_key in enumerate(jax.random.split(key, 7)):
        state = algorithm.init(x0[i])
        for k in jax.random.split(chain_key, steps):
            state, _ = algorithm.step(k, state)
        np.testing.assert_allclose(np.asarray(out[i]), np.asarray(state.position), rtol=1e-5, atol=1e-6)

    ascent = langevin_negatives(key, model, x0, steps, 0.5, 0.0)
    x = x0
    grad_log_p = jax.vmap(jax.grad(lambda v: -model.unbatched_energy(v)))
    for _ in range(steps):
        x = x + 0.5 * grad_log_p(x)
    np.testing.assert_allclose(np.asarray(ascent), np.asarray(x), rtol=1e-5, atol=1e-6)


class _Counter:
    """A mutable count, hashable by identity (a static field of the module below)."""

    def __init__(self):
        self.n = 0

    def add(self, v):
        self.n += int(np.prod(np.shape(v)[:-1]))  # examples: 1 per call, the batch size under vmap


class _CountGradients(eqx.Module):
    """The identity on x whose gradient w.r.t. x adds the number of examples to ``counter``."""

    counter: _Counter = eqx.field(static=True)

    def __call__(self, x, *, key=None):
        @jax.custom_vjp
        def identity(v):
            return v

        def bwd(v, ct):
            jax.debug.callback(self.counter.add, v)
            return (ct,)

        identity.defvjp(lambda v: (v, v), bwd)
        return identity(x)


def test_n_langevin_steps_cost_n_input_gradients_per_negative():
    """The gradient w.r.t. x is evaluated exactly steps times per chain, in langevin_negatives and
    in a training update (the loss differentiates the parameters only)."""
    counter = _Counter()
    mlp = eqx.nn.MLP(4, 3, 8, 1, activation=jax.nn.elu, key=jax.random.key(0))
    model = ep.JEM(eqx.nn.Sequential([_CountGradients(counter), mlp]), (4,))
    x0 = jax.random.uniform(jax.random.key(1), (7, 4), minval=-1, maxval=1)
    jax.block_until_ready(eqx.filter_jit(langevin_negatives)(jax.random.key(2), model, x0, 5, 1.0, 0.01))
    jax.effects_barrier()
    assert counter.n == 7 * 5

    counter.n = 0
    x, y = x0[:6], jnp.arange(6) % 3
    est = ep.training.jem(langevin_steps=4)
    grads, _, _ = eqx.filter_jit(est.update)(model, (x, y), est.init(jax.random.key(3), model, (x, y)))
    jax.block_until_ready(grads)
    jax.effects_barrier()
    assert counter.n == 6 * 4


def test_energy_gradient_of_the_elu_network_matches_numpy_backprop():
    """grad_x E(x) of JEM.init's ELU MLP (the Langevin drift) against backpropagation by hand in
    float64 NumPy (ELU' = 1 above 0, exp(h) below); float32 agrees to 1e-5 relative."""
    model = ep.JEM.init(jax.random.key(0), 5, 4, width=16, depth=2)
    x = jax.random.normal(jax.random.key(1), (9, 5)) * 2
    grads = jax.jit(jax.vmap(jax.grad(model.unbatched_energy)))(x)

    layers = model.net.layers
    hs, pre = [np.asarray(x, np.float64)], []
    for i, layer in enumerate(layers):
        a = hs[-1] @ np.asarray(layer.weight, np.float64).T + np.asarray(layer.bias, np.float64)
        pre.append(a)
        hs.append(np.where(a > 0, a, np.expm1(np.minimum(a, 0))) if i < len(layers) - 1 else a)
    logits = hs[-1]
    p = np.exp(logits - _logsumexp(logits)[:, None])
    g = -p  # dE/dlogits, E = -logsumexp
    for i in range(len(layers) - 1, -1, -1):
        g = g @ np.asarray(layers[i].weight, np.float64)
        if i > 0:
            g = g * np.where(pre[i - 1] > 0, 1.0, np.exp(np.minimum(pre[i - 1], 0)))
    np.testing.assert_allclose(np.asarray(grads), g, rtol=1e-5, atol=1e-6)
    assert np.any(np.asarray(pre[0]) < 0) and np.any(np.asarray(pre[0]) > 0)  # both ELU branches used


def test_elu_matches_float64_expm1_to_two_ulps_and_its_derivative():
    """JEM.init's ELU (a polynomial expm1 in float32, derivative read off the output) against
    float64 NumPy on 10^6 points over the normal float32 range: values within 2 ulp (the
    polynomial measured 1.13), derivatives 1 / exp(x) within 1e-7 absolute; edge cases exact;
    other dtypes fall back to jnp.expm1."""
    from ebm_ppl.potentials.jem import ACTIVATIONS

    elu = ACTIVATIONS["elu"]
    rng = np.random.default_rng(0)
    x = np.concatenate([-np.logspace(-37, 2.1, 400_000), np.logspace(-37, 2, 100_000),
                        rng.normal(0.0, 3.0, 500_000)]).astype(np.float32)
    x64 = x.astype(np.float64)
    ref = np.where(x64 > 0, x64, np.expm1(np.minimum(x64, 0)))
    got = np.asarray(jax.jit(elu)(x)).astype(np.float64)
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - ref) / ulp) <= 2.0
    d = np.asarray(jax.jit(jax.vmap(jax.grad(elu)))(x)).astype(np.float64)
    np.testing.assert_allclose(d, np.where(x64 > 0, 1.0, np.exp(np.minimum(x64, 0))), rtol=0, atol=1e-7)
    edge = np.asarray(elu(jnp.array([0.0, -100.0, -jnp.inf, jnp.inf, jnp.nan])))
    np.testing.assert_array_equal(edge[:4], [0.0, -1.0, -1.0, np.inf])
    assert np.isnan(edge[4])
    np.testing.assert_array_equal(np.asarray(jax.grad(elu)(jnp.float32(0.0))), 1.0)
    half = jnp.array([-1.0, 0.5], jnp.float16)
    np.testing.assert_array_equal(np.asarray(elu(half)), np.asarray(jax.nn.elu(half)))


def test_replay_buffer_is_updated_at_exactly_the_drawn_indices():
    model = ep.JEM.init(jax.random.key(0), 4, 3, width=8, depth=1)
    buffer = jax.random.uniform(jax.random.key(1), (40, 4), minval=-1, maxval=1)
    common = dict(init_low=-1.0, init_high=1.0, step_size=1.0, noise_scale=0.01)
    x_neg, new, idx = replay_negatives(jax.random.key(2), model, buffer, 8, reinit_prob=0.0, steps=3, **common)
    idx = np.asarray(idx)
    assert x_neg.shape == (8, 4) and len(set(idx.tolist())) == 8
    np.testing.assert_array_equal(np.asarray(new)[idx], np.asarray(x_neg))
    untouched = np.setdiff1d(np.arange(40), idx)
    np.testing.assert_array_equal(np.asarray(new)[untouched], np.asarray(buffer)[untouched])
    assert not np.allclose(np.asarray(new)[idx], np.asarray(buffer)[idx])  # the chains moved

    # no steps: the negatives are the drawn rows (reinit 0) or fresh uniform noise (reinit 1)
    kept, _, idx0 = replay_negatives(jax.random.key(3), model, buffer, 8, reinit_prob=0.0, steps=0, **common)
    np.testing.assert_array_equal(np.asarray(kept), np.asarray(buffer)[np.asarray(idx0)])
    fresh, _, idx1 = replay_negatives(jax.random.key(3), model, buffer, 8, reinit_prob=1.0, steps=0, **common)
    assert np.all(np.abs(np.asarray(fresh)) <= 1.0)
    assert not np.any(np.all(np.asarray(fresh) == np.asarray(buffer)[np.asarray(idx1)], axis=1))


def test_persistent_update_rewrites_batch_size_rows_of_the_buffer_in_the_state():
    model = ep.JEM.init(jax.random.key(0), 4, 3, width=8, depth=1)
    x = jax.random.uniform(jax.random.key(1), (8, 4), minval=-1, maxval=1)
    y = jnp.arange(8) % 3
    est = ep.training.jem(persistent=True, buffer_size=50, langevin_steps=3)
    state = est.init(jax.random.key(2), model, (x, y))
    assert state.buffer.shape == (50, 4) and np.all(np.abs(np.asarray(state.buffer)) <= 1)
    grads, new_state, metrics = eqx.filter_jit(est.update)(model, (x, y), state)
    changed = np.any(np.asarray(new_state.buffer) != np.asarray(state.buffer), axis=1)
    assert changed.sum() == 8
    assert set(metrics) == {"loss", "clf_loss", "gen_loss", "accuracy", "energy_data", "energy_neg"}
    assert _finite(grads) and all(np.isfinite(float(v)) for v in metrics.values())
    short = ep.training.jem(langevin_steps=3)
    assert short.init(jax.random.key(2), model, (x, y)).buffer is None
    with pytest.raises(ValueError, match="exceeds buffer_size"):
        ep.training.jem(persistent=True, buffer_size=4).update(model, (x, y), est.init(jax.random.key(2), model)
                                                               ._replace(buffer=jnp.zeros((4, 4))))


def test_langevin_samples_shapes_and_arguments():
    model = ep.JEM.init(jax.random.key(0), 4, 3, width=8, depth=1)
    s = ep.training.langevin_samples(jax.random.key(1), model, 5, steps=3)
    assert s.shape == (5, 4) and np.all(np.isfinite(np.asarray(s)))
    init = jnp.zeros((5, 4))
    np.testing.assert_array_equal(ep.training.langevin_samples(jax.random.key(1), model, 5, steps=0, init=init), init)
    with pytest.raises(ValueError, match="init must have shape"):
        ep.training.langevin_samples(jax.random.key(1), model, 5, init=jnp.zeros((4, 4)))
    with pytest.raises(ValueError, match="step_size"):
        ep.training.langevin_samples(jax.random.key(1), model, 5, step_size=0.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="langevin_steps"):
        ep.training.jem(langevin_steps=-1)
    with pytest.raises(ValueError, match="reinit_prob"):
        ep.training.jem(reinit_prob=1.5)
    with pytest.raises(ValueError, match="init_low < init_high"):
        ep.training.jem(init_low=1.0, init_high=-1.0)
    with pytest.raises(ValueError, match="energy_l2"):
        ep.training.jem(energy_l2=-1.0)
    rbm = ep.GaussianBernoulliRBM.init(jax.random.key(0), 4, 2)
    with pytest.raises(TypeError, match="classifier"):
        ep.fit(rbm, (np.zeros((10, 4), np.float32), np.zeros(10, np.int32)), ep.training.jem(),
               key=jax.random.key(0), batch_size=5)
    model = ep.JEM.init(jax.random.key(0), 4, 3, width=8, depth=1)
    with pytest.raises(ValueError, match="integers"):
        ep.fit(model, (np.zeros((10, 4), np.float32), np.zeros(10, np.float32)), ep.training.jem(),
               key=jax.random.key(0), batch_size=5)


# -- (c) training on digits --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return ep.data.digits(scale="signed", train_noise=0.03, key=jax.random.key(0))


@pytest.mark.parametrize("persistent", [False, True], ids=["short_run", "replay_buffer"])
def test_brief_training_on_digits_classifies_well_above_chance(digits, persistent):
    """64-128-128-10 ELU, 300 training digits, 10 epochs of batch 64, Adamax 1e-3 (the chapter's
    optimizer): validation accuracy > 0.5 (chance 0.1; this setting gave 0.75-0.81 over seeds)."""
    model0 = ep.JEM.init(jax.random.key(1), 64, 10, width=128, depth=2)
    est = ep.training.jem(persistent=persistent, buffer_size=1000)
    model, history = ep.fit(model0, (digits.x_train[:300], digits.y_train[:300]), est, key=jax.random.key(2),
                            optimizer=optax.adamax(1e-3), epochs=10, batch_size=64,
                            validation=(digits.x_val, digits.y_val))
    assert history.stopped == "completed" and len(history.records) == 10 and history.recoveries == 0
    assert history.monitor == "val_accuracy"
    for name in ("train_loss", "train_clf_loss", "train_gen_loss", "val_loss", "val_gen_loss", "val_clf_loss"):
        assert np.all(np.isfinite(history[name])), name
    np.testing.assert_allclose(history["val_loss"], history["val_clf_loss"] + history["val_gen_loss"], rtol=1e-6)
    assert history["val_accuracy"].max() > 0.5
    test_acc = float(jnp.mean(model.classify(digits.x_test) == digits.y_test))
    assert test_acc > 0.5, test_acc
    assert _finite(model)


def test_equal_jem_settings_share_fits_compiled_program(digits, caplog):
    """jem() is a value (static settings): a fresh, equal estimator and the same optimizer object
    reuse the compiled epoch loop; another setting compiles its own."""
    import logging

    caplog.set_level(logging.WARNING)
    model0 = ep.JEM.init(jax.random.key(1), 64, 10, width=16, depth=1)
    opt = optax.adamax(1e-3)
    data = (digits.x_train[:128], digits.y_train[:128])

    def run(est):
        return ep.fit(model0, data, est, key=jax.random.key(2), optimizer=opt, epochs=2, batch_size=64,
                      metrics=False)[1]

    assert ep.training.jem(langevin_steps=3) == ep.training.jem(langevin_steps=3)
    assert hash(ep.training.jem(langevin_steps=3)) == hash(ep.training.jem(langevin_steps=3))
    first = run(ep.training.jem(langevin_steps=3))
    with jax.log_compiles():
        again = run(ep.training.jem(langevin_steps=3))
        compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling jit(")]
        assert not any("jit(run_epochs)" in m for m in compiled), compiled
        run(ep.training.jem(langevin_steps=4))
        compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling jit(")]
        assert any("jit(run_epochs)" in m for m in compiled)
    np.testing.assert_array_equal(first["train_loss"], again["train_loss"])


def test_metrics_are_deterministic_given_the_key(digits):
    model = ep.JEM.init(jax.random.key(1), 64, 10, width=32, depth=1)
    metrics = ep.training.jem().metrics
    data = (jnp.asarray(digits.x_val), jnp.asarray(digits.y_val))
    a = metrics(model, data, jax.random.key(5), "val_")
    b = metrics(model, data, jax.random.key(5), "val_")
    assert a == b and set(a) == {"val_loss", "val_clf_loss", "val_gen_loss", "val_accuracy"}
    assert a["val_loss"] == pytest.approx(a["val_clf_loss"] + a["val_gen_loss"])


def test_metrics_of_sizes_in_one_bucket_share_a_program_and_ignore_the_padding(digits, caplog, monkeypatch):
    """jem_metrics pads (x, y) to a bucket of rows (ebm_ppl.training.rows): 270 and 310 examples
    (and 200, below the 256 negatives) compile one program per bucket, and agree to float rounding
    with a program compiled for exactly that size (the first min(N, 256) negatives are the same)."""
    import importlib
    import logging

    jem_module = importlib.import_module("ebm_ppl.training.jem")  # the attribute is the function jem
    model = ep.JEM.init(jax.random.key(1), 64, 10, width=24, depth=1)  # a shape no other test compiles
    metrics = ep.training.jem(langevin_steps=3).metrics
    x, y = jnp.asarray(digits.x_train), jnp.asarray(digits.y_train)
    caplog.set_level(logging.WARNING)
    bucketed = {}
    for n in (270, 310, 200, 210):
        caplog.clear()
        with jax.log_compiles():
            bucketed[n] = metrics(model, (x[:n], y[:n]), jax.random.key(5), "train_")
        compiled = [r.getMessage() for r in caplog.records
                    if r.getMessage().startswith("Compiling jit(_metric_values)")]
        assert len(compiled) == (n in (270, 200)), (n, compiled)  # 310 and 210 reuse 320's and 224's
    with monkeypatch.context() as patch:
        patch.setattr(jem_module, "bucket_rows", lambda n, key=None: n)
        for n, values in bucketed.items():
            exact = metrics(model, (x[:n], y[:n]), jax.random.key(5), "train_")
            assert exact.keys() == values.keys()
            for name in exact:
                assert values[name] == pytest.approx(exact[name], rel=1e-5, abs=1e-5), (n, name)


def test_resuming_a_replay_buffer_run_reproduces_the_uninterrupted_run(tmp_path, digits):
    """The buffer lives in the estimator state, so the checkpoint carries it: 2 + 2 epochs equal 4."""
    model0 = ep.JEM.init(jax.random.key(1), 64, 10, width=32, depth=1)
    data = (digits.x_train[:128], digits.y_train[:128])
    kwargs = dict(key=jax.random.key(3), batch_size=32, optimizer=optax.adamax(1e-3))
    make = lambda: ep.training.jem(persistent=True, buffer_size=100, langevin_steps=5)  # noqa: E731
    full, _ = ep.fit(model0, data, make(), epochs=4, **kwargs)
    ep.fit(model0, data, make(), epochs=2, checkpoint_dir=tmp_path, checkpoint_every=1, **kwargs)
    resumed, history = ep.fit(model0, data, make(), epochs=4, checkpoint_dir=tmp_path, resume=True, **kwargs)
    assert len(history.records) == 4
    _assert_same_params(full, resumed)


# -- (d) the divergence guard ------------------------------------------------------------------------

def test_absurd_learning_rate_trips_the_divergence_guard(tmp_path, digits):
    model0 = ep.JEM.init(jax.random.key(1), 64, 10, width=32, depth=1)
    with pytest.warns(ep.training.TrainingDiverged, match="diverged"):
        model, history = ep.fit(model0, (digits.x_train[:128], digits.y_train[:128]),
                                ep.training.jem(persistent=True, buffer_size=200, langevin_steps=5),
                                key=jax.random.key(0), epochs=2, batch_size=64, optimizer=optax.sgd(1e12),
                                max_retries=2, checkpoint_dir=tmp_path)
    assert history.stopped == "diverged" and "last good" in history.message
    assert history.recoveries == 2 and not history.records
    assert _finite(model)
    _assert_same_params(model, model0)  # no epoch ever succeeded
    loaded = ep.load(tmp_path / "model.ebm")
    assert isinstance(loaded, ep.JEM)
    _assert_same_params(loaded, model)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


# -- (e) figures --------------------------------------------------------------------------------------

def _is_png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == PNG_SIGNATURE


def test_figures_are_written_as_png_without_pyplot(tmp_path, digits):
    before = plt.get_fignums()
    model = ep.JEM.init(jax.random.key(1), 64, 10, width=32, depth=1)
    history = ep.training.History(records=[
        {"epoch": e, "val_loss": 2.3 - 0.1 * e, "val_gen_loss": -0.1 * e, "train_loss": 2.2 - 0.1 * e,
         "train_gen_loss": -0.1 * e} for e in range(5)])
    out = jem_figure(model, digits.x_val, history, tmp_path / "jem.png", key=jax.random.key(2))
    assert out == str(tmp_path / "jem.png") and _is_png(out)

    rbm = ep.BernoulliRBM.init(jax.random.key(0), 64, 16, scale=0.1)
    rbm_history = ep.training.History(records=[
        {"epoch": e, "val_log_likelihood": -30.0 + e, "train_log_likelihood": -29.0 + e} for e in range(4)])
    assert _is_png(rbm_figure(rbm, rbm_history, tmp_path / "rbm.png", key=jax.random.key(3), sweeps=20))
    gb = ep.GaussianBernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1)
    assert _is_png(rbm_figure(gb, ep.training.History(), tmp_path / "gb.png", key=jax.random.key(3), sweeps=5))

    assert plt.get_fignums() == before
    assert sorted(os.listdir(tmp_path)) == ["gb.png", "jem.png", "rbm.png"]  # no temporary files left
    with pytest.raises(ValueError, match="image_shape"):
        jem_figure(model, digits.x_val[:, :60], history, tmp_path / "bad.png", key=jax.random.key(2))


def test_image_grid_tiles_row_major_with_padding():
    images = np.arange(3 * 4).reshape(3, 4).astype(float)
    grid = image_grid(images, (2, 2), ncols=2)
    assert grid.shape == (5, 5)
    np.testing.assert_array_equal(grid[:2, :2], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(grid[:2, 3:], [[4, 5], [6, 7]])
    np.testing.assert_array_equal(grid[3:, :2], [[8, 9], [10, 11]])
    assert np.isnan(grid[2]).all() and np.isnan(grid[3:, 3:]).all()
