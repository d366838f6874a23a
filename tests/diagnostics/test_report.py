"""report(): one self-contained HTML file, written atomically, with the table and embedded PNGs.

HTML validity is checked with the standard library's parser: every non-void tag that opens is
closed in order, and nothing is loaded from outside the file (no http(s) URLs, no src that is not a
data URI). Each embedded PNG is decoded and must start with the PNG signature.
"""

import base64
import os
import re
from html.parser import HTMLParser

import matplotlib
import numpy as np
import pytest

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
    assert len(pngs) >= 4  # trace/rank, ESS, autocorrelation, sampler statistics
    assert '<table class="diagnostics">' in text
    for column in ("ess_bulk", "ess_tail", "rhat", "mcse_mean"):
        assert f">{column}<" in text
    assert ">energy<" in text and ">x[2]<" in text
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
