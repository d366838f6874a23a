"""ep.sample: every kernel against exact answers, the DataTree layout, sharding and bad input."""


import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep

from forced_devices import assert_script_ok

MEAN = np.array([1.0, -1.0, 0.5])
COV = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, -0.3], [0.0, -0.3, 0.5]])


def _moment_errors(x):
    """(|estimate - exact| / MCSE) for every mean and second central moment; x: (chain, draw, 3)."""
    z = []
    for i in range(3):
        z.append((x[..., i].mean() - MEAN[i]) / az.mcse(x[..., i]))
        for j in range(i, 3):
            prod = (x[..., i] - MEAN[i]) * (x[..., j] - MEAN[j])
            z.append((prod.mean() - COV[i, j]) / az.mcse(prod))
    return np.abs(np.array(z))


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["nuts", "hmc", "mala"])
def test_exact_kernels_recover_gaussian_moments_within_5_mcse(kernel):
    """Exact answer: the Gaussian's mean and covariance. Tolerance: 5 Monte Carlo standard errors
    (ArviZ's MCSE, which accounts for autocorrelation) for each of the 9 moments."""
    g = ep.Gaussian(MEAN, COV)
    n = 8000 if kernel == "mala" else 2000  # MALA mixes slowly here (ESS ~ 3% of draws)
    dt = ep.sample(jax.random.key(0), g, kernel, num_chains=4, num_warmup=500, num_samples=n)
    x = dt.posterior["x"].values
    assert x.shape == (4, n, 3)
    assert np.all(_moment_errors(x) < 5), _moment_errors(x)
    stats = dt.sample_stats
    assert stats["lp"].shape == (4, n)
    np.testing.assert_allclose(stats["lp"].values, -g.energy(x), rtol=1e-4, atol=1e-4)  # log density
    assert sorted(stats.data_vars) == sorted(ep.kernels.KERNELS[kernel].stats)
    if kernel != "mala":  # the Hamiltonian: -log p(x) plus a kinetic energy >= 0
        assert np.all(stats["energy"].values + stats["lp"].values >= -1e-5)
    else:
        assert "energy" not in stats  # no momentum, no Hamiltonian
    assert 0.3 < float(stats["acceptance_rate"].mean()) <= 1.0
    if kernel != "mala":
        assert int(stats["diverging"].sum()) == 0 and "n_steps" in stats
    if kernel == "nuts":
        assert "tree_depth" in stats
    # MCSE-based tolerances need a few hundred effective draws to be trustworthy
    assert min(float(az.ess(x[..., i])) for i in range(3)) > 400
    if kernel == "nuts":  # R-hat < 1.01 is a fair demand only where ESS is large
        assert max(float(az.rhat(x[..., i])) for i in range(3)) < 1.01


@pytest.mark.slow
def test_mala_step_size_is_tuned_towards_0574():
    g = ep.Gaussian(MEAN, COV)
    dt = ep.sample(jax.random.key(1), g, "mala", num_chains=4, num_warmup=1000, num_samples=1000, step_size=1e-4)
    assert abs(float(dt.sample_stats["acceptance_rate"].mean()) - 0.574) < 0.08
    assert float(dt.sample_stats["step_size"].min()) > 1e-3  # moved far from the bad start


@pytest.mark.filterwarnings("ignore:Found chain dimension to be longer")  # 2000 chains x 1 draw, on purpose
def test_proper_langevin_shows_its_known_bias():
    """ULA on N(0, diag(1/p)) has stationary variance 1 / (p (1 - h p / 2)) (see the kernel tests);
    here through ep.sample with many chains, against that exact biased value (5 s.e.)."""
    g = ep.Gaussian(np.zeros(2), scale_diag=np.array([1.0, 0.5]))
    h = 0.1
    dt = ep.sample(jax.random.key(2), g, "langevin", num_chains=2000, num_warmup=200, num_samples=1,
                   step_size=h)
    var = dt.posterior["x"].values[:, -1].var(0)
    p = 1 / np.array([1.0, 0.25])
    biased = 1 / (p * (1 - h * p / 2))
    assert np.all(np.abs(var - biased) < 5 * np.sqrt(2 / 2000) * biased)
    assert np.all(biased > 1 / p)


