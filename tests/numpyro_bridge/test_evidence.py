"""ep.numpyro.log_evidence, bdmc and compare against analytic evidences, quadrature and hostile input.

Tolerances: every estimate must be within 0.05 nats of the exact log evidence and within three of
its own standard errors (the delta-method s.e. of log mean w). The schedules are long enough that
the measured run-to-run spread (20 seeds, Intel Xeon) is several times below 0.05 nats.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import integrate, special, stats

import ebm_ppl as ep

TOL = 0.05


def normal_mean(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def normal_mean_factor(y):
    """The same model with the likelihood as a numpyro.factor term."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
    numpyro.factor("lik", dist.Normal(mu, 1.0).log_prob(y).sum())


def beta_binomial(n, k):
    p = numpyro.sample("p", dist.Beta(2.0, 3.0))
    numpyro.sample("k", dist.Binomial(n, p), obs=k)


def regression(X, y=None):
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    numpyro.sample("y", dist.Normal(X @ w, 0.5).to_event(1), obs=y)


def half_normal_scale(y):
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", dist.Normal(0.0, sigma), obs=y)


RNG = np.random.default_rng(0)
Y_MEAN = RNG.normal(1.0, 1.0, 20).astype(np.float32)
X_REG = RNG.normal(size=(50, 15)).astype(np.float32)
Y_REG = (X_REG @ (0.5 * RNG.normal(size=15)) + 0.5 * RNG.normal(size=50)).astype(np.float32)
Y_HN = RNG.normal(0.0, 0.7, 30).astype(np.float32)


def exact_normal_mean(y):
    n = len(y)
    return stats.multivariate_normal(np.zeros(n), np.eye(n) + 4.0).logpdf(y)


def exact_regression(X, y):
    X = X.astype(np.float64)
    return stats.multivariate_normal(np.zeros(len(y)), 0.25 * np.eye(len(y)) + X @ X.T).logpdf(y)


def regression_posterior(X, y, num, seed):
    """Exact posterior draws of the regression's weights (Gaussian, conjugate)."""
    X = X.astype(np.float64)
    precision = np.eye(X.shape[1]) + X.T @ X / 0.25
    cov = np.linalg.inv(precision)
    mean = cov @ X.T @ y / 0.25
    return np.random.default_rng(seed).multivariate_normal(mean, cov, num).astype(np.float32)


def exact_half_normal(y):
    """1-d quadrature over sigma of HalfNormal(sigma; 1) prod_i N(y_i; 0, sigma)."""
    y = y.astype(np.float64)

    def log_joint(s):
        return stats.halfnorm.logpdf(s) + stats.norm(0.0, s).logpdf(y).sum()

    ref = max(log_joint(s) for s in np.linspace(0.05, 3.0, 300))
    value, _ = integrate.quad(lambda s: np.exp(log_joint(s) - ref), 0.0, 10.0, points=[0.5, 0.7, 1.0], limit=200)
    return ref + math.log(value)


def assert_close(est, exact, tol=TOL):
    err = est.log_z - exact
    assert abs(err) <= tol and abs(err) <= 3 * est.stderr + 1e-4, (est, exact, err)


def test_normal_mean_matches_the_analytic_evidence():
    est = ep.numpyro.log_evidence(jax.random.key(0), normal_mean, jnp.asarray(Y_MEAN), num_temperatures=2000)
    assert est.bound == "lower" and est.base_log_z == 0.0 and est.num_chains == 100
    assert est.schedule.shape == (2001,) and est.schedule[0] == 0.0 and est.schedule[-1] == 1.0
    assert np.all(np.diff(est.schedule) > 0)
    assert est.log_weight_var.shape == (2000,) and est.ess > 90
    assert_close(est, exact_normal_mean(Y_MEAN))


def test_a_factor_likelihood_is_annealed_like_an_observed_site():
    est = ep.numpyro.log_evidence(jax.random.key(1), normal_mean_factor, jnp.asarray(Y_MEAN), num_temperatures=2000)
    assert_close(est, exact_normal_mean(Y_MEAN))


def test_mala_moves_reach_the_same_evidence():
    est = ep.numpyro.log_evidence(jax.random.key(2), normal_mean, jnp.asarray(Y_MEAN), num_temperatures=2000,
                                  kernel="mala")
    assert_close(est, exact_normal_mean(Y_MEAN))


