"""ep.fit's compiled epoch loop: fused epochs, the compile cache, the divergence guard inside a
fused call, eval_every, the PRNG implementation, and the shared-log-Z default metrics."""

import contextlib
import importlib
import json
import logging
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ebm_ppl as ep

epochs_module = importlib.import_module("ebm_ppl.training.epochs")
run_module = importlib.import_module("ebm_ppl.training.run")


@pytest.fixture(scope="module")
def x():
    return ep.data.digits(binarize=True).x_train[:300]


@pytest.fixture
def calls(monkeypatch):
    """Counts the compiled calls (each runs one group of epochs) that ep.fit makes."""
    counter = {"n": 0}
    inner = epochs_module.run_epochs

    def counting(*args):
        counter["n"] += 1
        return inner(*args)

    monkeypatch.setattr(epochs_module, "run_epochs", counting)
    return counter


OPT = optax.sgd(0.05, momentum=0.5)  # one object for the whole module: its compiled loop is shared


def _run(x, tmp_path=None, estimator=None, epochs=6, **kwargs):
    model0 = ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1)
    return ep.fit(model0, x, estimator or ep.training.pcd(k=1, num_chains=50), key=jax.random.key(4), epochs=epochs,
                  batch_size=50, optimizer=OPT, metrics=False,
                  checkpoint_dir=tmp_path, **kwargs)


def _assert_same_run(a, b):
    (model_a, hist_a), (model_b, hist_b) = a, b
    for name in ("W", "b", "c"):
        np.testing.assert_array_equal(getattr(model_a, name), getattr(model_b, name))
    assert hist_a.metric_names == hist_b.metric_names
    for name in hist_a.metric_names:
        np.testing.assert_array_equal(hist_a[name], hist_b[name])
    assert hist_a.recoveries == hist_b.recoveries


def test_fused_epochs_give_the_same_run_as_one_epoch_per_call(x, tmp_path, calls):
    """Without metrics the six epochs run in one compiled call; with a checkpoint after every
    epoch (or every second one) they run one (two) per call. Same key: bit-identical parameters
    and per-epoch training means."""
    fused = _run(x)
    assert calls["n"] == 1
    per_epoch = _run(x, tmp_path / "a", checkpoint_every=1)
    assert calls["n"] == 1 + 6
    pairs = _run(x, tmp_path / "b", checkpoint_every=2)
    assert calls["n"] == 1 + 6 + 3
    _assert_same_run(fused, per_epoch)
    _assert_same_run(fused, pairs)
    model, history = fused
    assert history["epoch"].tolist() == list(range(6))
    assert history.metric_names == ["epoch", "train_free_energy_gap"]
    assert history.monitor is None and history.best_epoch is None and history.stopped == "completed"
    assert np.all(np.isfinite(history["train_free_energy_gap"]))


def _flaky_pcd():
    """PCD-1 whose gradient is NaN with probability 0.3 per update (decided by its own key)."""
    inner = ep.training.pcd(k=1, num_chains=50)

    def update(model, batch, state):
        grads, new_state, metrics = inner.update(model, batch, state)
        poison = jax.random.uniform(jax.random.fold_in(state.key, 7)) < 0.3
        return jax.tree.map(lambda g: jnp.where(poison, jnp.nan, g), grads), new_state, metrics

    return ep.training.GradientEstimator(inner.init, update)


def test_the_divergence_guard_inside_fused_epochs_matches_one_epoch_per_call(x, tmp_path, calls):
    """An estimator whose gradient is NaN with probability 0.3 per update (decided by its own key).
    Inside a fused call the loop stops at the first bad epoch and keeps the good ones before it;
    the host restores, halves the step, re-seeds and continues from the bad epoch, exactly as
    with one epoch per call: same recoveries, records and parameters."""
    flaky = _flaky_pcd()
    fused = _run(x, estimator=flaky, max_retries=30)
    fused_calls = calls["n"]
    per_epoch = _run(x, tmp_path, estimator=flaky, max_retries=30, checkpoint_every=1)
    _assert_same_run(fused, per_epoch)
    model, history = fused
    assert history.stopped == "completed" and len(history.records) == 6
    assert history.recoveries >= 1 and fused_calls == 1 + history.recoveries
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in (model.W, model.b, model.c))


