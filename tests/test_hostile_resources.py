"""Issue 15: requests that cannot fit in memory, resuming with another key, and the shared
argument checks of :mod:`ebm_ppl.checks`.

A request past the memory limit must be refused at once, naming the estimate and the limit,
before anything is compiled or allocated (each case below would otherwise need from tens of GiB to
petabytes); ``max_memory=`` and ``ebm_ppl.checks.MEMORY_LIMIT`` raise the limit.
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl import checks

KEY = jax.random.key(0)
RBM = ep.BernoulliRBM.init(KEY, 6, 3, scale=0.5)
GAUSS = ep.Gaussian(np.zeros(2, np.float32))
DATA = np.asarray(jax.random.bernoulli(KEY, 0.5, (20, 6)), np.float32)


@pytest.mark.parametrize("call, owner", [
    (lambda: ep.sample(KEY, GAUSS, "mala", num_chains=200_000_000), "sample"),
    (lambda: ep.sample(KEY, RBM, num_chains=4, num_samples=10**12), "sample"),
    (lambda: ep.ais(KEY, RBM, num_chains=4, num_temperatures=10**10), "ais"),
    (lambda: ep.ais(KEY, GAUSS, num_chains=10**11, num_temperatures=100), "ais"),
    (lambda: ep.reverse_ais(KEY, RBM, DATA, num_temperatures=10**10), "reverse_ais"),
    (lambda: ep.BernoulliRBM.init(KEY, 10**6, 10**6), "BernoulliRBM.init"),
    (lambda: ep.BoltzmannMachine.init(KEY, 10**6), "BoltzmannMachine.init"),
    (lambda: ep.JEM.init(KEY, 64, 10, width=10**6, depth=3), "JEM.init"),
    (lambda: ep.partition.exact_samples(KEY, RBM, 10**12), "exact_samples"),
    (lambda: RBM.exact_samples(KEY, 10**12), "BernoulliRBM.exact_samples"),
    (lambda: GAUSS.sample(KEY, (10**6, 10**6)), "Gaussian.sample"),
    (lambda: GAUSS.initial_positions(KEY, 10**12), "initial_positions"),
    (lambda: ep.training.langevin_samples(KEY, GAUSS, 10**12), "langevin_samples"),
    (lambda: ep.inference.sampling.draw(KEY, GAUSS, 10**12, kernel="mala"), "draw"),
    (lambda: ep.fit(RBM, DATA, ep.training.pcd(num_chains=10**11), key=KEY, batch_size=10), "fit"),
])
def test_requests_that_cannot_fit_are_refused_up_front(call, owner):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=rf"^{owner}: the request needs about .* more than the limit of 16 GiB"):
        call()
    assert time.perf_counter() - start < 5.0  # refused before any work, not after it


def test_a_call_can_lower_or_raise_the_limit(monkeypatch):
    run = dict(num_chains=2, num_warmup=2, num_samples=100)
    with pytest.raises(ValueError, match=r"100 draws \(a buffer of 112 on the device\) x 2 chains x \(2 values \+ 3 statistics\).*limit of 1000 bytes"):
        ep.sample(KEY, GAUSS, "mala", max_memory=1000, **run)
    monkeypatch.setattr(checks, "MEMORY_LIMIT", 1000)
    with pytest.raises(ValueError, match="limit of 1000 bytes"):
        ep.sample(KEY, GAUSS, "mala", **run)
    with pytest.raises(ValueError, match="limit of 1000 bytes"):
        ep.ais(KEY, RBM, num_chains=4, num_temperatures=16)
    data = ep.sample(KEY, GAUSS, "mala", max_memory=2**20, **run)  # the call's own limit wins
    assert data.posterior["x"].shape == (2, 100, 2)
    assert np.isfinite(ep.ais(KEY, RBM, num_chains=4, num_temperatures=16, max_memory=2**20).log_z)


@pytest.mark.parametrize("max_memory, fragment", [
    (-1, "max_memory must be a positive number"),
    ("8GB", "max_memory must be a real number"),
    (float("inf"), "max_memory must be finite"),
])
def test_a_bad_max_memory_is_refused(max_memory, fragment):
    with pytest.raises(ValueError, match=fragment):
        ep.sample(KEY, GAUSS, "mala", num_chains=2, max_memory=max_memory)


def test_format_bytes():
    assert [checks.format_bytes(n) for n in (12, 2048, 1.5 * 2**30, 51.2 * 2**40)] == [
        "12 bytes", "2 KiB", "1.5 GiB", "51.2 TiB"]


# -- resuming with another key is refused -----------------------------------------------------------------

def test_fit_counts_the_copy_of_its_data_padded_to_a_bucket(monkeypatch):
    """fit pads its data to a bucket of rows (a copy of up to 1.25x the data): 1025 rows x 256
    float32 values need a 1280-row copy (1.25 MiB), counted before anything is copied; 1024 rows
    fill their bucket and copy nothing."""
    rbm = ep.BernoulliRBM.init(KEY, 256, 2, scale=0.1)
    x = np.asarray(jax.random.bernoulli(KEY, 0.5, (1025, 256)), np.float32)
    monkeypatch.setattr(checks, "MEMORY_LIMIT", 2**20)
    with pytest.raises(ValueError, match=r"^fit: .*1\.25 MiB of data padded to a bucket of rows.*limit of 1 MiB"):
        ep.fit(rbm, x, ep.training.pcd(num_chains=2), key=KEY, epochs=1, batch_size=512, metrics=False)
    model, history = ep.fit(rbm, x[:1024], ep.training.pcd(num_chains=2), key=KEY, epochs=1, batch_size=512,
                            metrics=False)
    assert len(history.records) == 1
    # JEM's metrics pad a copy of the training and validation data per evaluation: counted too
    jem = ep.JEM.init(KEY, 256, 2, width=2, depth=1)
    labels = np.zeros(1024, np.int32)
    monkeypatch.setattr(checks, "MEMORY_LIMIT", 2 * 2**20)
    ep.fit(jem, (x[:1024], labels), ep.training.jem(langevin_steps=1), key=KEY, epochs=1, batch_size=512,
           metrics=False, validation=None)
    with pytest.raises(ValueError, match=r"^fit: .*of data padded to a bucket of rows"):
        ep.fit(jem, (x[:1000], labels[:1000]), ep.training.jem(langevin_steps=1), key=KEY, epochs=1,
               batch_size=500, validation=(x[:1000], labels[:1000]))


def test_fit_resume_refuses_a_checkpoint_of_another_key(tmp_path):
    """The checkpoint keeps a fingerprint of the key; another key would continue neither run (its
    minibatches and samplers would follow the new key from the old state)."""
    kwargs = dict(batch_size=10, metrics=False, checkpoint_dir=tmp_path)
    ep.fit(RBM, DATA, ep.training.pcd(num_chains=5), key=jax.random.key(1), epochs=1, **kwargs)
    with pytest.raises(ValueError, match="written by a run with another key"):
        ep.fit(RBM, DATA, ep.training.pcd(num_chains=5), key=jax.random.key(2), epochs=2, resume=True, **kwargs)
    _, history = ep.fit(RBM, DATA, ep.training.pcd(num_chains=5), key=jax.random.key(1), epochs=2, resume=True,
                        **kwargs)
    assert [r["epoch"] for r in history.records] == [0, 1]


def test_fit_resume_refuses_a_checkpoint_of_other_data(tmp_path):
    """The checkpoint keeps fingerprints of the training and validation data; a run resumed on
    data of another size (in the same bucket of rows or not) or other values, or on another
    validation set, would continue neither run. Before, it was accepted silently. The same data
    in another container (numpy, JAX) resume."""
    kwargs = dict(batch_size=10, metrics=False, checkpoint_dir=tmp_path, key=jax.random.key(1))
    data = np.asarray(DATA)
    ep.fit(RBM, data, ep.training.pcd(num_chains=5), epochs=1, **kwargs)
    flipped = data.copy()
    flipped[3, 0] = 1 - flipped[3, 0]
    for other in (data[:-1], flipped):
        with pytest.raises(ValueError, match="written by a run on other data"):
            ep.fit(RBM, other, ep.training.pcd(num_chains=5), epochs=2, resume=True, **kwargs)
    _, history = ep.fit(RBM, jnp.asarray(data), ep.training.pcd(num_chains=5), epochs=2, resume=True, **kwargs)
    assert [r["epoch"] for r in history.records] == [0, 1]
    # with a validation set: another one is refused, the same one resumes
    kwargs = {**kwargs, "checkpoint_dir": tmp_path / "val", "metrics": None}
    ep.fit(RBM, data, ep.training.pcd(num_chains=5), epochs=1, validation=data[:10], **kwargs)
    with pytest.raises(ValueError, match="written by a run on other validation"):
        ep.fit(RBM, data, ep.training.pcd(num_chains=5), epochs=2, resume=True, validation=data[10:], **kwargs)
    with pytest.raises(ValueError, match="written by a run with validation; resuming without it"):
        ep.fit(RBM, data, ep.training.pcd(num_chains=5), epochs=2, resume=True, **kwargs)
    _, history = ep.fit(RBM, data, ep.training.pcd(num_chains=5), epochs=2, resume=True,
                        validation=jnp.asarray(data[:10]), **kwargs)
    assert [r["epoch"] for r in history.records] == [0, 1]


def test_a_bfloat16_model_trains_and_checkpoints():
    """fit casts the data to a bfloat16 model's type, and the checkpoint's data fingerprint read
    them through a buffer format bfloat16 does not have."""
    import tempfile

    model = jax.tree.map(lambda a: a.astype(jnp.bfloat16) if eqx.is_inexact_array(a) else a, RBM)
    with tempfile.TemporaryDirectory() as folder:
        trained, history = ep.fit(model, DATA, ep.training.pcd(num_chains=5), key=jax.random.key(1), epochs=2,
                                  batch_size=10, metrics=False, checkpoint_dir=folder)
        _, resumed = ep.fit(model, DATA, ep.training.pcd(num_chains=5), key=jax.random.key(1), epochs=2,
                            batch_size=10, metrics=False, checkpoint_dir=folder, resume=True)
    assert trained.W.dtype == jnp.bfloat16 and len(history.records) == len(resumed.records) == 2


def test_fit_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    """The checkpoint keeps fingerprints of the estimator's settings, the optimizer (its functions
    and the values they close over) and batch_size, stable across processes; a resume with any
    of them different, or with fewer epochs than the checkpoint holds, was accepted silently.
    resume=True without a checkpoint_dir was ignored."""
    import optax

    kwargs = dict(metrics=False, checkpoint_dir=tmp_path, key=jax.random.key(1))
    ep.fit(RBM, DATA, ep.training.pcd(num_chains=5), epochs=2, batch_size=10, optimizer=optax.sgd(0.05), **kwargs)
    for change, what in ((dict(estimator=ep.training.pcd(k=2, num_chains=5)), "another estimator"),
                         (dict(optimizer=optax.sgd(0.07)), "another optimizer"),
                         (dict(batch_size=5), "batch_size=10")):
        args = {"estimator": ep.training.pcd(num_chains=5), "optimizer": optax.sgd(0.05), "batch_size": 10, **change}
        with pytest.raises(ValueError, match=f"written by a run with {what}[ ;]"):
            ep.fit(RBM, DATA, args.pop("estimator"), epochs=3, resume=True, **args, **kwargs)
    with pytest.raises(ValueError, match="written by a run without validation; resuming with it"):
        ep.fit(RBM, DATA, ep.training.pcd(num_chains=5), epochs=3, batch_size=10, optimizer=optax.sgd(0.05),
               resume=True, validation=DATA[:10], **{**kwargs, "metrics": None})
    with pytest.raises(ValueError, match=r"written by a run with another optimizer \(or by a version"):
        ep.fit(RBM, DATA, ep.training.pcd(num_chains=5), epochs=3, batch_size=10, optimizer=optax.adam(0.05),
               resume=True, **kwargs)  # other state arrays too: named by the fingerprint, not by their count
    with pytest.raises(ValueError, match="already holds 2 epochs, more than epochs=1"):
        ep.fit(RBM, DATA, ep.training.pcd(num_chains=5), epochs=1, batch_size=10, optimizer=optax.sgd(0.05),
               resume=True, **kwargs)
    _, history = ep.fit(RBM, DATA, ep.training.pcd(num_chains=5), epochs=3, batch_size=10, optimizer=optax.sgd(0.05),
                        resume=True, **kwargs)
    assert [r["epoch"] for r in history.records] == [0, 1, 2]
    with pytest.raises(ValueError, match="resume=True needs the checkpoint_dir"):
        ep.fit(RBM, DATA, ep.training.pcd(num_chains=5), key=jax.random.key(1), epochs=1, batch_size=10, resume=True)


# -- the shared checks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("check, value, expected", [
    (checks.positive_int, 3, 3),
    (checks.positive_int, np.int64(3), 3),
    (checks.positive_int, jnp.asarray(3), 3),
    (checks.positive_int, np.asarray(3, np.uint8), 3),
    (checks.non_negative_int, 0, 0),
    (checks.number, np.float32(0.5), 0.5),
    (checks.number, jnp.asarray(2), 2.0),
    (checks.positive_float, jnp.asarray(0.25), 0.25),
    (checks.non_negative_float, 0, 0.0),
    (checks.probability, np.float16(0.5), 0.5),
    (checks.flag, np.bool_(False), False),
    (checks.flag, jnp.asarray(True), True),
])
def test_checks_accept_python_numpy_and_jax_scalars(check, value, expected):
    result = check(value, "x")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("check, value, fragment", [
    (checks.positive_int, True, "x must be a positive integer, got True"),
    (checks.positive_int, 2.0, "x must be a positive integer, got 2.0"),
    (checks.positive_int, "3", "x must be a positive integer"),
    (checks.positive_int, 0, "x must be a positive integer, got 0"),
    (checks.positive_int, np.ones(2, int), "got an array of shape (2,)"),
    (checks.non_negative_int, -1, "x must be a non-negative integer"),
    (checks.number, 1 + 2j, "x must be a real number, got a complex number"),
    (checks.number, np.complex64(1), "x must be a real number, got a complex number"),
    (checks.number, np.bool_(True), "x must be a real number"),
    (checks.number, jnp.asarray(1.0 + 1j), "dtype complex64"),
    (checks.number, float("nan"), "x must be finite"),
    (checks.positive_float, 0.0, "x must be a positive number"),
    (checks.probability, 1.0, "strictly between 0 and 1"),
    (checks.flag, "no", "x must be True or False, got 'no'"),
    (checks.flag, 1, "x must be True or False, got 1"),
])
def test_checks_refuse_what_is_not_that_kind_of_number(check, value, fragment):
    with pytest.raises(ValueError) as info:
        check(value, "x")
    assert fragment in str(info.value), str(info.value)


def test_a_traced_setting_is_refused_with_a_message_saying_so():
    with pytest.raises(ValueError, match="must be a concrete integer .* got a traced value"):
        jax.jit(lambda n: checks.positive_int(n, "num_chains"))(3)


def test_sample_counts_the_keys_of_warm_up_and_thinning():
    """The keys the programs split at once: warm-up's bucket (512 for 500 steps) and thinning's
    (at most 25% over 10^12)."""
    from ebm_ppl.inference.sampling import thin_bucket, warmup_bucket

    keys = warmup_bucket("mala", 500) + thin_bucket(10**12)
    assert keys == 512 + 8 * 2**37
    with pytest.raises(ValueError, match=rf"sample: .*4 chains x {keys} keys for warm-up and thinning"):
        ep.sample(KEY, GAUSS, "mala", num_chains=4, num_samples=4, thin=10**12)