def test_beta_binomial_matches_the_analytic_evidence():
    n, k = 20, 13
    exact = math.log(special.comb(n, k)) + special.betaln(k + 2, n - k + 3) - special.betaln(2, 3)
    est = ep.numpyro.log_evidence(jax.random.key(0), beta_binomial, n, k, num_temperatures=2000)
    assert_close(est, exact)


def test_a_half_normal_scale_matches_quadrature():
    """A constrained site: the log-transform's Jacobian must be in the prior."""
    est = ep.numpyro.log_evidence(jax.random.key(0), half_normal_scale, jnp.asarray(Y_HN), num_temperatures=4000)
    assert_close(est, exact_half_normal(Y_HN))


@pytest.mark.slow
def test_fifteen_weight_regression_forward_and_reverse_from_exact_draws():
    X, y = jnp.asarray(X_REG), jnp.asarray(Y_REG)
    exact = exact_regression(X_REG, Y_REG)
    fwd = ep.numpyro.log_evidence(jax.random.key(0), regression, X, y, num_temperatures=10000, num_chains=400)
    assert_close(fwd, exact)
    draws = regression_posterior(X_REG, Y_REG, 400, seed=1)
    rev = ep.numpyro.log_evidence(jax.random.key(1), regression, X, y, num_temperatures=10000, num_chains=400,
                                  reverse=True, posterior_samples={"w": draws}, exact=True)
    assert rev.bound == "upper" and rev.start_log_likelihood is None
    assert_close(rev, exact)
    with pytest.warns(RuntimeWarning, match="importance weights are degenerate"):  # 100 temperatures: too few
        approx = ep.numpyro.log_evidence(jax.random.key(1), regression, X, y, num_temperatures=100, num_chains=20,
                                         reverse=True, posterior_samples={"w": draws})
    assert approx.bound == "approximate upper"


def test_the_same_key_gives_the_same_weights():
    a = ep.numpyro.log_evidence(jax.random.key(5), normal_mean, jnp.asarray(Y_MEAN), num_temperatures=50, num_chains=8)
    b = ep.numpyro.log_evidence(jax.random.key(5), normal_mean, jnp.asarray(Y_MEAN), num_temperatures=50, num_chains=8)
    c = ep.numpyro.log_evidence(jax.random.key(6), normal_mean, jnp.asarray(Y_MEAN), num_temperatures=50, num_chains=8)
    np.testing.assert_array_equal(a.log_weights, b.log_weights)
    np.testing.assert_array_equal(a.schedule, b.schedule)
    assert not np.array_equal(a.log_weights, c.log_weights)


def test_a_given_schedule_is_used_as_is():
    betas = ep.partition.power_schedule(300)
    est = ep.numpyro.log_evidence(jax.random.key(0), normal_mean, jnp.asarray(Y_MEAN), schedule=betas, num_chains=20)
    np.testing.assert_array_equal(est.schedule, betas)
    assert est.num_temperatures == 300


def test_bdmc_sandwich_contains_the_truth_and_narrows_with_the_schedule():
    X = jnp.asarray(X_REG[:, :5])
    with pytest.warns(RuntimeWarning, match="degenerate") as caught:  # and says so, at the caller's line
        short = ep.numpyro.bdmc(jax.random.key(3), regression, X, observed="y", num_temperatures=20)
    assert all(w.filename == __file__ for w in caught if "degenerate" in str(w.message))
    long = ep.numpyro.bdmc(jax.random.key(3), regression, X, observed="y", num_temperatures=2000)
    np.testing.assert_array_equal(short.data["y"], long.data["y"])  # same key: same simulated data
    assert set(long.truth) == {"w"} and long.truth["w"].shape == (5,)
    exact = exact_regression(X_REG[:, :5], long.data["y"])
    for run in (short, long):
        assert run.forward.bound == "lower" and run.reverse.bound == "upper"
        assert run.forward.log_z - 3 * run.forward.stderr <= exact <= run.reverse.log_z + 3 * run.reverse.stderr
    assert short.gap > 1.0  # 20 temperatures are far too few here
    assert 0 <= long.gap + 3 * math.hypot(long.forward.stderr, long.reverse.stderr) and long.gap < 0.2
    assert long.gap < short.gap / 5
    assert "gap" in str(long)