def test_a_chunk_that_always_diverges_stops_with_the_last_good_model(x):
    model0 = ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1)
    with pytest.warns(ep.training.TrainingDiverged, match="diverged at epoch 0"):
        model, history = ep.fit(model0, x, ep.training.cd(1), key=jax.random.key(0), epochs=4, batch_size=50,
                                optimizer=optax.sgd(1e30), max_retries=2, metrics=False)
    assert history.stopped == "diverged" and history.recoveries == 2 and history.records == []
    np.testing.assert_array_equal(model.W, model0.W)


def _compiled(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling jit(")]


def test_a_second_call_with_equal_settings_compiles_nothing(x, caplog):
    """The compiled loop is module-level: equal estimators (a fresh pcd(...) object) and equal
    optimizers (a fresh optax.sgd(...) of the same settings) reuse it; another estimator setting or
    another optimizer setting compile."""
    caplog.set_level(logging.WARNING)
    _run(x, estimator=ep.training.pcd(k=1, num_chains=40))
    with jax.log_compiles():
        _run(x, estimator=ep.training.pcd(k=1, num_chains=40))
        assert _compiled(caplog) == []
        _run(x, estimator=ep.training.pcd(k=2, num_chains=40))
        assert any("jit(run_epochs)" in m for m in _compiled(caplog))
        model0 = ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1)
        for lr, compiles in ((0.07, True), (0.07, False), (0.08, True)):
            caplog.clear()
            ep.fit(model0, x, ep.training.pcd(k=1, num_chains=40), key=jax.random.key(4), epochs=6, batch_size=50,
                   optimizer=optax.sgd(lr, momentum=0.5), metrics=False)  # a fresh object each time
            assert any("jit(run_epochs)" in m for m in _compiled(caplog)) == compiles, (lr, _compiled(caplog))


def test_a_data_size_in_the_same_bucket_compiles_neither_epochs_nor_metrics(caplog):
    """fit pads its data to a bucket of rows (ebm_ppl.training.rows.bucket_rows: at most 25% more),
    so 270 and 310 examples (both padded to 320) share the epoch loop, the default metrics'
    program and the initial state's (PCD's init reads the first rows of the padded data:
    ``init_takes_num_rows``). A model shape no other test uses, so that nothing was compiled before."""
    data = ep.data.digits(binarize=True)
    model0 = ep.BernoulliRBM.init(jax.random.key(0), 64, 7, scale=0.1)
    kwargs = dict(key=jax.random.key(4), epochs=2, batch_size=50, optimizer=OPT, validation=data.x_val[:100])
    caplog.set_level(logging.WARNING)
    with jax.log_compiles():
        ep.fit(model0, data.x_train[:270], ep.training.pcd(k=1, num_chains=50), **kwargs)
        first = _compiled(caplog)
        caplog.clear()
        ep.fit(model0, data.x_train[:310], ep.training.pcd(k=1, num_chains=50), **kwargs)
        second = _compiled(caplog)
        caplog.clear()
        ep.fit(model0, data.x_train[:330], ep.training.pcd(k=1, num_chains=50), **kwargs)  # the next bucket
        third = _compiled(caplog)
    for name in ("jit(init_state)", "jit(run_epochs)", "jit(_boltzmann_values)"):
        assert any(name in m for m in first), (name, first)  # the log is read
    programs = ("jit(init_state)", "jit(run_epochs)", "jit(_boltzmann_values)")
    assert not any(name in m for m in second for name in programs), second
    assert all(any(name in m for m in third) for name in programs), third


def _tiny_jem_run(data, **kwargs):
    model0 = ep.JEM.init(jax.random.key(0), 64, 10, width=16, depth=1)
    return ep.fit(model0, data, ep.training.jem(langevin_steps=2), **kwargs)


@pytest.mark.parametrize("case", ["pcd", "pcd_in_order", "jem", "pcd_x64", "legacy_threefry", "centered", "pt_pcd",
                                  "class_rbm"])
def test_the_padding_changes_nothing(case, monkeypatch):
    """A run on 290 examples padded to 320 rows equals the run compiled for exactly 290: the same
    parameters bit for bit (the padding is never drawn into a minibatch or a persistent chain),
    the same metrics to float rounding (their means sum in another order). Also with 64-bit
    types on (the pseudo-likelihood's 64-bit draws) and with JAX's legacy threefry, whose draws
    are not prefix-stable, so that fit does not pad for it. The estimators' initial states come
    from the padded data too (``init_takes_num_rows``): centered PCD, PT-PCD and the
    classification RBM's persistent chains start at the same rows."""
    with contextlib.ExitStack() as stack:
        if case == "pcd_x64":
            stack.enter_context(jax.enable_x64(True))
        if case == "legacy_threefry":
            stack.enter_context(jax.threefry_partitionable(False))
            assert run_module.bucket_rows(290, jax.random.key(4)) == 290
        _compare_padded_and_exact(case, monkeypatch)


def _compare_padded_and_exact(case, monkeypatch):
    data = ep.data.digits(binarize=case != "jem")
    kwargs = dict(key=jax.random.key(4), epochs=2, batch_size=50, optimizer=OPT,
                  prng_impl=None if case == "legacy_threefry" else "philox2x32_64")
    if case == "jem":
        def run():
            return _tiny_jem_run((data.x_train[:290], data.y_train[:290]), metrics=False, **kwargs)
    elif case == "class_rbm":
        def run():
            model0 = ep.ClassRBM.init(jax.random.key(0), 64, 8, 10)
            return ep.fit(model0, (data.x_train[:290], data.y_train[:290]), ep.training.class_rbm("hybrid", num_chains=20),
                          metrics=False, **kwargs)
    elif case in ("centered", "pt_pcd"):
        def run():
            model0 = ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1)
            estimator = (ep.training.centered(ep.training.pcd(k=1, num_chains=50)) if case == "centered"
                         else ep.training.pt_pcd(k=1, num_chains=20, num_replicas=3))
            return ep.fit(model0, data.x_train[:290], estimator, metrics=False, **kwargs)
    else:
        def run():
            model0 = ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1)
            return ep.fit(model0, data.x_train[:290], ep.training.pcd(k=1, num_chains=50),
                          shuffle=case != "pcd_in_order",
                          validation=data.x_val[:90], **kwargs)
    padded_model, padded = run()
    with monkeypatch.context() as patch:
        patch.setattr(run_module, "bucket_rows", lambda n, key=None: n)
        exact_model, exact = run()
    for a, b in zip(jax.tree.leaves(padded_model), jax.tree.leaves(exact_model)):
        np.testing.assert_array_equal(a, b)
    assert padded.metric_names == exact.metric_names and len(padded.records) == 2
    for name in padded.metric_names:
        np.testing.assert_allclose(padded[name], exact[name], rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("family", ["bernoulli", "gaussian_bernoulli"])
def test_the_data_take_the_model_precision_under_x64(family):
    """With 64-bit types on, a float32 model trains on float64 data and a float64 model on float32
    data as on data of its own type (bit for bit): the data are cast to the model's precision
    (before, a loop's carry changed type: float64 gradients of a float32 model, or float32 chains
    that a float64 Gaussian-Bernoulli RBM's Gibbs sweep turned float64)."""
    import equinox as eqx

    digits = ep.data.digits(binarize=True)
    x = np.asarray(digits.x_train[:120], np.float64)
    with jax.enable_x64(True):
        if family == "bernoulli":
            model0 = ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1)
        else:
            x = ((x - x.mean(0)) / (x.std(0) + 0.1)).astype(np.float32).astype(np.float64)  # both types hold it
            model0 = ep.GaussianBernoulliRBM.init(jax.random.key(0), 64, 8)
        for dtype, other in ((jnp.float32, np.float64), (jnp.float64, np.float32)):
            model = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, model0)  # noqa: B023
            runs = [ep.fit(model, x.astype(data_type), ep.training.pcd(num_chains=20), key=jax.random.key(1),
                           epochs=2, batch_size=40, optimizer=OPT, metrics=False)
                    for data_type in (np.dtype(dtype), other)]
            for (trained, _), (same, _) in [runs]:
                for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(same)):
                    assert a.dtype == b.dtype and (a.dtype == dtype or not eqx.is_inexact_array(a))
                    np.testing.assert_array_equal(a, b)


