"""The NumPyro bridge: moments agree across routes, normalization, signs, discrete samplers."""

import os
import subprocess
import sys
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC, NUTS, DiscreteHMCGibbs, Predictive

import ebm_ppl as ep
from ebm_ppl.numpyro import EnergyDistribution, EnergyKernel, factor
from ebm_ppl.potentials.enumeration import all_binary_states

MEAN = np.array([1.0, -1.0])
COV = np.array([[1.0, 0.5], [0.5, 2.0]])


def _nuts(model, *args, seed=0, n=2000):
    mcmc = MCMC(NUTS(model), num_warmup=500, num_samples=n, num_chains=2, chain_method="vectorized",
                progress_bar=False)
    mcmc.run(jax.random.key(seed), *args)
    return np.asarray(mcmc.get_samples(group_by_chain=True)["x"])


def _within_5_mcse(x):
    for i in range(2):
        assert abs(x[..., i].mean() - MEAN[i]) < 5 * az.mcse(x[..., i])
        centered = (x[..., i] - MEAN[i]) ** 2
        assert abs(centered.mean() - COV[i, i]) < 5 * az.mcse(centered)


@pytest.mark.slow
def test_the_same_gaussian_by_distribution_factor_and_ep_sample():
    """Exact answer: the Gaussian's mean and variances; each route within 5 MCSE of them."""
    g = ep.Gaussian(MEAN, COV)

    def as_distribution():
        numpyro.sample("x", EnergyDistribution(g))

    def as_factor():
        x = numpyro.sample("x", dist.ImproperUniform(dist.constraints.real_vector, (), (2,)))
        factor("energy", g, x)

    _within_5_mcse(_nuts(as_distribution))
    _within_5_mcse(_nuts(as_factor, seed=1))
    _within_5_mcse(ep.sample(jax.random.key(2), g, "nuts", num_chains=2, num_samples=2000).posterior["x"].values)


def test_exact_log_z_normalizes_log_prob_of_a_small_rbm():
    with jax.enable_x64(True):
        rbm = ep.BernoulliRBM.init(jax.random.key(0), 8, 5, scale=1.0)
        d = EnergyDistribution(rbm, log_z=ep.log_partition(rbm))
        assert d.normalized and not EnergyDistribution(rbm).normalized
        total = jnp.sum(jnp.exp(d.log_prob(all_binary_states(8))))
        assert float(total) == pytest.approx(1.0, abs=1e-10)
        est = ep.ais(jax.random.key(1), rbm, num_chains=100, num_temperatures=2000)
        np.testing.assert_allclose(EnergyDistribution(rbm, log_z=est).log_prob(jnp.ones(8)),
                                   -rbm.energy(jnp.ones(8)) - est.log_z)


def test_signs_of_every_conversion():
    g = ep.Gaussian(MEAN, COV)
    x = jnp.array([0.3, 0.7])
    assert float(ep.numpyro.potential_fn(g)(x)) == pytest.approx(float(g.energy(x)))
    assert float(ep.numpyro.logdensity_fn(g)(x)) == pytest.approx(-float(g.energy(x)))
    assert float(EnergyDistribution(g).log_prob(x)) == pytest.approx(-float(g.energy(x)))

    def model():
        numpyro.sample("z", dist.Normal(2.0, 3.0))

    logdensity, z0, constrain = ep.numpyro.model_logdensity(jax.random.key(0), model)
    assert float(logdensity({"z": 1.0})) == pytest.approx(float(dist.Normal(2.0, 3.0).log_prob(1.0)), rel=1e-6)
    assert set(z0) == {"z"} and float(constrain({"z": 1.0})["z"]) == pytest.approx(1.0)


def _exact_marginals(rbm):
    with jax.enable_x64(True):
        states = all_binary_states(rbm.n_visible)
        p = jnp.exp(-rbm.energy(states) - rbm.log_partition())
        return np.asarray(p @ states)


