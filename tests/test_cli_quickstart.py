"""``ebm-ppl quickstart --fast`` end to end: printed summary, report.html, summary.json, saved models,
and the reuse of an earlier jem.ebm trained with the same settings.

One module-scoped pair of runs (the second reuses the first's JEM) serves every test here; --fast
keeps each run to tens of seconds on two CPU cores, most of it compilation.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re

import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.cli import quickstart as cli_quickstart
from ebm_ppl.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _numbers(tree, path="summary"):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


def _quickstart(argv):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(a) for a in argv])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two --fast runs into the same folder: the first quiet, the second with hints and reusing jem.ebm."""
    out = tmp_path_factory.mktemp("quickstart") / "run"  # not there yet: quickstart creates it
    first = _quickstart(["quickstart", "--fast", "--quiet", "--out", out])
    jem_bytes = (out / "jem.ebm").read_bytes() if (out / "jem.ebm").exists() else None
    summary_first = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    second = _quickstart(["quickstart", "--fast", "--out", out])
    return {"out": out, "first": first, "second": second, "jem_bytes": jem_bytes, "summary_first": summary_first}


@pytest.fixture(scope="module")
def summary(runs):
    return json.loads((runs["out"] / "summary.json").read_text())


def test_both_runs_succeed_and_print_the_summary(runs):
    for name in ("first", "second"):
        code, out, err = runs[name]
        assert code == 0, err
        assert "Traceback" not in err
        assert all(line.startswith("ebm-ppl: warning: ") for line in err.splitlines()), err
        for fragment in ("Bernoulli RBM 64x16", "forward AIS", "reverse AIS", "sandwich gap", "exact",
                         "independent pixels", "test accuracy", "MALA (T = 1)", "Langevin (T = 5e-05)",
                         "T = sigma^2/(2 alpha) = 5e-05", "Stage times:", "total", "report.html"):
            assert fragment in out, (name, fragment)
        stage_lines = out.split("Stage times:")[1].split("\n\n")[0].strip().splitlines()
        assert len(stage_lines) == 12  # eleven stages and the total
        assert all(re.search(r"\d+\.\d s$", line) for line in stage_lines)
    assert "Next steps" not in runs["first"][1]  # --quiet drops the hints
    second = runs["second"][1]
    assert "Next steps" in second and "ebm-ppl sample" in second and "ebm-ppl train jem" in second


def test_second_run_reuses_the_jem(runs, summary):
    out = runs["out"]
    assert "loaded from" in runs["second"][1] and "loaded from" not in runs["first"][1]
    assert runs["summary_first"]["jem"]["reused"] is False
    assert summary["jem"]["reused"] is True
    assert (out / "jem.ebm").read_bytes() == runs["jem_bytes"]  # not rewritten
    assert summary["jem"]["test_accuracy"] == runs["summary_first"]["jem"]["test_accuracy"]
    assert summary["jem"]["epochs"] == runs["summary_first"]["jem"]["epochs"]  # history kept in the file


def test_summary_numbers_are_finite_and_complete(summary):
    assert summary["command"] == "quickstart" and summary["fast"] is True and summary["seed"] == 0
    assert (summary["data"]["n_train"], summary["data"]["n_val"], summary["data"]["n_test"]) == (1000, 350, 447)
    numbers = dict(_numbers(summary))
    assert numbers and all(math.isfinite(v) for v in numbers.values())
    rbm = summary["rbm"]
    for key in ("exact", "forward_ais", "reverse_ais"):
        assert rbm["log_z"][key] is not None
    for key in ("log_z", "stderr", "weight_ess"):
        assert rbm["log_z"]["forward_ais"][key] is not None and rbm["log_z"]["reverse_ais"][key] is not None
    assert 0.0 <= summary["jem"]["test_accuracy"] <= 1.0
    tempering = rbm["tempering"]  # parallel tempering beside plain Gibbs in the RBM figure
    assert tempering["num_replicas"] == 4 and len(tempering["swap_acceptance"]) == 3
    assert 0.0 < tempering["min_swap_acceptance"] <= 1.0 and tempering["betas"][-1] == 1.0
    assert set(summary["samplers"]) == {"mala", "langevin", "nuts_box"}
    for sampler in summary["samplers"].values():
        assert sampler["diagnostics"]["table"][0]["quantity"] == "lp"
        assert sampler["num_chains"] == 4
    assert summary["samplers"]["langevin"]["temperature"] == pytest.approx(5e-5)
    assert summary["samplers"]["nuts_box"]["max_abs_x"] <= 1.0  # NUTS on the box stays in it
    assert summary["stage_seconds"]["total (after start-up and imports)"] > 0


