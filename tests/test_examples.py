"""The examples run end to end in their fast (--smoke) mode and do what they claim."""

import importlib.util
import json
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_inpainting_keeps_observed_pixels_and_converges(tmp_path):
    assert _load("inpainting").main(["--out", str(tmp_path), "--smoke"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    # the observation noise is 0.05: the posterior mean of an observed pixel stays within 3 sigma
    assert summary["observed_max_abs_error"] < 0.15
    assert summary["max_rhat"] < 1.01 and summary["divergences"] == 0
    assert summary["hidden_mean_sd"] > 0.1  # the hidden half keeps the prior's uncertainty
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and (tmp_path / "inpainting.png").stat().st_size > 1000


@pytest.mark.slow
def test_denoising_runs_numpyros_discrete_gibbs_with_an_rbm_prior(tmp_path):
    assert _load("denoising").main(["--out", str(tmp_path), "--smoke"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["noisy_errors"] == summary["flipped_pixels"]
    assert 0.0 < summary["rho_posterior_mean"] < 0.5
    assert summary["denoised_errors"] <= summary["noisy_errors"] + 2
    assert (tmp_path / "report.html").exists() and (tmp_path / "denoising.png").exists()


@pytest.mark.slow
def test_jem_head_compares_the_bayesian_and_point_heads(tmp_path):
    assert _load("jem_head").main(["--out", str(tmp_path), "--smoke"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    point, bayes = summary["heads"]["point"], summary["heads"]["bayesian"]
    assert bayes["accuracy"] > 0.8 and point["accuracy"] > 0.5
    assert 0 <= bayes["ece"] < point["ece"]  # the posterior head is the better calibrated one
    # JEM's generatively trained energy tells uniform noise from digits
    assert point["ood_auroc"]["uniform noise"] > 0.9
    assert set(point["ood_auroc"]) == {"uniform noise", "pixel-shuffled", "inverted"}
    assert summary["nuts"]["divergences"] == 0