def test_compare_ranks_models_with_error_bars():
    x = np.linspace(-1, 1, 30).astype(np.float32)
    y = (0.3 + 0.5 * x + 0.8 * x**2 + 0.3 * np.random.default_rng(4).normal(size=30)).astype(np.float32)

    def linear(x, y):
        a = numpyro.sample("a", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        numpyro.sample("y", dist.Normal(a[0] + a[1] * x, 0.3).to_event(1), obs=y)

    def quadratic(x, y):
        a = numpyro.sample("a", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
        numpyro.sample("y", dist.Normal(a[0] + a[1] * x + a[2] * x**2, 0.3).to_event(1), obs=y)

    def exact(features):
        return stats.multivariate_normal(np.zeros(30), 0.09 * np.eye(30) + features @ features.T).logpdf(y)

    ones = np.ones_like(x, np.float64)
    estimates = {name: ep.numpyro.log_evidence(jax.random.key(i), m, jnp.asarray(x), jnp.asarray(y),
                                               num_temperatures=2000)
                 for i, (name, m) in enumerate([("linear", linear), ("quadratic", quadratic)])}
    cmp = ep.numpyro.compare(estimates)
    assert cmp.names == ("quadratic", "linear")
    log_bf, se = cmp.log_bayes_factor("quadratic", "linear")
    exact_bf = exact(np.stack([ones, x, x**2], 1)) - exact(np.stack([ones, x], 1))
    assert abs(log_bf - exact_bf) <= max(3 * se, 0.05) and se > 0
    assert cmp.log_bayes_factor("linear", "linear") == (0.0, 0.0)
    p = cmp.probabilities
    assert p.sum() == pytest.approx(1.0) and p[0] > 0.9
    np.testing.assert_allclose(p[0], 1 / (1 + math.exp(-log_bf)), rtol=1e-6)
    assert np.all(cmp.probability_stderr >= 0)
    weighted = ep.numpyro.compare(estimates, prior={"linear": 0.99, "quadratic": 0.01})
    assert weighted.probabilities[0] < p[0]
    text = str(cmp)
    assert "quadratic" in text and "log BF" in text and "P(model | y)" in text


def _estimate(log_z=0.0, bound="lower"):
    return ep.partition.AISEstimate(log_z=log_z, stderr=0.1, log_weights=np.zeros(10), ess=10.0,
                                    log_weight_var=np.zeros(3), bound=bound, schedule=np.linspace(0, 1, 4),
                                    base_log_z=0.0, wall_time=0.0)


def test_compare_refuses_and_warns():
    with pytest.raises(ValueError, match="at least two"):
        ep.numpyro.compare({"a": _estimate()})
    with pytest.raises(TypeError, match="must be an AISEstimate"):
        ep.numpyro.compare({"a": _estimate(), "b": 1.0})
    with pytest.raises(ValueError, match="not finite"):
        ep.numpyro.compare({"a": _estimate(), "b": _estimate(float("nan"))})
    with pytest.raises(ValueError, match="prior"):
        ep.numpyro.compare({"a": _estimate(), "b": _estimate()}, prior={"a": 1.0})
    with pytest.raises(ValueError, match="positive"):
        ep.numpyro.compare({"a": _estimate(), "b": _estimate()}, prior={"a": 1.0, "b": 0.0})
    with pytest.warns(RuntimeWarning, match="different kinds"):
        ep.numpyro.compare({"a": _estimate(), "b": _estimate(bound="upper")})
    with pytest.raises(KeyError, match="no model named"):
        ep.numpyro.compare({"a": _estimate(), "b": _estimate()}).log_bayes_factor("a", "c")


def test_hostile_models_get_clear_errors():
    y = jnp.asarray(Y_MEAN)

    def no_latent(y):
        numpyro.sample("y", dist.Normal(0.0, 1.0), obs=y)

    def no_data():
        numpyro.sample("mu", dist.Normal(0.0, 1.0))

    def discrete(y):
        c = numpyro.sample("c", dist.Bernoulli(0.5))
        numpyro.sample("y", dist.Normal(c, 1.0), obs=y)

    def improper(y):
        mu = numpyro.sample("mu", dist.ImproperUniform(dist.constraints.real, (), ()))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    with pytest.raises(ValueError, match="no latent sites"):
        ep.numpyro.log_evidence(jax.random.key(0), no_latent, y)
    with pytest.raises(ValueError, match="no observed sites"):
        ep.numpyro.log_evidence(jax.random.key(0), no_data)
    with pytest.raises(ValueError, match=r"discrete latent site\(s\) \['c'\]"):
        ep.numpyro.log_evidence(jax.random.key(0), discrete, y)
    with pytest.raises(ValueError, match="improper prior"):
        ep.numpyro.log_evidence(jax.random.key(0), improper, y)
    with pytest.raises(TypeError, match="must be a NumPyro model"):
        ep.numpyro.log_evidence(jax.random.key(0), "model", y)


def _masked_prior(y):
    with numpyro.handlers.mask(mask=False):  # a flat prior written another way
        mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def _scaled_prior(y):
    with numpyro.handlers.scale(scale=0.5):
        mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def _plate_of_five(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
    with numpyro.plate("data", 5):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def _energy_likelihood(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 2.0).expand([2]).to_event(1))
    numpyro.sample("y", ep.numpyro.EnergyDistribution(ep.Gaussian(jnp.zeros(2), scale_diag=jnp.ones(2))), obs=y - mu)


@pytest.mark.parametrize("model, args, match", [
    (_masked_prior, (0.3,), "latent site 'mu' is masked"),
    (_scaled_prior, (0.3,), "latent site 'mu' has its prior scaled"),
    (_energy_likelihood, (jnp.ones(2),), "observed site 'y' is an EnergyDistribution without log_z"),
    (normal_mean, (jnp.asarray([1.0, np.nan, 0.5]),), r"observed site 'y' holds 1 NaN or infinite"),
    (normal_mean, (jnp.asarray([1.0, np.inf]),), r"observed site 'y' holds 1 NaN or infinite"),
    (beta_binomial, (10, 15), r"observed site 'k' holds 1 value\(s\) outside its distribution's support"),
    (_plate_of_five, (jnp.zeros(3),), r"observed site 'y' holds data of shape \(3,\), but its distribution, inside "
                                      r"its plates, has shape \(5,\)"),
])
def test_models_whose_evidence_is_undefined_or_nan_are_refused_before_any_work(model, args, match):
    with pytest.raises(ValueError, match=match):
        ep.numpyro.log_evidence(jax.random.key(0), model, *args)


def test_an_energy_likelihood_with_its_log_z_and_obs_mask_missing_values_give_the_exact_evidence():
    energy = ep.Gaussian(jnp.zeros(2), scale_diag=jnp.ones(2))

    def normalized(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 2.0).expand([2]).to_event(1))
        numpyro.sample("y", ep.numpyro.EnergyDistribution(energy, log_z=ep.log_partition(energy)), obs=y - mu)

    y = np.array([0.5, -1.0], np.float32)
    est = ep.numpyro.log_evidence(jax.random.key(0), normalized, y, num_temperatures=1000)
    assert_close(est, stats.multivariate_normal(np.zeros(2), 5.0 * np.eye(2)).logpdf(y))

    def missing(y, observed):
        mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y, obs_mask=observed)

    observed = np.ones(len(Y_MEAN), bool)
    observed[[3, 11]] = False
    y = Y_MEAN.copy()
    y[~observed] = np.nan  # left out by obs_mask: allowed
    est = ep.numpyro.log_evidence(jax.random.key(1), missing, jnp.asarray(y), observed, num_temperatures=2000)
    assert_close(est, exact_normal_mean(Y_MEAN[observed]))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"kernel": "nuts"}, ValueError, "kernel must be one of"),
    ({"schedule": "linear"}, ValueError, "schedule must be 'adaptive'"),
    ({"schedule": [0.0, 0.5, 0.4, 1.0]}, ValueError, "strictly increasing"),
    ({"num_chains": 1}, ValueError, "num_chains"),
    ({"num_tuning_chains": 2}, ValueError, "num_tuning_chains"),
    ({"num_temperatures": 0}, ValueError, "num_temperatures"),
    ({"reverse": True}, ValueError, "pass posterior_samples"),
    ({"posterior_samples": {"mu": np.zeros(3)}}, ValueError, "pass reverse=True"),
    ({"exact": True}, ValueError, "drop exact, or pass reverse=True"),
    ({"reverse": True, "posterior_samples": [0.0]}, TypeError, "must be a dict"),
    ({"reverse": True, "posterior_samples": {"m": np.zeros(3)}}, ValueError, r"lack the latent site\(s\) \['mu'\]"),
    ({"reverse": True, "posterior_samples": {"mu": np.zeros((3, 2))}}, ValueError, "has draws of shape"),
    ({"max_memory": 1000}, ValueError, "needs about"),
])
def test_hostile_arguments_get_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ep.numpyro.log_evidence(jax.random.key(0), normal_mean, jnp.asarray(Y_MEAN), **kwargs)