@pytest.mark.slow
def test_numpyro_discrete_gibbs_samples_an_rbm_prior_exactly():
    """An RBM prior plus an unrelated continuous site (DiscreteHMCGibbs needs one): the x marginals
    match the enumerated p(x_i = 1) within 5 binomial s.e. computed from the ESS."""
    rbm = ep.BernoulliRBM.init(jax.random.key(3), 10, 6, scale=1.0)

    def model():
        numpyro.sample("noise", dist.Normal())
        numpyro.sample("x", EnergyDistribution(rbm))

    mcmc = MCMC(DiscreteHMCGibbs(NUTS(model)), num_warmup=500, num_samples=4000, num_chains=2,
                chain_method="sequential", progress_bar=False)
    mcmc.run(jax.random.key(4))
    x = np.asarray(mcmc.get_samples(group_by_chain=True)["x"])
    exact = _exact_marginals(rbm)
    for i in range(10):
        ess = float(az.ess(x[..., i]))
        assert abs(x[..., i].mean() - exact[i]) < 5 * np.sqrt(exact[i] * (1 - exact[i]) / ess) + 1e-3


def test_our_kernels_run_under_numpyro_mcmc_vectorized_and_single():
    rbm = ep.BernoulliRBM.init(jax.random.key(5), 10, 6, scale=1.0)
    mcmc = MCMC(EnergyKernel(rbm), num_warmup=200, num_samples=3000, num_chains=4, chain_method="vectorized",
                progress_bar=False)
    mcmc.run(jax.random.key(6))
    x = np.asarray(mcmc.get_samples(group_by_chain=True)["x"])  # named like a model's site
    assert x.shape == (4, 3000, 10)
    exact = _exact_marginals(rbm)
    assert np.all(np.abs(x.mean((0, 1)) - exact) < 5 * np.sqrt(exact * (1 - exact) / 2000))
    single = MCMC(EnergyKernel(ep.BoltzmannMachine.init(jax.random.key(0), 5, scale=1.0)), num_warmup=10,
                  num_samples=20, progress_bar=False)
    single.run(jax.random.key(7), init_params=jnp.zeros(5))
    assert single.get_samples()["x"].shape == (20, 5)
    g = ep.Gaussian(MEAN, COV)
    lang = MCMC(EnergyKernel(g, "langevin", step_size=0.05), num_warmup=10, num_samples=20, progress_bar=False)
    lang.run(jax.random.key(8))
    assert lang.get_samples()["x"].shape == (20, 2)
    with pytest.raises(ValueError, match="EnergyKernel runs"):
        EnergyKernel(g, "hmc")
    with pytest.raises(ValueError, match="site"):
        EnergyKernel(g, site="")


@pytest.mark.parametrize("chain_method", ["vectorized", "sequential"])
def test_energy_kernel_runs_come_out_of_from_numpyro_as_x(chain_method):
    rbm = ep.BernoulliRBM.init(jax.random.key(5), 10, 6, scale=1.0)
    mcmc = MCMC(EnergyKernel(rbm), num_warmup=10, num_samples=30, num_chains=2, chain_method=chain_method,
                progress_bar=False)
    mcmc.run(jax.random.key(6))
    data = az.from_numpyro(mcmc)
    assert list(data.posterior.data_vars) == ["x"] and data.posterior["x"].shape == (2, 30, 10)
    assert [r["quantity"] for r in ep.diagnose(data).coordinates][:2] == ["x[0]", "x[1]"]
    named = MCMC(EnergyKernel(rbm, site="pixels"), num_warmup=5, num_samples=10, progress_bar=False)
    named.run(jax.random.key(7))
    assert list(az.from_numpyro(named).posterior.data_vars) == ["pixels"]


