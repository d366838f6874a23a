"""ebm_ppl.compiler: per-program XLA options that change speed, never results."""

import importlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep

compiler = importlib.import_module("ebm_ppl.compiler")


def _gibbs_sweeps(rbm, key, x):
    """Twenty block-Gibbs sweeps of a batch: random numbers, sigmoids, matmuls and reductions."""

    def sweep(x, k):
        k_h, k_x = jax.random.split(k)
        h = rbm.sample_hidden(k_h, x)
        return rbm.sample_visible(k_x, h), jnp.mean(h)

    return jax.lax.scan(sweep, x, jax.random.split(key, 20))


_gibbs_run = ep.compiler.filter_jit(_gibbs_sweeps)


def test_the_options_leave_results_bitwise_unchanged():
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 37, 11, scale=1.0)
    key = jax.random.key(1, impl=ep.random.philox2x32_64)
    x = (jax.random.uniform(jax.random.key(2), (53, 37)) < 0.5).astype(jnp.float32)
    # the wide-vector option given explicitly, so the comparison is made on any host
    tuned = eqx.filter_jit(_gibbs_sweeps, compiler_options={"xla_cpu_prefer_vector_width": 512})(rbm, key, x)
    plain = eqx.filter_jit(_gibbs_sweeps)(rbm, key, x)
    for a, b in zip(jax.tree.leaves(tuned), jax.tree.leaves(plain)):
        np.testing.assert_array_equal(a, b)


def test_a_wrapped_function_works_under_a_users_transformations():
    """JAX refuses compiler options on a nested jit: under a trace the plain program is used."""
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 8, 3, scale=1.0)
    x = jnp.zeros((4, 8))
    direct = _gibbs_run(rbm, jax.random.key(5), x)
    inside = jax.jit(_gibbs_run)(rbm, jax.random.key(5), x)
    for a, b in zip(jax.tree.leaves(direct), jax.tree.leaves(inside)):
        np.testing.assert_array_equal(a, b)
    batched = jax.vmap(lambda k: _gibbs_run(rbm, k, x)[0])(jax.random.split(jax.random.key(5), 3))
    assert batched.shape == (3, 4, 8)
    grad = jax.grad(lambda s: jnp.sum(_gibbs_run(rbm, jax.random.key(5), x * s)[1]))(1.0)
    assert np.isfinite(grad)


def test_the_environment_variable_chooses_the_vector_width(monkeypatch):
    monkeypatch.setenv("EBM_PPL_CPU_VECTOR_WIDTH", "256")
    assert compiler._options() == {}
    monkeypatch.setenv("EBM_PPL_CPU_VECTOR_WIDTH", "512")
    assert compiler._options() == {"xla_cpu_prefer_vector_width": 512}
    monkeypatch.setenv("EBM_PPL_CPU_VECTOR_WIDTH", "1024")
    with pytest.raises(ValueError, match="EBM_PPL_CPU_VECTOR_WIDTH must be 256 or 512"):
        compiler._options()
    monkeypatch.delenv("EBM_PPL_CPU_VECTOR_WIDTH")
    assert compiler._options() == ({"xla_cpu_prefer_vector_width": 512} if compiler._host_has_avx512() else {})


# -- the dot library for large models ---------------------------------------------------------------

_ONEDNN = {**compiler.COMPILER_OPTIONS, **compiler._ONEDNN_DOTS}


@pytest.fixture
def onednn(monkeypatch):
    """oneDNN's products for large models, on any host and despite the suite's persistent cache
    (which cannot store them: JAX warns)."""
    monkeypatch.setattr(compiler, "LARGE_MODEL_OPTIONS", _ONEDNN)
    monkeypatch.setattr(compiler, "_DOTS_FORCED", True)


