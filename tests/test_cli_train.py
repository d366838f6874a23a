"""``ebm-ppl train``: each model type for an epoch, --resume, divergence, and one-line usage errors.

Tiny models (4 hidden units, a 64-16-16-16-10 JEM) and single epochs keep every run to seconds.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl.cli import main
from cli_helpers import run_cli as _run
from cli_helpers import one_line_error as _one_line_error

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_run(out_dir, family, epochs):
    model = ep.load(out_dir / "model.ebm")
    assert isinstance(model, family)
    assert (out_dir / "figure.png").read_bytes()[:8] == PNG_MAGIC
    assert (out_dir / "checkpoint.ckpt").is_file()
    record = json.loads((out_dir / "train.json").read_text())
    assert record["status"] == "completed" and record["epochs"] == epochs
    assert len(record["history"]) == epochs
    assert ep.io.load_metadata(out_dir / "model.ebm")["user"]["settings"] == record["settings"]
    return model, record


@pytest.fixture(scope="module")
def rbm_run(tmp_path_factory):
    """One epoch of a 64x4 RBM, then --resume to two epochs; outputs captured per call."""
    out_dir = tmp_path_factory.mktemp("train") / "rbm"
    runs = []
    for argv in (["--epochs", 1], ["--epochs", 2, "--resume"]):
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main([str(a) for a in ["train", "rbm", "--hidden", 4, "--out", out_dir, *argv]])
        runs.append((code, stdout.getvalue(), stderr.getvalue(),
                     json.loads((out_dir / "train.json").read_text())))
    return out_dir, runs


def test_rbm_trains_and_reports(rbm_run):
    out_dir, runs = rbm_run
    code, out, err, record = runs[0]
    assert code == 0 and err == "", err
    assert record["settings"]["lr"] == 0.1 and record["settings"]["k"] == 1 and record["settings"]["persistent"]
    assert record["epochs"] == 1
    for fragment in ("PCD-1 (100 chains)", "SGD (momentum 0.5) learning rate 0.1", "best epoch 0",
                     "val_log_likelihood", "Exact log Z", "independent pixels", "model.ebm", "figure.png",
                     "Next steps", "--resume"):
        assert fragment in out, fragment
    assert np.isfinite(record["results"]["test_log_likelihood"])


def test_resume_continues_the_run(rbm_run):
    out_dir, runs = rbm_run
    (_, _, _, first), (code, out, err, second) = runs
    assert code == 0 and err == "", err
    assert "resuming from checkpoint.ckpt after 1 completed epochs" in out
    model, record = _check_run(out_dir, ep.BernoulliRBM, 2)
    assert model.n_hidden == 4
    assert second["history"][0] == first["history"][0]  # epoch 0 restored, not retrained
    assert second["resumed_after_epochs"] == 1


def test_resume_refuses_other_settings(rbm_run, capsys):
    out_dir, _ = rbm_run
    code, out, err = _run(capsys, ["train", "rbm", "--hidden", 4, "--lr", 0.05, "--epochs", 3, "--out", out_dir,
                                   "--resume"])
    _one_line_error(code, out, err, "lr 0.1 (now 0.05)")


def test_resume_with_fewer_epochs_is_refused_before_train_json_is_touched(rbm_run, capsys):
    """fit refused it, but only after train.json had been rewritten as a failed run of 1 epoch:
    the finished run's record (history, results) was gone."""
    out_dir, _ = rbm_run
    before = (out_dir / "train.json").read_text()
    code, out, err = _run(capsys, ["train", "rbm", "--hidden", 4, "--epochs", 1, "--out", out_dir, "--resume"])
    _one_line_error(code, out, err, "already holds 2 epochs, more than --epochs 1; pass --epochs 2 or more")
    assert (out_dir / "train.json").read_text() == before


def test_grbm_keeps_sigma_fixed(tmp_path, capsys):
    code, out, err = _run(capsys, ["train", "grbm", "--epochs", 1, "--hidden", 4, "--out", tmp_path, "--quiet"])
    assert code == 0, err
    assert "Adam learning rate 0.003" in out and "Exact log Z" in out and "Next steps" not in out
    model, record = _check_run(tmp_path, ep.GaussianBernoulliRBM, 1)
    np.testing.assert_allclose(np.asarray(model.sigma), 0.4, rtol=1e-6)
    assert record["settings"]["sigma"] == 0.4


