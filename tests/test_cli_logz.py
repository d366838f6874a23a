"""``ebm-ppl logz``: forward/reverse AIS of saved models against the exact log Z, files, errors."""

from __future__ import annotations

import contextlib
import io
import json
import math

import jax
import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.cli import main
from cli_helpers import run_cli as _run
from cli_helpers import one_line_error as _one_line_error

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run_captured(argv):
    """For module-scoped fixtures, where capsys is not available."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(a) for a in argv])
    return code, stdout.getvalue(), stderr.getvalue()


def _numbers(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _numbers(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _numbers(v)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield tree


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    ep.save(folder / "rbm.ebm", ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.5))
    ep.save(folder / "wide.ebm", ep.BernoulliRBM.init(jax.random.key(1), 64, 30, scale=0.05))
    ep.save(folder / "gauss.ebm", ep.Gaussian(np.array([1.0, -2.0, 0.5], np.float32),
                                              scale_diag=np.array([1.0, 0.5, 2.0], np.float32)))
    ep.save(folder / "gbrbm.ebm", ep.GaussianBernoulliRBM.init(jax.random.key(2), 64, 4, scale=0.1))
    # 2^24 hidden states: exact log Z still enumerates (<= 2^26 terms), exact samples do not (> 2^22)
    ep.save(folder / "gbrbm_wide.ebm", ep.GaussianBernoulliRBM.init(jax.random.key(2), 64, 24, scale=0.1))
    ep.save(folder / "jem.ebm", ep.JEM.init(jax.random.key(3), 64, 3, width=8, depth=1))
    (folder / "notes.ebm").write_text("not a model\n")
    return folder


@pytest.fixture(scope="module")
def rbm_run(models):
    """Forward and reverse AIS of an RBM with 2^8 hidden states (exact log Z and exact samples)
    with the digits, written to the default folder next to the model."""
    return _run_captured(["logz", models / "rbm.ebm", "--chains", 50, "--temperatures", 1000, "--reverse",
                          "--data", "digits", "--seed", 1, "--quiet"])


def test_logz_rbm_against_the_exact_value(models, rbm_run):
    code, out, err = rbm_run
    assert code == 0, err
    folder = models / "rbm_logz"  # default: <model stem>_logz next to the model file
    assert sorted(p.name for p in folder.iterdir()) == ["ais_health.png", "logz.json"]
    assert (folder / "ais_health.png").read_bytes()[:8] == PNG_MAGIC
    results = json.loads((folder / "logz.json").read_text())
    assert all(math.isfinite(v) for v in _numbers(results))
    exact = float(ep.log_partition(ep.load(models / "rbm.ebm")))
    # The same enumeration as ep.log_partition: equal up to float32 rounding.
    assert results["exact"]["log_z"] == pytest.approx(exact, abs=1e-4)
    # 50 chains x 1000 temperatures give standard errors of about 0.07 nats; 0.5 nats is a loose
    # bound that a working AIS meets and a broken one (wrong base log Z, wrong weights) does not.
    assert results["forward"]["log_z"] == pytest.approx(exact, abs=0.5)
    assert results["reverse"]["log_z"] == pytest.approx(exact, abs=0.5)
    assert results["forward"]["bound"] == "lower"
    assert results["reverse"]["bound"] == "upper" and results["reverse"]["exact_start"] is True
    assert 1 <= results["forward"]["weight_ess"] <= 50
    assert results["data"] == {"name": "digits", "scaling": "binarized at pixel >= 8", "n_train": 1000,
                               "n_test": 447}
    sandwich = results["sandwich"]
    assert sandwich["log_z_lower"] == results["forward"]["log_z"]
    assert sandwich["log_z_upper"] == results["reverse"]["log_z"]
    x_test = ep.data.digits(binarize=True).x_test
    mean_neg_energy = float(np.mean(-np.asarray(ep.load(models / "rbm.ebm").energy(x_test))))
    assert sandwich["mean_test_log_likelihood_upper"] == pytest.approx(mean_neg_energy - results["forward"]["log_z"],
                                                                       abs=1e-4)
    assert results["exact"]["mean_test_log_likelihood"] == pytest.approx(mean_neg_energy - exact, abs=1e-4)

    for label in ("forward AIS:", "reverse AIS:", "sandwich:", "exact:", "weight ESS", "±", "50 exact samples"):
        assert label in out
    assert f"log Z = {exact:.4f}" in out
    assert str(folder / "logz.json") in out


def test_logz_gaussian_reverse_from_exact_samples(models, tmp_path, capsys):
    code, out, err = _run(capsys, ["logz", models / "gauss.ebm", "--chains", 20, "--temperatures", 100,
                                   "--reverse", "--out", tmp_path, "--quiet"])
    assert code == 0, err
    results = json.loads((tmp_path / "logz.json").read_text())
    exact = 1.5 * math.log(2 * math.pi) + math.log(1.0 * 0.5 * 2.0)  # D/2 log 2 pi + sum log sigma
    assert results["exact"] == {"log_z": pytest.approx(exact, abs=1e-5), "method": "closed form",
                                "mean_test_log_likelihood": None}
    assert results["data"] is None and results["reverse"]["exact_start"] is True
    # MALA moves on a 3-d Gaussian, 20 chains x 100 temperatures: well within a nat.
    assert results["forward"]["log_z"] == pytest.approx(exact, abs=1.0)
    assert results["reverse"]["log_z"] == pytest.approx(exact, abs=1.0)
    assert "closed form" in out and (tmp_path / "ais_health.png").read_bytes()[:8] == PNG_MAGIC


def test_logz_wide_rbm_exact_not_feasible(models, tmp_path, capsys):
    code, out, err = _run(capsys, ["logz", models / "wide.ebm", "--chains", 8, "--temperatures", 20,
                                   "--data", "digits", "--out", tmp_path])
    assert code == 0, err
    assert "exact:        not feasible (2^30 terms)" in out  # 2^min(64, 30) terms > 2^26
    assert "test LL:" in out  # forward only: the test log-likelihood from the forward estimate
    assert f"ebm-ppl logz {models / 'wide.ebm'} --reverse --data digits" in out  # next step (not --quiet)
    results = json.loads((tmp_path / "logz.json").read_text())
    assert results["exact"] == {"log_z": None, "note": "not feasible (2^30 terms)"}
    assert results["reverse"] is None and results["sandwich"] is None
    assert all(math.isfinite(v) for v in _numbers(results))


def test_logz_real_model_reverse_from_exact_samples(models, tmp_path, capsys):
    """A Gaussian-Bernoulli RBM with 4 hidden units draws exact samples (enumerating its 16 hidden
    states), so reverse AIS needs no data and its estimate is an upper bound in expectation."""
    code, out, err = _run(capsys, ["logz", models / "gbrbm.ebm", "--chains", 4, "--temperatures", 10,
                                   "--reverse", "--out", tmp_path, "--quiet"])
    assert code == 0, err
    results = json.loads((tmp_path / "logz.json").read_text())
    assert results["reverse"]["bound"] == "upper" and results["reverse"]["exact_start"] is True


def test_logz_real_model_reverse_from_scaled_digits(models, tmp_path, capsys):
    code, out, err = _run(capsys, ["logz", models / "gbrbm_wide.ebm", "--chains", 4, "--temperatures", 10,
                                   "--reverse", "--data", "digits", "--out", tmp_path, "--quiet"])
    assert code == 0, err
    assert "started from 4 test images (exact samples would enumerate 2^24 states)" in out
    assert "RAISE:" in out
    results = json.loads((tmp_path / "logz.json").read_text())
    assert math.isfinite(results["reverse"]["raise_mean_log_likelihood"])
    assert results["reverse"]["raise_mean_log_likelihood"] == pytest.approx(
        float(out.split("RAISE:")[1].split()[0]), abs=1e-4)
    assert results["data"]["scaling"] == "scaled to [-1, 1]"
    assert results["reverse"]["bound"] == "approximate upper" and results["reverse"]["exact_start"] is False
    assert results["sandwich"]["log_z_upper"] == results["reverse"]["log_z"]
    assert results["exact"]["method"] == "enumeration"  # 2^4 hidden states
    assert (tmp_path / "ais_health.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    "model, extra, fragment",
    [
        ("nope.ebm", [], "no such model file"),
        ("notes.ebm", [], "not an ebm_ppl model file"),
        ("gauss.ebm", ["--data", "digits"], "the digits are 64 pixels"),
        ("gauss.ebm", ["--data", "mnist"], "invalid choice: 'mnist'"),
        ("gbrbm_wide.ebm", ["--reverse"], "exact samples would enumerate 2^24 states"),
        ("jem.ebm", ["--reverse"], "no exact sampler for jem"),
        ("rbm.ebm", ["--chains", "1"], "--chains: must be an integer >= 2"),
        ("rbm.ebm", ["--temperatures", "9"], "--temperatures: must be an integer >= 10"),
    ],
)
def test_logz_errors_are_one_line(models, tmp_path, capsys, model, extra, fragment):
    out = tmp_path / "never"
    code, stdout, err = _run(capsys, ["logz", models / model, *extra, "--out", out])
    _one_line_error(code, stdout, err, fragment)
    assert not out.exists()  # refused before any work or any file


def test_logz_help_has_examples(capsys):
    code, out, _ = _run(capsys, ["logz", "--help"])
    assert code == 0
    assert "ebm-ppl logz " in out.split("example:")[1]
    for option in ("--reverse", "--data", "--seed", "--chains", "--temperatures", "--out"):
        assert option in out
