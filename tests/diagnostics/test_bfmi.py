"""E-BFMI of ep.sample's NUTS runs, and the energy plot: a funnel (low) against a Gaussian (high).

``sample_stats.energy`` of HMC/NUTS is the Hamiltonian, so ``ep.diagnose``'s BFMI is exactly
``arviz.bfmi``'s (compared to round-off). The statistical claims, with fixed seeds: on Neal's funnel
(v ~ N(0, 3^2), x_i | v ~ N(0, e^v), 9 of them) the Hamiltonian's marginal is far wider than its
per-step change, and E-BFMI stays below Stan's 0.3 (0.05-0.2 per chain over seeds 0-2); on a
10-d standard Gaussian NUTS's momentum resampling moves the energy freely and E-BFMI is about 1
(0.98-1.2 over seeds 0-1), far above it. The Hamiltonian itself is checked against its exact law:
at the kept state the momentum is still N(0, M), so energy - (-lp) = K(p) has mean d / 2.
"""

from typing import ClassVar

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep


class Funnel(ep.Potential):
    """Neal's funnel over z = (v, x_1..x_{d-1}): v ~ N(0, 9), x_i | v ~ N(0, exp(v))."""

    name: ClassVar[str] = "funnel_test"
    support: ClassVar[ep.Support] = ep.Support.REAL

    @property
    def event_shape(self):
        return (10,)

    def unbatched_energy(self, z):
        v, x = z[0], z[1:]
        return v**2 / 18 + 0.5 * jnp.sum(x**2) * jnp.exp(-v) + 0.5 * x.shape[0] * v


def _nuts(potential, seed=0):
    return ep.sample(jax.random.key(seed), potential, "nuts", num_chains=4, num_warmup=300, num_samples=500)


@pytest.fixture(scope="module")
def funnel_run():
    return _nuts(Funnel())


@pytest.fixture(scope="module")
def gaussian_run():
    return _nuts(ep.Gaussian.standard(10))


def test_funnel_has_low_bfmi_and_fails(funnel_run):
    diag = ep.diagnose(funnel_run)
    np.testing.assert_allclose(diag.bfmi, az.bfmi(funnel_run)["energy"].values, rtol=1e-12)
    assert max(diag.bfmi) < 0.3, diag.bfmi
    assert diag.low_bfmi_chains == [0, 1, 2, 3] and not diag.ok
    assert "E-BFMI < 0.3 in chains 0, 1, 2, 3" in diag.verdict()
    assert "E-BFMI per chain" in str(diag)


def test_gaussian_has_high_bfmi(gaussian_run):
    diag = ep.diagnose(gaussian_run)
    np.testing.assert_allclose(diag.bfmi, az.bfmi(gaussian_run)["energy"].values, rtol=1e-12)
    assert min(diag.bfmi) > 0.6, diag.bfmi
    assert diag.low_bfmi_chains == [] and diag.ok, str(diag)


@pytest.mark.parametrize("kernel", ["nuts", "hmc"])
def test_energy_is_the_hamiltonian(kernel, gaussian_run):
    """K = energy + lp is the kinetic energy of a N(0, M) momentum: chi^2_10 / 2, mean 5. Tolerance:
    5 Monte Carlo standard errors (arviz.mcse, autocorrelation included)."""
    data = gaussian_run if kernel == "nuts" else ep.sample(jax.random.key(3), ep.Gaussian.standard(10), "hmc",
                                                           num_chains=4, num_warmup=300, num_samples=500)
    kinetic = data.sample_stats["energy"].values + data.sample_stats["lp"].values
    assert kinetic.min() >= 0
    assert abs(kinetic.mean() - 5.0) < 5 * float(az.mcse(kinetic)), (kinetic.mean(), float(az.mcse(kinetic)))


def test_report_draws_arviz_energy_plot_for_both(tmp_path, funnel_run, gaussian_run):
    for name, data, low in (("funnel", funnel_run, True), ("gaussian", gaussian_run, False)):
        text = ep.report(data, tmp_path / f"{name}.html").read_text(encoding="utf-8")
        section = text.split("<h2>Energy and BFMI</h2>")[1].split("</section>")[0]
        assert "data:image/png;base64," in section and "arviz_plots.plot_energy" in section
        assert "E-BFMI per chain" in text
        assert ("E-BFMI &lt; 0.3 in chains" in text) == low