def test_optimizer_fingerprints_tell_settings_apart():
    from ebm_ppl.training.optimizers import fingerprint, guarded

    schedule = lambda rate: optax.exponential_decay(1e-3, 100, rate)  # noqa: E731
    same = [(optax.sgd(0.05, momentum=0.5), optax.sgd(0.05, momentum=0.5)), (optax.adam(1e-3), optax.adam(1e-3)),
            (optax.chain(optax.clip(1.0), optax.adam(schedule(0.9))), optax.chain(optax.clip(1.0), optax.adam(schedule(0.9)))),
            (optax.adam(jnp.float32(1e-3)), optax.adam(jnp.float32(1e-3)))]
    for a, b in same:
        assert fingerprint(a) is not None and fingerprint(a) == fingerprint(b)
        assert guarded(a) is guarded(b)
    other = [(optax.sgd(0.05), optax.sgd(0.06)), (optax.sgd(0.05), optax.sgd(0.05, momentum=0.5)),
             (optax.adam(1e-3), optax.adamw(1e-3)), (optax.adam(schedule(0.9)), optax.adam(schedule(0.8))),
             (optax.adam(jnp.float32(1e-3)), optax.adam(jnp.float32(2e-3)))]
    for a, b in other:
        assert fingerprint(a) != fingerprint(b)
        assert guarded(a) is not guarded(b)

    class Unhashable:
        __hash__ = None

    captured = Unhashable()
    opaque = optax.GradientTransformation(lambda p: captured, lambda u, s, p=None: (u, s))
    twin = optax.GradientTransformation(lambda p: captured, lambda u, s, p=None: (u, s))
    assert fingerprint(opaque) is None  # compared by identity
    assert guarded(opaque) is guarded(opaque) and guarded(opaque) is not guarded(twin)