def test_from_numpyro_works_after_importing_arviz_then_ebm_ppl():
    """arviz binds numpyro lazily; ebm_ppl.numpyro imports numpyro first so that a NumPyro run made
    after `import arviz, ebm_ppl` still converts (a fresh process: nothing else imported before)."""
    code = ("import arviz, ebm_ppl, numpyro, numpyro.distributions as dist, jax\n"
            "from numpyro.infer import MCMC, NUTS\n"
            "m = MCMC(NUTS(lambda: numpyro.sample('a', dist.Normal())), num_warmup=5, num_samples=5, "
            "progress_bar=False)\n"
            "m.run(jax.random.key(0))\n"
            "print(list(arviz.from_numpyro(m).posterior.data_vars))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0 and out.stdout.strip() == "['a']", out.stderr[-2000:]


def test_predictive_draws_from_the_potential():
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 6, 3, scale=0.5)

    def model():
        numpyro.sample("x", EnergyDistribution(rbm, sampler_steps=50))

    x = Predictive(model, num_samples=7)(jax.random.key(1))["x"]
    assert x.shape == (7, 6) and set(np.unique(x)) <= {0.0, 1.0}
    g = EnergyDistribution(ep.Gaussian(MEAN, COV), sampler_steps=300)
    draws = g.sample(jax.random.key(2), (400,))
    assert draws.shape == (400, 2)
    assert np.all(np.abs(draws.mean(0) - MEAN) < 5 * np.sqrt(np.diag(COV) / 400))


def test_doubly_intractable_model_warns():
    def model():
        scale = numpyro.sample("scale", dist.HalfNormal(1.0))
        rbm = ep.BernoulliRBM(scale * jnp.ones((4, 2)), jnp.zeros(4), jnp.zeros(2))
        numpyro.sample("x", EnergyDistribution(rbm), obs=jnp.ones(4))

    with pytest.warns(ep.numpyro.DoublyIntractableWarning, match=r"log_z=ebm_ppl.log_partition\(potential\)") as caught:
        MCMC(NUTS(model), num_warmup=5, num_samples=5, progress_bar=False).run(jax.random.key(0))
    # attributed to the model's line, not to NumPyro's or ebm_ppl's code
    assert {w.filename for w in caught if w.category is ep.numpyro.DoublyIntractableWarning} == {__file__}
    def fixed():  # parameters built inside the model from constants: traced under jit, not inferred
        g = ep.Gaussian(jnp.zeros(2), scale_diag=jnp.ones(2))
        numpyro.sample("x", EnergyDistribution(g))

    with warnings.catch_warnings():
        warnings.simplefilter("error", ep.numpyro.DoublyIntractableWarning)
        EnergyDistribution(ep.BernoulliRBM.init(jax.random.key(0), 4, 2))  # fixed parameters: fine
        MCMC(NUTS(fixed), num_warmup=5, num_samples=5, progress_bar=False).run(jax.random.key(0))


def test_bad_input():
    with pytest.raises(TypeError, match="Potential"):
        EnergyDistribution(lambda x: x)
    with pytest.raises(NotImplementedError, match="enumerable"):
        EnergyDistribution(ep.Gaussian(MEAN, COV)).enumerate_support()


def test_parallel_tempering_runs_under_numpyro_on_a_fixed_ladder():
    """A 10-unit ferromagnet (modes all zeros and all ones, equal mass, a flip out of one costs 4.5
    nats), 2000 chains started in the zeros mode: after 150 NumPyro steps the PT chains' law is the
    exact one (TV within 2x its Monte Carlo expectation), site Gibbs under the same MCMC stays in
    its mode; the round trips come out as an extra field."""
    dim = 10
    bm = ep.BoltzmannMachine(jnp.ones((dim, dim)) - jnp.eye(dim), -0.5 * (dim - 1) * jnp.ones(dim))
    with jax.enable_x64(True):
        states = all_binary_states(dim)
        exact = np.exp(np.asarray(-bm.energy(states) - bm.log_partition()))

    def final_states(kernel):
        mcmc = MCMC(kernel, num_warmup=149, num_samples=1, num_chains=2000, chain_method="vectorized",
                    progress_bar=False)
        mcmc.run(jax.random.key(3), init_params=jnp.zeros((2000, dim)), extra_fields=("inner",))
        codes = (np.asarray(mcmc.get_samples()["x"]) @ (2 ** np.arange(dim))).astype(int)
        empirical = np.bincount(codes, minlength=2**dim) / codes.size
        return 0.5 * np.abs(empirical - exact).sum(), mcmc.get_extra_fields()

    tv, fields = final_states(EnergyKernel(bm, "parallel_tempering", num_replicas=6, min_beta=0.1))
    assert tv < 2 * 0.5 * np.sum(np.sqrt(exact * (1 - exact) / 2000)), tv
    assert np.asarray(fields["inner"].round_trips).sum() > 0
    np.testing.assert_allclose(np.asarray(fields["inner"].betas)[0], ep.kernels.parallel_tempering.ladder(6, 0.1),
                               rtol=1e-6)  # the fixed ladder
    tv_gibbs, _ = final_states(EnergyKernel(bm, "site_gibbs"))
    assert tv_gibbs > 0.2, tv_gibbs  # measured 0.36: most chains never leave their mode
    with pytest.raises(ValueError, match="does not take num_replicas"):
        EnergyKernel(bm, "site_gibbs", num_replicas=4)
    with pytest.raises(ValueError, match=r"'block_gibbs' does not take noise_scale, step_size \(it takes no options\)"):
        EnergyKernel(ep.BernoulliRBM.init(jax.random.key(0), 4, 2), "block_gibbs", step_size=0.1, noise_scale=0.2)
    with pytest.raises(ValueError, match="strictly ascending"):
        EnergyKernel(bm, "parallel_tempering", betas=[0.5, 0.2, 1.0])