def test_posterior_draws_outside_the_support_are_refused():
    with pytest.raises(ValueError, match="outside their sites' supports"):
        ep.numpyro.log_evidence(jax.random.key(0), half_normal_scale, jnp.asarray(Y_HN), reverse=True,
                                posterior_samples={"sigma": np.array([0.5, -1.0])}, num_temperatures=10)


def test_bdmc_refuses_sites_it_cannot_simulate():
    X = jnp.asarray(X_REG[:, :3])
    with pytest.raises(ValueError, match=r"no sample site\(s\) \['z'\]"):
        ep.numpyro.bdmc(jax.random.key(0), regression, X, observed="z")
    with pytest.raises(ValueError, match="already observed"):
        ep.numpyro.bdmc(jax.random.key(0), regression, X, jnp.asarray(Y_REG), observed="y")
    with pytest.raises(ValueError, match="observed must name"):
        ep.numpyro.bdmc(jax.random.key(0), regression, X, observed=[])


def test_report_has_an_evidence_section(tmp_path):
    X = jnp.asarray(X_REG[:, :3])
    check = ep.numpyro.bdmc(jax.random.key(0), regression, X, observed="y", num_temperatures=100, num_chains=20)
    y = jnp.asarray(Y_MEAN)
    fwd = ep.numpyro.log_evidence(jax.random.key(1), normal_mean, y, num_temperatures=100, num_chains=20)
    mu = np.random.default_rng(0).normal(Y_MEAN.sum() / 20.25, 20.25**-0.5, 20)
    rev = ep.numpyro.log_evidence(jax.random.key(2), normal_mean, y, num_temperatures=100, num_chains=20,
                                  reverse=True, posterior_samples={"mu": mu}, exact=True)
    other = ep.numpyro.log_evidence(jax.random.key(3), normal_mean_factor, y, num_temperatures=100, num_chains=20)
    data = ep.sample(jax.random.key(0), ep.Gaussian.standard(2), "mala", num_chains=2, num_samples=100,
                     num_warmup=50)
    path = ep.report(data, tmp_path / "report.html",
                     evidence={"check": check, "normal": (fwd, rev), "factor": other})
    text = path.read_text()
    assert "<h2>Evidence</h2>" in text and "check (simulated data)" in text
    assert text.count("sandwich gap") == 2 and "a check of the schedule" in text
    # the Bayes factors compare the two real-data models, not the simulated-data check
    assert "Bayes factors" in text and "AIS health: normal" in text and "AIS health: check" in text
    table = text[text.index("Bayes factors"):]
    assert "normal" in table and "factor" in table and "check" not in table.split("</table>")[0]
    with pytest.raises(TypeError, match="evidence must be"):
        ep.report(data, tmp_path / "bad.html", evidence=3.0)
    with pytest.raises(ValueError, match=r"must be \(forward, reverse\)"):
        ep.report(data, tmp_path / "bad.html", evidence=(rev, fwd))


