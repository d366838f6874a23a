"""Parallel tempering in the diagnostics: the report's ladder figures and the swap-acceptance warning.

The runs are on a 16-unit ferromagnetic Boltzmann machine (couplings 1, biases -7.5) started at
all zeros: ``E(x) = k (16 - k) / 2`` for a state with k ones is symmetric in k <-> 16 - k, with two modes
(all zeros, all ones) separated by a barrier of E(8) = 32 nats. Site Gibbs never leaves the start;
parallel tempering does.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.diagnostics import diagnose, report
from ebm_ppl.diagnostics.tempering import MIN_SWAP_ACCEPTANCE, tempering_health

_HEADINGS = ("<h2>Swap acceptance (parallel tempering)</h2>", "<h2>Replica trajectories (parallel tempering)</h2>")


def _machine():
    return ep.BoltzmannMachine(1.0 * (jnp.ones((16, 16)) - jnp.eye(16)), -7.5 * jnp.ones(16))


def _sample(kernel, **options):
    return ep.sample(jax.random.key(0), _machine(), kernel, num_chains=2, num_warmup=100, num_samples=100,
                     init=jnp.zeros(16), **options)


@pytest.fixture(scope="module")
def good_run():
    """4 rungs, about where warm-up's adaptation puts them (Syed et al. 2021; fixed here to compile
    less): the pairs' rejections sum to this machine's communication barrier, about 2, so each of
    the 3 pairs accepts about 1/3 (0.25 to 0.48 per chain over seeds 0-2)."""
    return _sample("parallel_tempering", betas=(0.0, 0.25, 0.4, 1.0), adapt=False)


@pytest.fixture(scope="module")
def gap_run():
    """The fixed ladder (0, 0.9, 1): a uniform draw of the bottom rung (about 8 ones, E = 32) is
    almost never accepted at beta = 0.9, where the replica sits near a mode (E about 0):
    acceptance about exp(-0.9 * 32) per swap."""
    return _sample("parallel_tempering", betas=(0.0, 0.9, 1.0), adapt=False)


def test_report_of_a_pt_run_has_the_ladder_figures(tmp_path, good_run):
    text = report(good_run, tmp_path / "pt.html", num_worst=0).read_text(encoding="utf-8")
    for heading in _HEADINGS:
        section = text.split(heading)[1].split("</section>")[0]
        assert "data:image/png;base64," in section and "<figcaption>" in section, heading
    assert "<li>parallel tempering: 4 replicas, swap acceptance min" in text
    assert "Could not draw" not in text


@pytest.mark.filterwarnings("ignore:Your data appears to have a single value")
def test_report_of_another_kernel_has_no_ladder_figures(tmp_path):
    """Site Gibbs never leaves all zeros (so its lp is constant, and ArviZ's density says so)."""
    text = report(_sample("site_gibbs"), tmp_path / "gibbs.html", num_worst=0).read_text(encoding="utf-8")
    assert not any(heading in text for heading in _HEADINGS)
    assert "parallel tempering" not in text and "Could not draw" not in text


def test_a_good_ladder_does_not_warn(good_run):
    diag = diagnose(good_run)
    health = diag.tempering
    assert health is not None and health.num_replicas == 4
    assert np.min(health.swap_acceptance) > 0.15  # about 1/3 each (see good_run)
    assert health.low_pairs == [] and health.warning() is None
    assert "parallel tempering" not in diag.verdict()
    assert all(trips > 0 for trips in health.round_trips)
    assert "parallel tempering: 4 replicas" in str(diag)
    json.dumps(diag.to_dict(), allow_nan=False)


def test_a_gap_in_the_ladder_warns(gap_run):
    diag = diagnose(gap_run)
    rates = np.asarray(diag.tempering.swap_acceptance)  # (chain, pair)
    assert np.all(rates[:, 0] < 1e-3) and np.all(rates[:, 1] > 0.5)  # beta 0 -> 0.9 is the wall
    assert diag.tempering.low_pairs == [0] and diag.tempering.round_trips == (0, 0)
    assert not diag.ok
    assert "swap acceptance < 0.05 at pair 0 (β 0–0.9)" in diag.verdict()
    assert diag.to_dict()["tempering"]["low_pairs"] == [0]


def test_one_chain_with_a_wall_warns(make_data):
    """Hand-built statistics: a pair is flagged when its mean is below the threshold in any one
    chain (the ladders are adapted per chain); round trips count the draws' only."""
    rates = np.full((2, 50, 3), 0.4)
    rates[1, :, 2] = 0.5 * MIN_SWAP_ACCEPTANCE
    trips = np.broadcast_to(np.arange(50) // 10 + 7, (2, 50))
    data = make_data(np.zeros((2, 50, 1)), swap_acceptance=rates, round_trips=trips)
    health = tempering_health(data["sample_stats"].to_dataset())
    assert health.low_pairs == [2] and health.round_trips == (4, 4) and health.betas is None
    assert "pair 2" in diagnose(data).verdict()
    assert tempering_health(make_data(np.zeros((2, 50, 1)))["sample_stats"].to_dataset()) is None