def test_subspace_rbm(tmp_path, capsys):
    code, out, err = _run(capsys, ["train", "subspace-rbm", "--epochs", 1, "--gates", 2, "--subspace", 2, "--cd",
                                   "--out", tmp_path, "--quiet"])
    assert code == 0, err
    assert "2 gates x 2 subspace units" in out and "CD-1" in out
    model, record = _check_run(tmp_path, ep.SubspaceRBM, 1)
    assert (model.n_gates, model.n_subspace) == (2, 2) and record["settings"]["persistent"] is False


def test_jem_with_replay_buffer(tmp_path, capsys):
    code, out, err = _run(capsys, ["train", "jem", "--epochs", 1, "--hidden", 16, "--k", 2, "--batch-size", 100,
                                   "--replay-buffer", "--out", tmp_path, "--quiet"])
    assert code == 0, err
    assert "64-16-16-16-10 ELU" in out and "replay buffer" in out and "Test accuracy" in out
    model, record = _check_run(tmp_path, ep.JEM, 1)
    assert 0.0 <= record["results"]["test_accuracy"] <= 1.0
    assert record["settings"]["persistent"] is True and record["monitor"] == "val_accuracy"


def test_class_rbm_reports_accuracy_and_the_exact_pixel_log_likelihood(tmp_path, capsys):
    code, out, err = _run(capsys, ["train", "class-rbm", "--epochs", 2, "--hidden", 6, "--objective", "hybrid",
                                   "--alpha", 0.1, "--out", tmp_path, "--quiet"])
    assert code == 0, err
    assert "64 pixels + 10 labels x 6 hidden units" in out and "hybrid objective" in out and "weight 0.1" in out
    assert "Test accuracy" in out and "Exact log Z" in out
    model, record = _check_run(tmp_path, ep.ClassRBM, 2)
    assert record["monitor"] == "val_accuracy" and record["settings"]["objective"] == "hybrid"
    digits = ep.data.digits(binarize=True)
    accuracy = float(np.mean(np.asarray(model.predict(digits.x_test)) == digits.y_test))
    assert record["results"]["test_accuracy"] == pytest.approx(accuracy)
    assert record["results"]["test_log_likelihood"] < 0


def test_divergence_warns_in_one_line_and_keeps_the_last_good_model(tmp_path, capsys):
    code, out, err = _run(capsys, ["train", "rbm", "--epochs", 1, "--hidden", 4, "--lr", 1e30, "--out", tmp_path,
                                   "--quiet"])
    assert code == 0
    assert err.startswith("ebm-ppl: warning: training diverged") and err.count("\n") == 1, err
    assert "DIVERGED" in out
    assert isinstance(ep.load(tmp_path / "model.ebm"), ep.BernoulliRBM)
    assert json.loads((tmp_path / "train.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "rbm"], "--out"),
        (["train", "rbm", "--out", "{tmp}", "--gates", 3], "--gates applies to subspace-rbm"),
        (["train", "subspace-rbm", "--out", "{tmp}", "--hidden", 3], "--hidden applies to"),
        (["train", "jem", "--out", "{tmp}", "--cd"], "--cd applies to the RBMs"),
        (["train", "rbm", "--out", "{tmp}", "--replay-buffer"], "--replay-buffer applies to jem"),
        (["train", "rbm", "--out", "{tmp}", "--objective", "hybrid"], "--objective applies to class-rbm"),
        (["train", "class-rbm", "--out", "{tmp}", "--cd"], "--cd applies to rbm, grbm, subspace-rbm"),
        (["train", "class-rbm", "--out", "{tmp}", "--alpha", -1], "--alpha"),
        (["train", "rbm", "--out", "{tmp}", "--cd", "--persistent"], "not allowed with"),
        (["train", "rbm", "--out", "{tmp}", "--epochs", 0], "--epochs"),
        (["train", "rbm", "--out", "{tmp}", "--lr", -1], "--lr"),
        (["train", "rbm", "--out", "{tmp}", "--batch-size", 5000], "between 1 and 1000"),
        (["train", "rbm", "--out", "{tmp}", "--data", "mnist"], "invalid choice"),
        (["train", "gan", "--out", "{tmp}"], "invalid choice"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(tmp_path, capsys, argv, fragment):
    argv = [str(tmp_path / "run") if a == "{tmp}" else a for a in argv]
    _one_line_error(*_run(capsys, argv), fragment)
    assert not (tmp_path / "run").exists()  # refused before creating anything
