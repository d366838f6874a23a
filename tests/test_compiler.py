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