@pytest.mark.parametrize("kernel, options", [("parallel_tempering", {"num_replicas": 4, "step_size": 0.5}),
                                             ("langevin", {"step_size": 0.2})])
def test_energy_kernel_samples_a_box_through_its_bijection(kernel, options):
    """E(x) = 2 x on box(0, 1), exact mean 1/a - 1/(e^a - 1) = 0.3435 (a = 2). The gradient kernels
    run on R^D through the box's bijection, as ep.sample does: every draw is in the box and the
    mean is within 4 Monte Carlo standard errors (sd / sqrt(ESS), NumPyro's ESS over 4 chains) of
    the exact one; unadjusted Langevin's O(step) bias at step 0.2 is 0.002 (its stationary law
    computed on a grid), 3% of that tolerance's 0.06. Before, ~100% of the draws left the box."""
    from numpyro.diagnostics import effective_sample_size

    a = 2.0
    exact = 1 / a - 1 / np.expm1(a)
    u = ep.potential(lambda x: a * jnp.sum(x), event_shape=(1,), support=ep.box(0.0, 1.0))
    mcmc = MCMC(EnergyKernel(u, kernel, **options), num_warmup=500, num_samples=2000, num_chains=4,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.key(1))
    x = np.asarray(mcmc.get_samples(group_by_chain=True)["x"], np.float64)[..., 0]
    assert np.all((x >= 0) & (x <= 1))
    mcse = x.std() / np.sqrt(effective_sample_size(x))
    assert abs(x.mean() - exact) < 4 * mcse, (x.mean(), exact, mcse)


def test_energy_kernel_init_params_shapes():
    """docs/numpyro.md: init_params is (*event_shape) with one chain, (num_chains, *event_shape)
    with several; NumPyro itself refuses an init_params without the chain axis when num_chains > 1
    (the kernel never sees it), so one point for all chains is broadcast by the caller."""
    bm = ep.BoltzmannMachine.init(jax.random.key(0), 10, scale=0.3)
    mcmc = MCMC(EnergyKernel(bm), num_warmup=5, num_samples=5, num_chains=2, chain_method="vectorized",
                progress_bar=False)
    with pytest.raises(ValueError, match="same leading dimension as `num_chains`"):
        mcmc.run(jax.random.key(0), init_params=jnp.zeros(10))
    mcmc.run(jax.random.key(0), init_params=jnp.broadcast_to(jnp.zeros(10), (2, 10)))
    assert mcmc.get_samples(group_by_chain=True)["x"].shape == (2, 5, 10)
    single = MCMC(EnergyKernel(bm), num_warmup=5, num_samples=5, progress_bar=False)
    with pytest.raises(ValueError, match=r"EnergyKernel: init_params has shape \(3, 10\); expected \(10,\)"):
        single.run(jax.random.key(0), init_params=jnp.zeros((3, 10)))