def test_binary_default_kernels_and_datatree_layout():
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 6, 4, scale=1.0)
    dt = ep.sample(jax.random.key(0), rbm, num_chains=3, num_warmup=10, num_samples=20, thin=2)
    assert dt.posterior.attrs["kernel"] == "block_gibbs"
    assert dt.posterior["x"].dims == ("chain", "draw", "x_dim_0")
    assert set(np.unique(dt.posterior["x"].values)) <= {0.0, 1.0}
    assert "hidden_mean" in dt.sample_stats
    bm = ep.BoltzmannMachine.init(jax.random.key(0), 5, scale=1.0)
    dt = ep.sample(jax.random.key(0), bm, num_chains=2, num_warmup=5, num_samples=10)
    assert dt.posterior.attrs["kernel"] == "site_gibbs" and "flip_rate" in dt.sample_stats
    assert ep.inference.default_kernel(ep.Gaussian.standard(2)) == "nuts"


def test_same_key_same_draws_and_thinning_keeps_every_kth():
    g = ep.Gaussian.standard(2)
    a = ep.sample(jax.random.key(3), g, "mala", num_chains=2, num_warmup=20, num_samples=30)
    b = ep.sample(jax.random.key(3), g, "mala", num_chains=2, num_warmup=20, num_samples=30)
    np.testing.assert_array_equal(a.posterior["x"].values, b.posterior["x"].values)
    c = ep.sample(jax.random.key(4), g, "mala", num_chains=2, num_warmup=20, num_samples=30)
    assert not np.array_equal(a.posterior["x"].values, c.posterior["x"].values)


def test_gibbs_lp_stat_and_philox_keys():
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 12, 5, scale=1.0)
    dt = ep.sample(jax.random.key(3), rbm, num_chains=3, num_warmup=5, num_samples=300, thin=2,
                   prng_impl="philox2x32_64")
    x = dt.posterior["x"].values
    # lp computed after the run, batched, is each draw's -F(x) (free energy); no Hamiltonian
    np.testing.assert_allclose(dt.sample_stats["lp"].values, -rbm.energy(x), rtol=1e-5, atol=1e-5)
    assert sorted(dt.sample_stats.data_vars) == ["hidden_mean", "lp"]
    again = ep.sample(jax.random.key(3), rbm, num_chains=3, num_warmup=5, num_samples=300, thin=2,
                      prng_impl="philox2x32_64")
    np.testing.assert_array_equal(again.posterior["x"].values, x)
    default = ep.sample(jax.random.key(3), rbm, num_chains=3, num_warmup=5, num_samples=300, thin=2)
    np.testing.assert_array_equal(default.posterior["x"].values, x)  # ebm_ppl's Philox is the default
    threefry = ep.sample(jax.random.key(3), rbm, num_chains=3, num_warmup=5, num_samples=300, thin=2,
                         prng_impl="threefry2x32")
    assert not np.array_equal(threefry.posterior["x"].values, x)  # another generator, other draws
    kept = ep.sample(jax.random.key(3), rbm, num_chains=3, num_warmup=5, num_samples=300, thin=2, prng_impl=None)
    np.testing.assert_array_equal(kept.posterior["x"].values, threefry.posterior["x"].values)  # the key's own
    bm = ep.BoltzmannMachine.init(jax.random.key(1), 6, scale=0.5)
    dt = ep.sample(jax.random.key(4), bm, num_chains=2, num_warmup=0, num_samples=20)
    np.testing.assert_allclose(dt.sample_stats["lp"].values, -bm.energy(dt.posterior["x"].values),
                               rtol=1e-5, atol=1e-5)
    assert sorted(dt.sample_stats.data_vars) == ["flip_rate", "lp"]