def test_eval_every_evaluates_every_other_epoch_without_changing_the_run(x):
    """Metrics draw from their own keys, so evaluating less often leaves the training run as it
    is; the metrics of an epoch evaluated by both runs agree."""
    val = ep.data.digits(binarize=True).x_val[:100]
    model0 = ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1)
    kwargs = dict(key=jax.random.key(4), epochs=5, batch_size=50, optimizer=OPT, validation=val)
    every, h1 = ep.fit(model0, x, ep.training.pcd(k=1, num_chains=50), **kwargs)
    other, h2 = ep.fit(model0, x, ep.training.pcd(k=1, num_chains=50), eval_every=2, **kwargs)
    np.testing.assert_array_equal(h1["train_free_energy_gap"], h2["train_free_energy_gap"])
    evaluated = ~np.isnan(h2["val_log_likelihood"])
    assert evaluated.tolist() == [False, True, False, True, True]  # every second epoch and the last
    np.testing.assert_allclose(h2["val_log_likelihood"][evaluated], h1["val_log_likelihood"][evaluated], rtol=1e-6)
    assert h2.best_epoch in (1, 3, 4) and h2.monitor == "val_log_likelihood"


def test_default_metrics_share_one_log_z_between_train_and_validation():
    data = ep.data.digits(binarize=True)
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 64, 10, scale=0.3)
    key = jax.random.key(1)
    both = ep.training.metrics.boltzmann_metrics_sets(rbm, {"train_": (data.x_train,), "val_": (data.x_val,)}, key)
    one = {**ep.training.boltzmann_metrics(rbm, (data.x_train,), key, "train_"),
           **ep.training.boltzmann_metrics(rbm, (data.x_val,), key, "val_")}
    assert both.keys() == one.keys() and len(both) == 6
    for name in both:
        np.testing.assert_allclose(both[name], one[name], rtol=1e-5)
    exact = float(jnp.mean(ep.log_likelihood(rbm, data.x_val, ep.log_partition(rbm))))
    np.testing.assert_allclose(both["val_log_likelihood"], exact, rtol=1e-5)


