"""report(): one self-contained HTML file, written atomically, with the table and embedded PNGs.

HTML validity is checked with the standard library's parser: every non-void tag that opens is
closed in order, and nothing is loaded from outside the file (no http(s) URLs, no src that is not a
data URI). Each embedded PNG is decoded and must start with the PNG signature.
"""

import base64
import os
import re
from html.parser import HTMLParser

import arviz as az
import arviz_plots
import jax
import matplotlib
import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.diagnostics import report

_VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}
_PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.sources = [], [], []

    def handle_starttag(self, tag, attrs):
        self.sources += [value for name, value in attrs if name in ("src", "href")]
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _check_html(text):
    assert text.startswith("<!DOCTYPE html>")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert all(s.startswith("data:image/png;base64,") for s in checker.sources), checker.sources
    assert "http://" not in text and "https://" not in text
    pngs = _PNG.findall(text)
    assert pngs
    for png in pngs:
        assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    return pngs


def _gaussian_data(make_data, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 300, dim))
    div = np.zeros((4, 300), bool)
    div[1, [5, 50]] = True
    return make_data(x, acceptance_rate=rng.uniform(0.7, 0.95, (4, 300)), diverging=div,
                     step_size=np.full((4, 300), 0.3))


def test_report_is_self_contained_html(tmp_path, make_data):
    out = report(_gaussian_data(make_data), tmp_path / "run.html", title="My <run>")
    assert out == tmp_path / "run.html" and out.is_file()
    text = out.read_text(encoding="utf-8")
    pngs = _check_html(text)
    assert len(pngs) == 7  # trace, rank, ESS, autocorrelation, pair, densities, sampler statistics
    assert '<table class="diagnostics">' in text
    for column in ("ess_bulk", "ess_tail", "rhat", "mcse_mean"):
        assert f">{column}<" in text
    assert ">lp<" in text and ">x[2]<" in text
    assert "My &lt;run&gt;" in text  # the title is escaped
    assert "Divergent transitions: 2" in text and "Acceptance rate per chain" in text
    assert "Samples as images" not in text  # 3 coordinates are not an image
    assert "Could not draw" not in text


def test_report_leaves_pyplot_and_backend_alone(tmp_path, make_data):
    import matplotlib.pyplot as plt

    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    report(_gaussian_data(make_data), tmp_path / "run.html")
    assert matplotlib.get_backend() == backend and plt.get_fignums() == figures


def test_binary_image_run_has_image_grid(tmp_path, rbm_run):
    text = report(rbm_run, tmp_path / "rbm.html").read_text(encoding="utf-8")
    pngs = _check_html(text)
    for heading in ("Samples as images", "Draws across time", "Per-pixel diagnostics"):
        assert f"<h2>{heading}</h2>" in text
    assert len(pngs) >= 7
    assert "x (64 coordinates)" in text  # the summary row instead of 64 rows up front
    assert "All 65 quantities" in text  # the full table is still there, folded
    assert "block_gibbs" in text and "Could not draw" not in text


def test_image_shape_argument(tmp_path, make_data):
    x = (np.random.default_rng(1).random((2, 50, 12)) < 0.5).astype(float)
    data = make_data(x)
    text = report(data, tmp_path / "a.html", image_shape=(3, 4)).read_text(encoding="utf-8")
    assert "<h2>Samples as images</h2>" in text
    with pytest.raises(ValueError, match="image_shape"):
        report(data, tmp_path / "b.html", image_shape=(5, 5))
    assert not (tmp_path / "b.html").exists()


def test_report_writes_atomically(tmp_path, make_data, monkeypatch):
    data = _gaussian_data(make_data)
    target = tmp_path / "nested" / "run.html"
    report(data, target)
    assert os.listdir(target.parent) == ["run.html"]  # no temporary file left behind
    before = target.read_bytes()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        report(data, target)
    monkeypatch.undo()
    assert os.listdir(target.parent) == ["run.html"]  # the failed write cleaned up after itself
    assert target.read_bytes() == before  # and the old report is intact

    report(_gaussian_data(make_data, seed=1), target)  # overwriting works
    assert target.read_bytes() != before and os.listdir(target.parent) == ["run.html"]


