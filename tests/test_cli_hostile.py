"""Issue 15 through the command line: requests that cannot fit, an --out folder a failed command
created, ``train --resume`` without the settings to check, and ``train.json`` after Ctrl-C."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import ebm_ppl as ep
from cli_helpers import one_line_error, run_cli


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    ep.save(folder / "rbm.ebm", ep.BernoulliRBM.init(jax.random.key(0), 64, 4, scale=0.5))
    ep.save(folder / "gauss.ebm", ep.Gaussian(np.zeros(3, np.float32)))
    return folder


# -- requests that cannot fit, and the --out folder they leave behind ------------------------------------

@pytest.mark.parametrize("argv, fragment", [
    (["sample", "rbm.ebm", "--chains", 200_000_000], "sample: the request needs about"),
    (["sample", "gauss.ebm", "--kernel", "mala", "--samples", 10**12], "sample: the request needs about"),
    (["sample", "gauss.ebm", "--kernel", "mala", "--chains", 2, "--samples", 1000, "--max-memory", 1e-6],
     "more than the limit of 1.05 KiB; ask for less, or raise the limit with max_memory= (bytes; "
     "ebm-ppl's --max-memory, GiB)"),
    (["logz", "rbm.ebm", "--temperatures", 10**10], "ais: the request needs about"),
    (["logz", "gauss.ebm", "--chains", 10**11, "--temperatures", 100], "ais: the request needs about"),
])
def test_a_request_that_cannot_fit_is_one_line_and_leaves_no_empty_out(models, tmp_path, capsys, argv, fragment):
    out = tmp_path / "new" / "deeper"
    code, stdout, err = run_cli(capsys, [argv[0], models / argv[1], *argv[2:], "--out", out])
    assert code == 2 and "Traceback" not in err
    assert err.startswith("ebm-ppl: error: ") and err.count("\n") == 1 and fragment in err, err
    assert not (tmp_path / "new").exists()  # both folders the command created are gone again


def test_a_failed_command_keeps_a_folder_it_did_not_create(models, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    code, _, err = run_cli(capsys, ["sample", models / "rbm.ebm", "--chains", 200_000_000, "--out", out])
    assert code == 2 and out.is_dir(), err
    (out / "notes.txt").write_text("keep me")
    nested = out / "sub"
    code, _, err = run_cli(capsys, ["sample", models / "rbm.ebm", "--chains", 200_000_000, "--out", nested])
    assert code == 2 and not nested.exists() and (out / "notes.txt").read_text() == "keep me"


def test_max_memory_raises_the_limit_and_is_checked(models, tmp_path, capsys):
    code, out, err = run_cli(capsys, ["sample", models / "gauss.ebm", "--kernel", "mala", "--chains", 2,
                                      "--warmup", 2, "--samples", 4, "--max-memory", 0.5, "--quiet",
                                      "--out", tmp_path / "ok"])
    assert code == 0 and (tmp_path / "ok" / "samples.nc").is_file(), err
    for bad in ("0", "nan", "-1", "lots"):
        code, out, err = run_cli(capsys, ["logz", models / "rbm.ebm", "--max-memory", bad])
        one_line_error(code, out, err, "--max-memory")


# -- train --resume needs the settings it resumes --------------------------------------------------------

@pytest.mark.parametrize("record, fragment", [
    (None, "train.json is missing"),
    ("{not json", "train.json is damaged"),
    ('{"command": "train", "status": "running"}', "train.json is damaged (no settings in it)"),
    ('["a list"]', "train.json is damaged"),
])
def test_resume_refuses_when_the_settings_cannot_be_checked(tmp_path, capsys, record, fragment):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.ckpt").write_bytes(b"a checkpoint")
    if record is not None:
        (out / "train.json").write_text(record)
    code, stdout, err = run_cli(capsys, ["train", "rbm", "--hidden", 4, "--epochs", 1, "--resume", "--out", out])
    one_line_error(code, stdout, err, fragment)
    assert "cannot be checked" in err
    assert (out / "checkpoint.ckpt").read_bytes() == b"a checkpoint"  # nothing was overwritten


# -- train.json says how a run ended -----------------------------------------------------------------------

@pytest.mark.parametrize("error, code, status, fragment", [
    (KeyboardInterrupt(), 130, "interrupted", "interrupted (Ctrl-C)"),
    (ValueError("the data ran out"), 2, "failed", "ValueError: the data ran out"),
])
def test_train_json_records_an_interrupted_or_failed_run(tmp_path, capsys, monkeypatch, error, code, status,
                                                         fragment):
    def fit(*args, **kwargs):
        (kwargs["checkpoint_dir"] / "checkpoint.ckpt").write_bytes(b"epoch 0")
        raise error

    monkeypatch.setattr(ep, "fit", fit)
    out = tmp_path / "run"
    got, _, err = run_cli(capsys, ["train", "rbm", "--hidden", 4, "--epochs", 1, "--out", out])
    assert got == code, err
    record = json.loads((out / "train.json").read_text())
    assert record["status"] == status and fragment in record["message"], record
    assert "--resume continues from checkpoint.ckpt" in record["message"]
    assert record["settings"]["hidden"] == 4