def _key_impls(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("meta.json"))["key_impls"]


def test_prng_impl_default_is_philox_and_none_keeps_the_key(x, tmp_path):
    """Checkpoints name their keys' implementation; a resume with another one is refused with the
    fix, and a resume with the right one continues the run exactly."""
    _run(x, tmp_path / "philox", checkpoint_every=6)
    assert set(_key_impls(tmp_path / "philox" / "checkpoint.ckpt").values()) == {"philox2x32_64"}
    threefry = _run(x, prng_impl=None)
    assert not np.array_equal(threefry[0].W, _run(x)[0].W)  # another stream, another run
    _run(x, tmp_path / "threefry", epochs=3, prng_impl=None)
    assert set(_key_impls(tmp_path / "threefry" / "checkpoint.ckpt").values()) == {"threefry2x32"}
    with pytest.raises(ValueError, match="resume with prng_impl='threefry2x32'"):
        _run(x, tmp_path / "threefry", resume=True)
    _assert_same_run(threefry, _run(x, tmp_path / "threefry", resume=True, prng_impl=None))


def test_resume_with_fused_epochs_reproduces_the_uninterrupted_run(x, tmp_path):
    """Three fused epochs, checkpoint, then three more (fused again) = six in one call."""
    _run(x, tmp_path, epochs=3)
    _assert_same_run(_run(x), _run(x, tmp_path, resume=True))


def test_bad_fit_arguments(x):
    model = ep.BernoulliRBM.init(jax.random.key(0), 64, 4)
    with pytest.raises(ValueError, match="which metrics=False turns off"):
        ep.fit(model, x, ep.training.cd(1), key=jax.random.key(0), metrics=False, validation=x)
    with pytest.raises(ValueError, match="patience needs a monitored metric"):
        ep.fit(model, x, ep.training.cd(1), key=jax.random.key(0), metrics=False, patience=2)
    with pytest.raises(ValueError, match="eval_every must be an integer >= 1"):
        ep.fit(model, x, ep.training.cd(1), key=jax.random.key(0), eval_every=0)
    with pytest.raises(TypeError, match="metrics must be a function"):
        ep.fit(model, x, ep.training.cd(1), key=jax.random.key(0), metrics="exact")
    with pytest.raises(ValueError, match="^fit: validation holds no examples"):  # before: NaN metrics, "diverged"
        ep.fit(model, x, ep.training.cd(1), key=jax.random.key(0), validation=x[:0])
    with pytest.raises(ValueError, match=r"got \(64,\) \(a list is read as the arrays \(x, y, \.\.\.\); pass rows"):
        ep.fit(model, np.asarray(x).tolist(), ep.training.cd(1), key=jax.random.key(0))