@pytest.mark.parametrize("thin", [1, 3])
def test_block_gibbs_energies_come_from_the_next_sweep_and_match_each_draw(thin):
    """Block Gibbs on the RBMs takes a draw's energy from the hidden logits of the next sweep (the
    last draw's is computed after the loop) and stores lp = -E: each must be that very draw's. A
    subclass that changes only _energy does not qualify for the shortcut and gets its own."""
    from ebm_ppl.potentials.capabilities import has_logit_energy

    for model in (ep.GaussianBernoulliRBM.init(jax.random.key(0), 7, 4, scale=0.5),
                  ep.SubspaceRBM.init(jax.random.key(0), 7, 3, 2, scale=0.8)):
        assert has_logit_energy(model)
        dt = ep.sample(jax.random.key(5), model, num_chains=3, num_warmup=2, num_samples=40, thin=thin)
        np.testing.assert_allclose(dt.sample_stats["lp"].values, -model.energy(dt.posterior["x"].values),
                                   rtol=1e-5, atol=1e-5)

    class Tilted(ep.BernoulliRBM):  # one more term in the energy; conditionals unchanged (wrongly,
        name = "tilted_rbm_test"    # but this only checks that energies are the class's own)

        def unbatched_energy(self, x):
            return super().unbatched_energy(x) + 0.5 * jnp.sum(x)

    base = ep.BernoulliRBM.init(jax.random.key(1), 6, 3, scale=1.0)
    tilted = Tilted(base.W, base.b, base.c)
    assert has_logit_energy(base) and not has_logit_energy(tilted)
    dt = ep.sample(jax.random.key(6), tilted, num_chains=2, num_warmup=0, num_samples=25, thin=thin)
    np.testing.assert_allclose(dt.sample_stats["lp"].values, -tilted.energy(dt.posterior["x"].values),
                               rtol=1e-5, atol=1e-5)


def test_image_shaped_events_run_under_nuts():
    net = ep.JEM.init(jax.random.key(0), in_features=4, num_classes=2, width=8, depth=1).net

    class Flat(ep.Potential):
        name = "flat_test"
        support = ep.Support.REAL
        inner: object

        @property
        def event_shape(self):
            return (2, 2)

        def unbatched_energy(self, x):
            return 0.5 * jnp.sum(x**2) - jax.nn.logsumexp(self.inner(x.reshape(-1)))

    dt = ep.sample(jax.random.key(0), Flat(net), "nuts", num_chains=2, num_warmup=50, num_samples=20)
    assert dt.posterior["x"].shape == (2, 20, 2, 2)