def test_bdmc_reuses_its_compiled_programs():
    """The simulated data enter as traced values, not a new conditioned model: a second check on the
    same model compiles nothing."""
    from ebm_ppl.numpyro import likelihood_tempering as lt

    X = jnp.asarray(X_REG[:, :3])
    ep.numpyro.bdmc(jax.random.key(0), regression, X, observed="y", num_temperatures=30, num_chains=8)
    sizes = (lt.forward.top_level._cached._cache_size(), lt.reverse.top_level._cached._cache_size())
    again = ep.numpyro.bdmc(jax.random.key(1), regression, X, observed="y", num_temperatures=30, num_chains=8)
    assert (lt.forward.top_level._cached._cache_size(), lt.reverse.top_level._cached._cache_size()) == sizes
    assert again.gap_stderr == pytest.approx(math.hypot(again.forward.stderr, again.reverse.stderr))
    assert "±" in str(again).split("gap")[1]


def test_a_nan_in_the_observed_data_is_named_in_the_warning():
    """The NaN estimate's warning spoke of the model's parameters and ebm_ppl.save; for a model's
    evidence it now names the data, the usual cause. (NaN data given as they are are refused up
    front; data the model computes are only seen when the estimate comes out NaN.)"""
    y = np.asarray(Y_MEAN, np.float32).copy()
    y.flat[0] = np.nan

    def computed(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=2.0 * y)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = ep.numpyro.log_evidence(jax.random.key(0), computed, jnp.asarray(y), num_chains=8,
                                      num_temperatures=20)
    assert np.isnan(est.log_z)
    messages = [str(w.message) for w in caught]  # one warning, not also one about the moves' acceptance
    assert len(messages) == 1 and "a NaN in an observed value makes its likelihood NaN" in messages[0], messages