@pytest.mark.filterwarnings("ignore:Error writing persistent compilation cache entry")
@pytest.mark.parametrize("family", ["bernoulli", "gaussian_bernoulli"])
def test_onednn_dots_change_results_only_by_rounding(monkeypatch, onednn, family):
    """oneDNN's products round differently from YNNPACK's in some shapes: draws, their energies
    and AIS weights agree to float rounding (Bernoulli draws, thresholds of probabilities, almost
    always bit for bit). Given explicitly, so the comparison is made on any host."""
    key = jax.random.key(0)
    if family == "bernoulli":
        model = ep.BernoulliRBM.init(key, 256, 256, scale=0.02)
    else:
        model = ep.GaussianBernoulliRBM.init(key, 96, 128, scale=0.05)
    assert ep.compiler.num_parameters(model) >= compiler.LARGE_MODEL_PARAMETERS

    def run():
        dt = ep.sample(jax.random.key(1), model, num_chains=8, num_warmup=5, num_samples=20)
        est = ep.ais(jax.random.key(2), model, num_chains=16, num_temperatures=50)
        return dt.posterior["x"].values, dt.sample_stats["lp"].values, np.asarray(est.log_weights)

    monkeypatch.setattr(compiler, "LARGE_MODEL_OPTIONS", dict(compiler.COMPILER_OPTIONS))
    x0, lp0, w0 = run()
    monkeypatch.setattr(compiler, "LARGE_MODEL_OPTIONS", _ONEDNN)
    with compiler.for_model(model):
        assert compiler.options_in_effect() == _ONEDNN
    x1, lp1, w1 = run()
    if family == "bernoulli":
        assert np.mean(x0 != x1) < 1e-3
    else:
        np.testing.assert_allclose(x1, x0, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lp1, lp0, rtol=1e-5)
    np.testing.assert_allclose(w1, w0, rtol=1e-5, atol=1e-3)