def test_bad_input_gives_clear_errors():
    g = ep.Gaussian.standard(3)
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 4, 2)
    with pytest.raises(ValueError, match="unknown kernel 'gibs'"):
        ep.sample(jax.random.key(0), g, "gibs")
    with pytest.raises(ValueError, match=r"init has shape \(2, 3\); expected \(4, 3\)"):
        ep.sample(jax.random.key(0), g, init=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        ep.sample(jax.random.key(0), g, init=np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        ep.sample(jax.random.key(0), g, init=np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="needs gradients"):
        ep.sample(jax.random.key(0), rbm, "nuts")
    with pytest.raises(ValueError, match="binary"):
        ep.sample(jax.random.key(0), rbm, init=np.full(4, 0.5))
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        ep.sample(jax.random.key(0), g, num_samples=0)
    with pytest.raises(ValueError, match="does not take option"):
        ep.sample(jax.random.key(0), g, "nuts", noise_scale=0.1)
    with pytest.raises(ValueError, match="step_size must be a positive"):
        ep.sample(jax.random.key(0), g, "mala", step_size=-1.0)
    with pytest.raises(TypeError, match="Potential"):
        ep.sample(jax.random.key(0), lambda x: x)


SHARDED = """
import os, sys
import jax, numpy as np
import ebm_ppl as ep
from ebm_ppl.inference import sampling as sample_module
assert jax.device_count() == 4, jax.devices()
g = ep.Gaussian(np.zeros(3), scale_diag=np.ones(3))
rbm = ep.BernoulliRBM.init(jax.random.key(0), 6, 4, scale=1.0)
def single_device(*args, **kwargs):
    original = sample_module.axis_sharding
    sample_module.axis_sharding = lambda n: None
    try:
        return ep.sample(*args, **kwargs)
    finally:
        sample_module.axis_sharding = original


for model, kernel, impl in ((g, "mala", None), (rbm, "block_gibbs", None), (rbm, "parallel_tempering", None),
                            (rbm, "block_gibbs", "philox2x32_64")):
    options = dict(num_chains=8, num_warmup=30, num_samples=40, prng_impl=impl)
    sharded = ep.sample(jax.random.key(7), model, kernel, **options)
    single = single_device(jax.random.key(7), model, kernel, **options)
    # same keys per chain: Gibbs draws are identical (ebm_ppl's Philox: its sharded twin draws the
    # same numbers); MALA's agree to float32 rounding, which 70 steps of the dynamics amplify to ~1e-4
    tol = 1e-3 if kernel == "mala" else 0.0  # parallel tempering: block Gibbs on every rung, exact swaps
    np.testing.assert_allclose(sharded.posterior["x"].values, single.posterior["x"].values, rtol=tol, atol=tol)
    assert len(sharded.posterior["x"].values) == 8
# JAX cannot compile its own Philox in a sharded program: a clear error instead of an MHLO traceback
try:
    ep.sample(jax.random.key(7), rbm, num_chains=8, num_warmup=2, num_samples=2, prng_impl="philox4x32")
except ValueError as e:
    assert "sharded" in str(e) and "philox2x32_64" in str(e), e
else:
    raise AssertionError("a philox4x32 key with sharded chains was accepted")
# ... and runs unsharded when the chains do not divide over the devices
x = ep.sample(jax.random.key(7), rbm, num_chains=3, num_warmup=2, num_samples=2, prng_impl="philox4x32")
assert x.posterior["x"].shape == (3, 2, 6)
print("ok")
"""


@pytest.mark.slow
def test_sharded_and_single_device_runs_agree():
    assert_script_ok(SHARDED)


@pytest.mark.parametrize("kernel, options, message", [
    ("hmc", {"num_integration_steps": 0}, "num_integration_steps must be an integer >= 1"),
    ("hmc", {"num_integration_steps": 2.5}, "num_integration_steps must be an integer >= 1"),
    ("nuts", {"target_acceptance_rate": 1.5}, "strictly between 0 and 1"),
    ("nuts", {"target_acceptance_rate": 0.0}, "strictly between 0 and 1"),
    ("mala", {"adapt": "no"}, "adapt must be True or False"),
    ("mala", {"step_size": -0.1}, "step_size must be a positive number"),
    ("langevin", {"noise_scale": -1.0}, "noise_scale must be >= 0"),
    ("nuts", {"step_size": float("nan")}, "step_size must be finite"),
])
def test_kernel_option_values_are_checked_before_any_work(kernel, options, message):
    """Issue 15: num_integration_steps <= 0 froze every chain; a target acceptance outside (0, 1)
    tuned the step to 1e-19 or 1e21; adapt='no' was taken as true."""
    with pytest.raises(ValueError, match=message):
        ep.sample(jax.random.key(0), ep.Gaussian.standard(2), kernel, num_chains=1, num_warmup=2, num_samples=4,
                  **options)


def test_numpy_and_jax_scalars_are_accepted_as_kernel_options():
    idata = ep.sample(jax.random.key(0), ep.Gaussian.standard(2), "hmc", num_chains=1, num_warmup=5, num_samples=4,
                      step_size=np.float32(0.1), num_integration_steps=np.int64(3), adapt=np.bool_(False),
                      target_acceptance_rate=jnp.asarray(0.7))
    assert float(idata.sample_stats["step_size"][0, 0]) == pytest.approx(0.1)


def test_more_chains_than_draws_is_not_a_warning():
    """ArviZ warns when a chain dimension is longer than the draw dimension (a guess that they
    were swapped); ep.sample names its dimensions, so 16 chains of 2 draws stay quiet."""
    import warnings

    rbm = ep.BernoulliRBM.init(jax.random.key(0), 6, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        idata = ep.sample(jax.random.key(1), rbm, num_chains=16, num_warmup=2, num_samples=2)
    assert idata.posterior["x"].shape == (16, 2, 6)


def test_ladder_adaptation_rounds_are_doubling_and_cover_about_half_the_warmup():
    """The traced round ends of parallel tempering's warm-up: rounds of doubling length, the
    shortest at least 10 steps, as many as fit (at most 6) in half the warm-up; none below 20."""
    from ebm_ppl.inference.plans import adaptation_round_ends

    for n in [0, 19, 20, 21, 59, 60, 100, 110, 500, 1000, 1259, 1260, 5000]:
        ends = [int(e) for e in adaptation_round_ends(jnp.asarray(n, jnp.int32)) if e >= 0]
        lengths = np.diff([-1, *ends])
        count = next((c for c in range(6, 0, -1) if (n // 2) // (2**c - 1) >= 10), 0)
        assert len(ends) == count, n
        if count:
            assert lengths[0] >= 10 and all(lengths[1:] == 2 * lengths[:-1]), (n, lengths)
            assert 0 <= n // 2 - sum(lengths) < 2**count - 1, (n, lengths)  # half, but its remainder


def test_another_warmup_length_compiles_nothing_and_keeps_the_keys(caplog, monkeypatch):
    """Warm-up is compiled for a bucket of lengths too (at most 25% more steps' keys; the loop
    runs num_warmup): 100 and 110 warm-up steps (bucket 112) share both programs for Gibbs, MALA and parallel
    tempering (whose adaptation rounds are data); a warm-up compiled for exactly its length
    (the bucket switched off) gives the same draws, bit for bit. NUTS's window adaptation is
    scheduled in Python: a new length compiles its warm-up, and only that."""
    import logging

    from ebm_ppl.inference import sampling

    rbm = ep.BernoulliRBM.init(jax.random.key(0), 12, 5, scale=1.0)
    g = ep.Gaussian(MEAN, COV)
    runs = ((rbm, "block_gibbs", {}), (g, "mala", {}), (rbm, "parallel_tempering", {"num_replicas": 3}),
            (g, "nuts", {}))
    for model, kernel, options in runs:
        ep.sample(jax.random.key(1), model, kernel, num_chains=3, num_warmup=100, num_samples=20, **options)
        caplog.set_level(logging.WARNING)
        caplog.clear()
        with jax.log_compiles():
            bucketed = ep.sample(jax.random.key(1), model, kernel, num_chains=3, num_warmup=110, num_samples=20,
                                 **options)
        compiled = [r.getMessage().split(" ")[1] for r in caplog.records
                    if r.getMessage().startswith(("Compiling jit(_run", "Compiling jit(_warmup"))]
        assert compiled == (["jit(_warmup)"] if kernel == "nuts" else []), (kernel, compiled)
        with monkeypatch.context() as patch:
            patch.setattr(sampling, "draw_bucket", lambda n: n)
            exact = ep.sample(jax.random.key(1), model, kernel, num_chains=3, num_warmup=110, num_samples=20,
                              **options)
        np.testing.assert_array_equal(bucketed.posterior["x"].values, exact.posterior["x"].values)


def test_a_run_of_another_length_in_the_same_bucket_compiles_nothing_and_extends_the_draws(caplog):
    """ep.sample compiles its run for a bucket of draws (ep.inference.sampling.draw_bucket: at most
    25% more): 100 and 110 draws share one program, and the first 100 of the longer run are the
    shorter run's draws with their statistics."""
    import logging

    from ebm_ppl.inference.sampling import draw_bucket

    assert [draw_bucket(n) for n in (1, 9, 100, 110, 112, 113, 1000, 1025)] == [8, 10, 112, 112, 112, 128, 1024, 1280]
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 12, 5, scale=1.0)
    g = ep.Gaussian(MEAN, COV)
    for model, kernel in ((rbm, "block_gibbs"), (g, "mala")):
        short = ep.sample(jax.random.key(1), model, kernel, num_chains=3, num_warmup=20, num_samples=100)
        caplog.set_level(logging.WARNING)
        caplog.clear()
        with jax.log_compiles():
            longer = ep.sample(jax.random.key(1), model, kernel, num_chains=3, num_warmup=20, num_samples=110)
        compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling jit(_run")]
        assert compiled == [], compiled
        assert longer.posterior["x"].shape[:2] == (3, 110)
        np.testing.assert_array_equal(longer.posterior["x"].values[:, :100], short.posterior["x"].values)
        for name in short.sample_stats.data_vars:
            np.testing.assert_array_equal(longer.sample_stats[name].values[:, :100], short.sample_stats[name].values)
    np.testing.assert_allclose(longer.sample_stats["lp"].values, -g.energy(longer.posterior["x"].values), rtol=1e-5)


def test_keys_whose_splits_are_not_prefix_stable_compile_for_the_exact_lengths(monkeypatch):
    """JAX's legacy threefry (jax_threefry_partitionable off) splits a key into other keys for
    another count, so a bucketed warm-up or thin would draw differently: ep.sample then compiles
    for exactly num_warmup and thin, and equals a run forced to do so."""
    from ebm_ppl.inference import sampling

    rbm = ep.BernoulliRBM.init(jax.random.key(0), 12, 5, scale=1.0)
    with jax.threefry_partitionable(False):
        key = jax.random.key(1)
        assert not ep.random.prefix_stable(key)
        run = dict(num_chains=3, num_warmup=11, num_samples=15, thin=11, prng_impl=None)  # buckets of 12
        legacy = ep.sample(key, rbm, "block_gibbs", **run)
        with monkeypatch.context() as patch:
            patch.setattr(sampling, "STATIC_THIN", 64)  # thin 11: a scan of exactly 11 steps
            patch.setattr(sampling, "warmup_bucket", lambda kernel, n: n)
            exact = ep.sample(key, rbm, "block_gibbs", **run)
    np.testing.assert_array_equal(legacy.posterior["x"].values, exact.posterior["x"].values)


def test_another_thinning_in_the_same_bucket_compiles_nothing_and_keeps_the_draws(caplog, monkeypatch):
    """Above 8, thin is traced in a program compiled for a bucket (ep.inference.sampling.thin_bucket:
    at most 25% more keys per draw): thin 10 after thin 9 compiles nothing, and both equal a run
    compiled for exactly their thin (a scan of that many steps), bit for bit, with the statistics
    (block Gibbs' energies come from the first step of the next draw)."""
    import logging

    from ebm_ppl.inference import sampling

    assert [sampling.thin_bucket(t) for t in (1, 2, 8, 9, 10, 12, 13, 100)] == [1, 2, 8, 10, 10, 12, 14, 112]
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 12, 5, scale=1.0)
    g = ep.Gaussian(MEAN, COV)
    for model, kernel, options in ((rbm, "block_gibbs", {}), (g, "mala", {}),
                                   (rbm, "parallel_tempering", {"num_replicas": 3})):
        ep.sample(jax.random.key(1), model, kernel, num_chains=3, num_warmup=10, num_samples=15, thin=9, **options)
        caplog.set_level(logging.WARNING)
        caplog.clear()
        with jax.log_compiles():
            bucketed = ep.sample(jax.random.key(1), model, kernel, num_chains=3, num_warmup=10, num_samples=15,
                                 thin=10, **options)
        compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling jit(_run")]
        assert compiled == [], (kernel, compiled)
        with monkeypatch.context() as patch:
            patch.setattr(sampling, "STATIC_THIN", 64)  # thin 10: a scan of exactly 10 steps
            exact = ep.sample(jax.random.key(1), model, kernel, num_chains=3, num_warmup=10, num_samples=15,
                              thin=10, **options)
        np.testing.assert_array_equal(bucketed.posterior["x"].values, exact.posterior["x"].values)
        for name in exact.sample_stats.data_vars:
            np.testing.assert_array_equal(bucketed.sample_stats[name].values, exact.sample_stats[name].values)
