"""ep.diagnose and ep.report read ArviZ data from anyone: plain NumPyro (``az.from_numpyro``), a
PyMC-shaped run and BlackJAX's own NUTS (both through ``az.from_dict``), and old ebm_ppl files.

Exact answers: every number is ArviZ's own on the same DataTree (R-hat, ESS, BFMI compared to
round-off); the statistical checks use NUTS on N(0, I) targets (E-BFMI about 1, well above 0.3,
for these seeds).
"""

import arviz as az
import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC, NUTS

import ebm_ppl as ep

_NUMPYRO_FIELDS = ("diverging", "potential_energy", "energy", "accept_prob", "num_steps", "adapt_state.step_size")


def _numpyro_run():
    def model():
        numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.sample("theta", dist.Normal(0.0, 1.0).expand([3]).to_event(1))

    mcmc = MCMC(NUTS(model), num_warmup=300, num_samples=400, num_chains=4, chain_method="vectorized",
                progress_bar=False)
    mcmc.run(jax.random.key(0), extra_fields=_NUMPYRO_FIELDS)
    return az.from_numpyro(mcmc)


def _pymc_shaped_run():
    """What PyMC's ``pm.sample`` returns for eight schools (non-centred): named dims and coords,
    and PyMC's sample_stats names (draws here are iid stand-ins of the right shapes)."""
    rng = np.random.default_rng(1)
    chains, draws = 4, 500
    mu, tau, theta = rng.normal(size=(chains, draws)), np.abs(rng.normal(size=(chains, draws))), \
        rng.normal(size=(chains, draws, 8))
    lp = -0.5 * (mu**2 + tau**2 + (theta**2).sum(-1))
    stats = {"lp": lp, "energy": -lp + rng.chisquare(10, (chains, draws)) / 2,
             "diverging": np.zeros((chains, draws), bool), "tree_depth": rng.integers(1, 4, (chains, draws)),
             "acceptance_rate": rng.uniform(0.7, 1.0, (chains, draws)), "step_size": np.full((chains, draws), 0.4),
             "n_steps": rng.integers(1, 8, (chains, draws)).astype(float),
             "max_energy_error": rng.normal(size=(chains, draws)),
             "reached_max_treedepth": np.zeros((chains, draws), bool)}
    schools = ["Choate", "Deerfield", "Phillips Andover", "Phillips Exeter", "Hotchkiss", "Lawrenceville",
               "St. Paul's", "Mt. Hermon"]
    return az.from_dict({"posterior": {"mu": mu, "tau": tau, "theta": theta}, "sample_stats": stats},
                        dims={"theta": ["school"]}, coords={"school": schools},
                        attrs={"posterior": {"inference_library": "pymc"}})


def _blackjax_run():
    """BlackJAX NUTS on N(0, I_3), four chains vmapped in a scan; the stats in ArviZ's names."""
    logdensity = lambda x: -0.5 * jnp.sum(x**2)  # noqa: E731
    nuts = blackjax.nuts(logdensity, step_size=0.7, inverse_mass_matrix=jnp.ones(3))
    states = jax.vmap(nuts.init)(jax.random.normal(jax.random.key(2), (4, 3)))

    def one(states, key):
        states, info = jax.vmap(nuts.step)(jax.random.split(key, 4), states)
        return states, (states.position, states.logdensity, info.energy, info.is_divergent,
                        info.acceptance_rate, info.num_trajectory_expansions, info.num_integration_steps)

    _, out = jax.lax.scan(one, states, jax.random.split(jax.random.key(3), 700))
    x, lp, energy, div, acc, depth, steps = (np.swapaxes(np.asarray(a), 0, 1)[:, 200:] for a in out)
    return az.from_dict({"posterior": {"x": x},
                         "sample_stats": {"lp": lp, "energy": energy, "diverging": div, "acceptance_rate": acc,
                                          "tree_depth": depth, "n_steps": steps}})


@pytest.fixture(scope="module", params=["numpyro", "pymc", "blackjax"])
def external(request):
    return request.param, {"numpyro": _numpyro_run, "pymc": _pymc_shaped_run, "blackjax": _blackjax_run}[
        request.param]()


def test_diagnose_reads_external_data_as_arviz_does(external):
    source, data = external
    diag = ep.diagnose(data)
    assert diag.table[0]["quantity"] == "lp"
    lp = diag.lp
    np.testing.assert_allclose(lp["rhat"], float(az.rhat(data, group="sample_stats", var_names=["lp"])["lp"]),
                               rtol=1e-12)
    np.testing.assert_allclose(diag.bfmi, az.bfmi(data)["energy"].values, rtol=1e-12)
    assert min(diag.bfmi) > 0.3
    posterior = data["posterior"].to_dataset()
    for row in diag.coordinates:
        group, var, index = diag.locations[row["quantity"]]
        expected = az.ess(data, var_names=[var], method="bulk")[var].values[index]
        np.testing.assert_allclose(row["ess_bulk"], expected, rtol=1e-12)
    assert len(diag.coordinates) == sum(int(np.prod(v.shape[2:])) for v in posterior.data_vars.values())
    assert diag.num_divergent == 0 and diag.acceptance_rate is not None and diag.notes == ()
    assert diag.ok, str(diag)
    if source == "pymc":
        assert "theta[Choate]" in [r["quantity"] for r in diag.coordinates]
    if source == "numpyro":
        assert [v for v in posterior.data_vars] == ["mu", "theta"]


def test_report_of_external_data(tmp_path, external):
    source, data = external
    text = ep.report(data, tmp_path / f"{source}.html").read_text(encoding="utf-8")
    for heading in ("Trace", "Rank plots", "Effective sample size", "Energy and BFMI", "Pair plot",
                    "Posterior densities", "Sampler statistics"):
        assert f"<h2>{heading}</h2>" in text, heading
    assert "All diagnostics pass." in text and "Could not draw" not in text


def _legacy_run():
    """A DataTree as ep.sample wrote it before ArviZ's schema: energy = E(x), no lp, no schema attr."""
    x = np.random.default_rng(4).normal(size=(4, 300, 2))
    attrs = {"kernel": "mala", "potential": "gaussian", "inference_library": "ebm_ppl"}
    return az.from_dict({"posterior": {"x": x}, "sample_stats": {"energy": 0.5 * (x**2).sum(-1),
                                                                  "acceptance_rate": np.full((4, 300), 0.6)}},
                        attrs={"posterior": attrs, "sample_stats": attrs})


def test_old_ebm_ppl_files_are_read_as_lp_with_a_note(tmp_path):
    data = _legacy_run()
    diag = ep.diagnose(data)
    assert diag.lp is not None and diag.bfmi is None  # E(x) is not a Hamiltonian: no BFMI
    np.testing.assert_allclose(diag.lp["mean"], -float(data.sample_stats["energy"].mean()), rtol=1e-12)
    assert len(diag.notes) == 1 and "lp = -energy" in diag.notes[0]
    assert "note: this run was written by an older ebm_ppl" in str(diag)
    text = ep.report(data, tmp_path / "old.html").read_text(encoding="utf-8")
    assert "Note: this run was written by an older ebm_ppl" in text and "<h2>Energy and BFMI</h2>" not in text
    new = ep.sample(jax.random.key(0), ep.Gaussian.standard(2), "mala", num_chains=2, num_warmup=20, num_samples=20)
    assert ep.diagnose(new).notes == () and new.posterior.attrs["stats_schema"] == "arviz"