@pytest.mark.filterwarnings("ignore:Error writing persistent compilation cache entry")
def test_a_large_model_compiles_its_own_program(onednn):
    small = ep.BernoulliRBM.init(jax.random.key(0), 8, 3, scale=1.0)
    large = ep.BernoulliRBM.init(jax.random.key(0), 8, compiler.LARGE_MODEL_PARAMETERS // 8, scale=0.1)
    run = ep.compiler.filter_jit(lambda *a: _gibbs_sweeps(*a))  # its own function: its own caches
    x = jnp.zeros((4, 8))
    with compiler.for_model(small):
        run(large, jax.random.key(5), x)  # the small model's options, whatever the argument
    assert run.compiled_with(_ONEDNN)._cached._cache_size() == 0
    with compiler.for_model(large):
        inside = run(large, jax.random.key(5), x)
    assert run.compiled_with(_ONEDNN)._cached._cache_size() == 1
    outside = run(large, jax.random.key(5), x)
    for a, b in zip(jax.tree.leaves(inside), jax.tree.leaves(outside)):
        np.testing.assert_array_equal(a, b)


def test_sized_by_chooses_by_the_named_argument(onednn):

    @compiler.sized_by("model")
    def options(key, model, *, flag=False):
        return compiler.options_in_effect()

    large = {"W": np.zeros((compiler.LARGE_MODEL_PARAMETERS,), np.float32), "n": np.zeros(10**6, np.int32)}
    assert options(0, large) == _ONEDNN
    assert options(0, model=large, flag=True) == _ONEDNN
    assert options(0, {"W": np.zeros(compiler.LARGE_MODEL_PARAMETERS - 1, np.float32)}) == compiler.COMPILER_OPTIONS
    assert options(0, "not a model") == compiler.COMPILER_OPTIONS  # the function judges its input
    assert compiler.options_in_effect() == compiler.COMPILER_OPTIONS  # nothing leaks out
    with pytest.raises(TypeError):
        options(0, large, 1, 2)


def test_no_option_reaches_another_backend_or_a_trace(monkeypatch, onednn):
    """The options are XLA:CPU's: under a trace JAX refuses them, and on a GPU/TPU default backend
    ebm_ppl's programs compile with that backend's defaults (the platform check forced here)."""
    large = ep.BernoulliRBM.init(jax.random.key(0), 8, compiler.LARGE_MODEL_PARAMETERS // 8, scale=0.1)
    with compiler.for_model(large):
        assert compiler.options_in_effect() == _ONEDNN
        assert jax.jit(lambda: jnp.asarray(len(compiler.options_in_effect())))() == 0
        monkeypatch.setattr(compiler, "_backend_is_cpu", lambda: False)
        assert compiler.options_in_effect() == {}
        run = ep.compiler.filter_jit(lambda *a: _gibbs_sweeps(*a))
        run(large, jax.random.key(5), jnp.zeros((4, 8)))
        assert run.nested._cached._cache_size() == 1
        assert run.compiled_with(_ONEDNN)._cached._cache_size() == 0


def test_the_environment_variable_chooses_the_dot_library(monkeypatch):
    monkeypatch.setenv("EBM_PPL_CPU_DOTS", "ynnpack")
    assert compiler._large_options() == compiler.COMPILER_OPTIONS
    monkeypatch.setenv("EBM_PPL_CPU_DOTS", "onednn")
    assert compiler._large_options() == (_ONEDNN if compiler._cpuinfo("flags") else compiler.COMPILER_OPTIONS)
    monkeypatch.setenv("EBM_PPL_CPU_DOTS", "mkl")
    with pytest.raises(ValueError, match="EBM_PPL_CPU_DOTS must be auto, ynnpack or onednn"):
        compiler._large_options()
    monkeypatch.delenv("EBM_PPL_CPU_DOTS")
    intel = compiler._cpuinfo("vendor_id") == "GenuineIntel"
    assert compiler._large_options() == (_ONEDNN if intel else compiler.COMPILER_OPTIONS)


def test_the_persistent_cache_keeps_ynnpack(monkeypatch):
    """XLA cannot store a program with oneDNN's products: with the cache on (as in this suite), a
    large model keeps YNNPACK's unless EBM_PPL_CPU_DOTS=onednn insisted."""
    assert jax.config.jax_compilation_cache_dir  # the suite's conftest turns it on
    monkeypatch.setattr(compiler, "LARGE_MODEL_OPTIONS", _ONEDNN)
    large = ep.BernoulliRBM.init(jax.random.key(0), 8, compiler.LARGE_MODEL_PARAMETERS // 8, scale=0.1)
    with compiler.for_model(large):
        assert compiler.options_in_effect() == compiler.COMPILER_OPTIONS
        monkeypatch.setattr(compiler, "_DOTS_FORCED", True)
        assert compiler.options_in_effect() == _ONEDNN


def test_options_for_is_what_a_call_would_use(onednn):
    small = ep.BernoulliRBM.init(jax.random.key(0), 8, 3, scale=1.0)
    large = ep.BernoulliRBM.init(jax.random.key(0), 8, compiler.LARGE_MODEL_PARAMETERS // 8, scale=0.1)
    assert ep.compiler.options_for(small) == compiler.COMPILER_OPTIONS
    assert ep.compiler.options_for(large) == _ONEDNN


def test_options_this_xla_refuses_fall_back(monkeypatch, onednn):
    """A JAX whose XLA renamed an experimental option keeps compiling, with the plain options."""
    bad = {**_ONEDNN, "xla_cpu_experimental_onednn_fusion_type": "LIBRARY_FUSION_TYPE_RENAMED"}
    monkeypatch.setattr(compiler, "LARGE_MODEL_OPTIONS", bad)
    large = ep.BernoulliRBM.init(jax.random.key(0), 8, compiler.LARGE_MODEL_PARAMETERS // 8, scale=0.1)
    with compiler.for_model(large):
        assert compiler.options_in_effect() == compiler.COMPILER_OPTIONS
        dt = ep.sample(jax.random.key(1), large, "block_gibbs", num_chains=4, num_warmup=0, num_samples=3)
    assert dt.posterior["x"].shape == (4, 3, 8)
    monkeypatch.setattr(compiler, "LARGE_MODEL_OPTIONS", _ONEDNN)
    with compiler.for_model(large):
        assert compiler.options_in_effect() == _ONEDNN


def test_a_misspelled_setting_is_an_error_at_the_first_compiled_call_not_at_import(tmp_path):
    """A bad EBM_PPL_CPU_DOTS (or vector width) must not make the package unimportable: the first
    compiled call raises it, and the command line prints it as one error line."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "EBM_PPL_CPU_DOTS": "mkl", "EBM_PPL_COMPILE_CACHE": "off"}
    script = ("import jax, ebm_ppl as ep\n"
              "rbm = ep.BernoulliRBM.init(jax.random.key(0), 6, 3)\n"
              "ep.save(r'%s', rbm)\n"
              "try:\n"
              "    ep.sample(jax.random.key(0), rbm, num_samples=2, num_warmup=0)\n"
              "except ValueError as exc:\n"
              "    print('raised:', exc)\n") % (tmp_path / "rbm.ebm")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "raised: EBM_PPL_CPU_DOTS must be auto, ynnpack or onednn, got 'mkl'" in proc.stdout
    cli = subprocess.run([sys.executable, "-m", "ebm_ppl", "logz", str(tmp_path / "rbm.ebm"), "--quiet"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert cli.returncode != 0 and "Traceback" not in cli.stderr
    assert cli.stderr.startswith("ebm-ppl: error: EBM_PPL_CPU_DOTS must be auto, ynnpack or onednn"), cli.stderr