class _RecordFirstRows(ep.training.CDEstimator):
    """Zero gradients; the step metric is the first value of the batch's first row."""

    def update(self, model, batch, state):
        zeros = jax.tree.map(jnp.zeros_like, model)
        return zeros, state, {"first": batch[0][0, 0]}


def test_shuffle_false_takes_the_minibatches_in_the_data_order():
    x = jnp.arange(12.0).reshape(12, 1)
    model = ep.Gaussian(jnp.zeros(1), jnp.eye(1))
    kwargs = dict(key=jax.random.key(0), epochs=3, batch_size=5, metrics=False, optimizer=OPT)
    _, ordered = ep.fit(model, x, _RecordFirstRows(1), shuffle=False, **kwargs)
    np.testing.assert_array_equal(ordered["train_first"], [2.5, 2.5, 2.5])  # rows 0 and 5; 10, 11 dropped
    _, shuffled = ep.fit(model, x, _RecordFirstRows(1), **kwargs)
    assert len(set(shuffled["train_first"].tolist())) > 1  # a new permutation every epoch


def test_resume_refuses_another_shuffle_setting(x, tmp_path):
    _run(x, tmp_path, epochs=2, shuffle=False)
    with pytest.raises(ValueError, match="shuffle=False; resuming with shuffle=True"):
        _run(x, tmp_path, epochs=4, resume=True)
    _assert_same_run(_run(x, epochs=4, shuffle=False), _run(x, tmp_path, epochs=4, resume=True, shuffle=False))


def test_a_misspelled_monitor_is_an_error_listing_the_recorded_metrics(x):
    """monitor='val_log_likelihod' would never select or stop anything; the first evaluation refuses it."""
    model0 = ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1)
    with pytest.raises(ValueError, match=r"monitor='val_log_likelihod' is not a recorded metric.*val_log_likelihood"):
        ep.fit(model0, x[:200], ep.training.pcd(k=1, num_chains=20), key=jax.random.key(1), epochs=3, batch_size=50,
               optimizer=OPT, validation=x[200:], monitor="val_log_likelihod")


def test_a_failed_save_warns_and_returns_the_trained_model(x, tmp_path, monkeypatch):
    """Checkpoints and model.ebm that cannot be written (disk full, permissions changed mid-run)
    cost a warning each, never the trained model: it equals the run without checkpoints."""
    run_module = importlib.import_module("ebm_ppl.training.run")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(run_module, "save_checkpoint", refuse)
    monkeypatch.setattr(run_module, "save", refuse)
    with pytest.warns(ep.training.CheckpointWarning) as caught:
        saved = _run(x, tmp_path, checkpoint_every=2)
    messages = [str(w.message) for w in caught]
    assert any("could not write checkpoint.ckpt" in m for m in messages)
    assert any("could not write model.ebm" in m for m in messages)
    _assert_same_run(saved, _run(x))
    assert not list(tmp_path.iterdir())