def test_report_rejects_a_folder(tmp_path, make_data):
    with pytest.raises(IsADirectoryError):
        report(_gaussian_data(make_data), tmp_path)


_ARVIZ_SECTIONS = {  # heading -> the arviz_plots function that draws it
    "Trace": "plot_trace_dist", "Rank plots": "plot_rank", "Effective sample size": "plot_ess_evolution",
    "Autocorrelation": "plot_autocorr", "Energy and BFMI": "plot_energy", "Pair plot": "plot_pair",
    "Posterior densities": "plot_dist", "Sampler statistics": "plot_trace",
}


def test_sections_are_drawn_by_arviz(tmp_path, make_data, monkeypatch):
    """An HMC-shaped run (Hamiltonian ``energy``, divergences): every chain plot is an ArviZ plot,
    each function called (spied on), each section present with its embedded PNG."""
    calls = []
    for name in set(_ARVIZ_SECTIONS.values()) | {"plot_ess"}:
        original = getattr(arviz_plots, name)
        monkeypatch.setattr(arviz_plots, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    data = _gaussian_data(make_data)
    energy = -data.sample_stats["lp"].values + np.random.default_rng(2).chisquare(3, (4, 300)) / 2
    data["sample_stats"] = data["sample_stats"].to_dataset().assign(energy=(("chain", "draw"), energy))
    text = report(data, tmp_path / "run.html").read_text(encoding="utf-8")
    _check_html(text)
    assert set(calls) == set(_ARVIZ_SECTIONS.values()) | {"plot_ess"}
    for heading, function in _ARVIZ_SECTIONS.items():
        section = text.split(f"<h2>{heading}</h2>")[1].split("</section>")[0]
        assert "data:image/png;base64," in section and f"arviz_plots.{function}" in section, heading
    assert "E-BFMI per chain" in text and "E-BFMI &gt;= 0.3" in text  # Stan's thresholds, stated
    assert "Could not draw" not in text


def test_no_energy_plot_without_a_hamiltonian(tmp_path, rbm_run):
    text = report(rbm_run, tmp_path / "rbm.html").read_text(encoding="utf-8")
    assert "<h2>Energy and BFMI</h2>" not in text and "E-BFMI per chain" not in text
    assert "<h2>R-hat and ESS of every coordinate</h2>" in text  # 64 coordinates: their distribution
    assert "<h2>Pair plot</h2>" not in text  # 0/1 pixels have no pair plot or densities


@pytest.mark.parametrize("kind", ["binary", "real"])
def test_report_of_a_64_dimensional_run_is_under_1_mb(tmp_path, make_data, kind):
    """4 chains x 1000 draws of 64 coordinates (an 8x8 image): block Gibbs on an RBM, or real
    draws with divergences (every plot: trace, pairs and densities of the worst, images)."""
    if kind == "binary":
        rbm = ep.BernoulliRBM.init(jax.random.key(0), 64, 16, scale=0.5)
        data = ep.sample(jax.random.key(1), rbm, num_chains=4, num_warmup=100, num_samples=1000)
    else:
        rng = np.random.default_rng(0)
        div = rng.random((4, 1000)) < 0.002
        data = make_data(rng.normal(size=(4, 1000, 64)), acceptance_rate=rng.uniform(0.6, 1.0, (4, 1000)),
                         diverging=div, energy=rng.normal(size=(4, 1000)) + 40)
    path = report(data, tmp_path / "run.html")
    text = path.read_text(encoding="utf-8")
    assert len(_check_html(text)) >= 8 and "Could not draw" not in text
    assert path.stat().st_size < 1_000_000, path.stat().st_size


def test_reports_errors_name_report_not_diagnose(tmp_path):
    with pytest.raises(TypeError, match="^report expects an ArviZ xarray.DataTree"):
        report(None, tmp_path / "r.html")
    with pytest.raises(ValueError, match="^report: the data have no 'posterior' group"):
        report(az.from_dict({"sample_stats": {"lp": np.zeros((2, 10))}}), tmp_path / "r.html")