def test_exact_log_z_lies_between_the_ais_estimates(summary):
    """Forward AIS is a lower bound and reverse AIS from exact samples an upper bound in expectation;
    with 300 temperatures on a barely trained RBM both are within a few standard errors of exact."""
    lz = summary["rbm"]["log_z"]
    exact, fwd, rev = lz["exact"], lz["forward_ais"], lz["reverse_ais"]
    assert fwd["bound"] == "lower" and rev["bound"] == "upper"
    assert abs(fwd["log_z"] - exact) < 4 * fwd["stderr"] + 0.05
    assert abs(rev["log_z"] - exact) < 4 * rev["stderr"] + 0.05
    assert fwd["log_z"] - 4 * fwd["stderr"] - 0.05 <= exact <= rev["log_z"] + 4 * rev["stderr"] + 0.05
    sandwich = summary["rbm"]["sandwich"]
    assert sandwich["gap"] == pytest.approx(rev["log_z"] - fwd["log_z"])
    assert sandwich["gap"] > -4 * sandwich["gap_stderr"] - 0.05


def test_independent_pixel_log_likelihood_matches_the_closed_form(summary):
    # b_i = logit((n_i + 1) / (N + 2)) (Salakhutdinov & Murray 2008); recomputed in float64.
    data = ep.data.digits(binarize=True)
    x = data.x_train.astype(np.float64)
    p = (x.sum(0) + 1.0) / (len(x) + 2.0)
    xt = data.x_test.astype(np.float64)
    ll = np.mean(xt @ np.log(p) + (1.0 - xt) @ np.log1p(-p))
    assert summary["rbm"]["independent_pixels_test_log_likelihood"] == pytest.approx(ll, abs=1e-3)
    rbm = summary["rbm"]
    assert rbm["test_bits_per_pixel"] == pytest.approx(-rbm["test_log_likelihood"] / (64 * math.log(2.0)))


def test_report_html_is_self_contained_with_tables_and_figures(runs, summary):
    page = (runs["out"] / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for fragment in ("forward AIS", "reverse AIS from exact samples", "Sandwich", "minus exact",
                     "independent pixels", "Test accuracy", 'class="diagnostics"', "ess_bulk", "rhat",
                     'href="mala_report.html"', 'href="langevin_report.html"', 'href="nuts_box_report.html"',
                     "T = 5e-05", "Mean test log-likelihood of the JEM"):
        assert fragment in page, fragment
    assert f"{summary['rbm']['log_z']['exact']:.4f}" in page
    assert f"{summary['jem']['test_accuracy']:.4f}" in page
    # rbm.png, jem_fig6_2.png and the three sample grids, inline; nothing fetched from elsewhere
    assert page.count('src="data:image/png;base64,') == 5
    assert not re.search(r'src="(?!data:)', page)


def test_files_are_written_and_load(runs):
    out = runs["out"]
    for name in cli_quickstart.FILES.values():
        assert (out / name).is_file(), name
    for name in ("rbm.png", "jem_fig6_2.png", "mala_samples.png", "langevin_samples.png", "nuts_box_samples.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    rbm = ep.load(out / "rbm.ebm")
    assert isinstance(rbm, ep.BernoulliRBM) and (rbm.n_visible, rbm.n_hidden) == (64, 16)
    jem = ep.load(out / "jem.ebm")
    assert isinstance(jem, ep.JEM) and jem.num_classes == 10
    settings = ep.io.load_metadata(out / "jem.ebm")["user"]["quickstart_settings"]
    assert settings["fast"] is True and settings["architecture"] == "64-32-10 ELU"
    for name in ("mala_report.html", "langevin_report.html", "nuts_box_report.html"):
        assert "<html" in (out / name).read_text(encoding="utf-8")
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_reuse_only_with_the_same_settings(runs):
    path = runs["out"] / "jem.ebm"
    same = cli_quickstart._jem_settings(cli_quickstart.FAST, 0, True)
    model, history, where = cli_quickstart._reuse_jem(path, same)
    assert isinstance(model, ep.JEM) and where == path and history.records
    for other in (cli_quickstart._jem_settings(cli_quickstart.FAST, 1, True),  # another seed
                  cli_quickstart._jem_settings(cli_quickstart.DEFAULT, 0, False)):  # the full budget
        assert cli_quickstart._reuse_jem(path, other) == (None, None, None)
    assert cli_quickstart._reuse_jem(runs["out"] / "missing.ebm", same) == (None, None, None)


def test_default_budget_is_the_chapters_setting():
    d = cli_quickstart.DEFAULT
    assert (d.jem_width, d.jem_depth, d.jem_langevin_steps) == (512, 3, 20)
    assert (d.rbm_chains, d.ais_chains, d.sample_chains) == (100, 100, 4)
    assert cli_quickstart.LANGEVIN_TEMPERATURE == pytest.approx(5e-5)


def test_the_jem_log_likelihood_on_the_box_is_reported_with_its_bounds(summary):
    """Issue 17: the JEM restricted to [-1, 1]^64 is a proper density; forward AIS and reverse AIS
    from test images bracket its mean test log-likelihood (here with a tiny --fast budget)."""
    box = summary["jem"]["box"]
    assert box["support"] == "box(-1, 1)" and box["reverse"]["bound"] == "approximate upper"
    assert box["uniform_on_box"] == pytest.approx(-64 * math.log(2.0))
    for key in ("test_log_likelihood_upper", "test_log_likelihood_raise"):
        assert math.isfinite(box[key])