def test_checkpoint_dir_is_checked_before_training(x, tmp_path):
    """A checkpoint_dir that cannot hold files is refused before the first epoch."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(NotADirectoryError, match="checkpoint_dir"):
        _run(x, not_a_dir)
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            _run(x, locked)
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("labels, message", [
    (np.full(32, -1), "integers 0 .. 3 .*got -1"),  # trained as 3 by negative indexing
    (np.full(32, 0.5), "integers 0 .. 3 .*got 0.5"),  # trained as 0
    (np.full(32, 7), "integers 0 .. 3 .*got 7"),  # a false TrainingDiverged and an untrained model
    (np.eye(4)[np.arange(32) % 4], r"numbers of shape \(32,\), one label number per example \(not one-hot"),
])
def test_fit_refuses_labels_a_classification_rbm_cannot_have(labels, message):
    """Labels outside 0 .. K-1, fractional or one-hot are refused at the fit call, in the
    training data and in the validation data, as ``ClassRBM.energy_joint`` refuses them."""
    model = ep.ClassRBM.init(jax.random.key(0), 5, 3, 4, scale=0.3)
    x = ((np.arange(32)[:, None] >> np.arange(5)) & 1).astype(np.float32)  # every 5-pixel image
    good = np.arange(32) % 4
    fit = dict(key=jax.random.key(0), epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="fit: the labels of data must be " + message):
        ep.fit(model, (x, labels), ep.training.class_rbm("discriminative"), **fit)
    with pytest.raises(ValueError, match="fit: the labels of validation must be " + message):
        ep.fit(model, (x, good), ep.training.class_rbm("discriminative"), validation=(x, labels), **fit)


def test_fit_refuses_jem_labels_outside_the_classes():
    x = ep.data.digits().x_train[:64]
    with pytest.raises(ValueError, match=r"fit: the labels of data must lie in 0 .. 9 .*got range \[-1, 8\]"):
        _tiny_jem_run((x, np.arange(64) % 10 - 1), key=jax.random.key(0), epochs=1, batch_size=32)


def test_fit_refuses_arrays_an_estimator_would_ignore(x):
    """PCD reads x alone: ``(x, y)`` trained as if given x. It is refused unless a metrics function
    of the user's own (which receives every array) reads y; a classification objective given x
    alone is refused too."""
    y = np.zeros(x.shape[0], np.int32)
    with pytest.raises(ValueError, match=r"fit: the estimator PCDEstimator trains on x alone, and data holds 2 arrays"):
        ep.fit(ep.BernoulliRBM.init(jax.random.key(0), 64, 8), (x, y), ep.training.pcd(1, 50),
               key=jax.random.key(0), epochs=1, batch_size=50)
    with pytest.raises(ValueError, match=r"the estimator CDEstimator trains on x alone, and validation holds 2"):
        ep.fit(ep.BernoulliRBM.init(jax.random.key(0), 64, 8), x, ep.training.cd(), key=jax.random.key(0),
               epochs=1, batch_size=50, validation=(x, y))
    seen = []
    ep.fit(ep.BernoulliRBM.init(jax.random.key(0), 64, 8), (x, y), ep.training.pcd(1, 50), key=jax.random.key(0),
           epochs=1, batch_size=50, metrics=lambda m, d, k, p: seen.append(len(d)) or {})
    assert seen == [2]
    with pytest.raises(ValueError, match=r"ClassRBMEstimator trains on 2 arrays, \(x, y\).*data holds 1"):
        ep.fit(ep.ClassRBM.init(jax.random.key(0), 64, 3, 10), x, ep.training.class_rbm(), key=jax.random.key(0),
               epochs=1, batch_size=50)


def test_a_resumed_run_keeps_its_recoveries_and_an_early_stop(x, tmp_path):
    """Recoveries were not kept in checkpoints (a resumed run reported 0), and a run that had
    stopped early trained on when resumed (one more epoch per resume, replacing its model)."""
    flaky = _flaky_pcd()
    straight = _run(x, estimator=flaky, max_retries=30)
    _run(x, tmp_path / "flaky", estimator=flaky, max_retries=30, epochs=3)
    _assert_same_run(straight, _run(x, tmp_path / "flaky", estimator=flaky, max_retries=30, resume=True))
    assert straight[1].recoveries >= 1

    early = dict(monitor="train_free_energy_gap", mode="max", patience=1)
    straight = _run(x, epochs=30, **early)
    assert straight[1].stopped == "early stopping" and len(straight[1].records) < 30
    _run(x, tmp_path / "early", epochs=30, **early)
    for _ in range(2):
        resumed = _run(x, tmp_path / "early", epochs=30, resume=True, **early)
        _assert_same_run(straight, resumed)
        assert resumed[1].stopped == "early stopping" and resumed[1].message == straight[1].message


@pytest.mark.parametrize("changed, message", [
    ({"freeze": ("b",)}, r"freeze=\[\] \(now \['b'\]\)"),
    ({"mode": "min"}, r"mode='max' \(now 'min'\)"),
    ({"patience": 3}, r"patience=None \(now 3\)"),
    ({"monitor": "train_free_energy_gap"}, "monitoring nothing"),
])
def test_resume_refuses_other_freeze_mode_patience_or_monitor(x, tmp_path, changed, message):
    """Each changes which run is continued: freeze (b trained for 2 epochs, frozen for the 3rd),
    mode (the best value chosen under max compared under min), patience, the monitored metric."""
    base = dict(monitor="train_free_energy_gap") if "monitor" not in changed else {}
    _run(x, tmp_path, epochs=2, **base)
    with pytest.raises(ValueError, match=message):
        _run(x, tmp_path, epochs=3, resume=True, **{**base, **changed})


def test_a_run_stopped_before_its_first_evaluation_resumes_with_its_monitor(x, tmp_path):
    """Its checkpoint has recorded no monitor yet (the first evaluation picks it): the monitor the
    run asked for is kept apart, so the same request resumes, and another is still refused."""
    calls = {"n": 0}

    def metrics(model, data, key, prefix):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # a crash after the epoch-0 checkpoint, before the first evaluation
        return {f"{prefix}mean_x": jnp.mean(data[0])}

    def run(monitor="train_mean_x", resume=False):
        return ep.fit(ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1), x, ep.training.pcd(k=1, num_chains=50),
                      key=jax.random.key(4), epochs=4, batch_size=50, optimizer=OPT, eval_every=2, checkpoint_every=1,
                      checkpoint_dir=tmp_path, metrics=metrics, monitor=monitor, resume=resume)

    with pytest.raises(KeyboardInterrupt):
        run()
    with pytest.raises(ValueError, match="monitoring 'train_mean_x'; resuming with monitor='train_other'"):
        run("train_other", resume=True)
    model, history = run(resume=True)
    assert history.monitor == "train_mean_x" and len(history.records) == 4


def test_an_optimizer_that_is_not_one_and_empty_data_are_named(x):
    model0 = ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1)
    with pytest.raises(TypeError, match="fit: optimizer must be an optax GradientTransformation .*got 'sgd'"):
        ep.fit(model0, x, ep.training.pcd(), key=jax.random.key(0), optimizer="sgd")
    with pytest.raises(ValueError, match="fit: data holds no examples"):
        ep.fit(model0, x[:0], ep.training.pcd(), key=jax.random.key(0))


def test_ctrl_c_keeps_the_epochs_trained_since_the_last_checkpoint(x, tmp_path):
    """With checkpoints only at the end, Ctrl-C in epoch 4 lost all four epochs before it; they are
    now checkpointed as it stops, and resuming gives the uninterrupted run bit for bit."""
    calls = {"n": 0, "stop_at": 4}

    def metrics(model, data, key, prefix):
        calls["n"] += 1
        if calls["n"] == calls["stop_at"]:
            raise KeyboardInterrupt  # Ctrl-C during the 4th epoch's evaluation
        return {f"{prefix}mean_w": jnp.mean(model.W)}

    def run(**kwargs):
        return ep.fit(ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.1), x, ep.training.pcd(k=1, num_chains=50),
                      key=jax.random.key(4), epochs=6, batch_size=50, optimizer=OPT, metrics=metrics, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        run(checkpoint_dir=tmp_path)
    assert ep.training.checkpoint.read_checkpoint_metadata(str(tmp_path / "checkpoint.ckpt"))["epoch"] == 2
    calls["stop_at"] = None
    resumed = run(checkpoint_dir=tmp_path, resume=True)
    straight = run()
    for name in ("W", "b", "c"):
        np.testing.assert_array_equal(getattr(resumed[0], name), getattr(straight[0], name))
    np.testing.assert_array_equal(resumed[1]["train_mean_w"], straight[1]["train_mean_w"])
