"""The ``ebm-ppl`` command: quickstart's figures and files, help, one-line errors, the table."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import ebm_ppl as ep
from ebm_ppl import cli
from ebm_ppl.cli import COMMANDS, main


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _finite_numbers(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _finite_numbers(v)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield tree


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    """One quickstart run with 8 hidden units, shared by the tests that inspect its results.

    Module-scoped, so output is captured by redirecting stdout/stderr (capsys is per test).
    """
    out_dir = tmp_path_factory.mktemp("quickstart") / "run"  # not yet there: quickstart creates it
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["quickstart", "--out", str(out_dir), "--quiet", "--n-hidden", "8"])
    return code, stdout.getvalue(), stderr.getvalue(), out_dir


def test_quickstart_succeeds_and_prints_table(quickstart_run):
    code, out, err, out_dir = quickstart_run
    assert code == 0
    assert err == ""  # --quiet: no progress bar; no warnings either
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("model"))
    for column in ("log Z", "closed form", "test LL", "test NLL"):
        assert column in header
    assert any(line.startswith("base_rate") for line in lines)
    assert any(line.startswith("rbm") for line in lines)
    assert str(out_dir / "summary.json") in out
    assert "Next steps" not in out  # --quiet drops the hints


def test_quickstart_summary_figures(quickstart_run):
    _, _, _, out_dir = quickstart_run
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["command"] == "quickstart"
    assert summary["n_hidden"] == 8 and summary["seed"] == 0
    assert (summary["data"]["n_train"], summary["data"]["n_val"], summary["data"]["n_test"]) == (1000, 350, 447)
    assert all(math.isfinite(v) for v in _finite_numbers(summary))
    assert set(summary["models"]) == {"base_rate", "rbm"}

    # Closed form of the base-rate model, recomputed here in float64 from the data (Salakhutdinov
    # & Murray 2008, Sec. 4.2): b_i = logit((n_i + 1) / (N + 2)), log Z = sum softplus(b) + M log 2.
    data = ep.data.digits(binarize=True)
    x = data.x_train.astype(np.float64)
    p = (x.sum(0) + 1.0) / (len(x) + 2.0)
    b = np.log(p) - np.log1p(-p)
    closed_form = np.logaddexp(0.0, b).sum() + 8 * math.log(2.0)
    base = summary["models"]["base_rate"]
    # float32 enumeration of 2^8 terms of size ~45: agreement to ~1e-5 relative is float32 rounding.
    assert base["log_z"] == pytest.approx(closed_form, abs=1e-3)
    assert base["log_z_closed_form"] == pytest.approx(closed_form, abs=1e-3)
    assert base["log_z"] == pytest.approx(base["log_z_closed_form"], abs=1e-3)

    # The base-rate model's test log-likelihood is the mean Bernoulli log-likelihood of the test
    # pixels under p (exact; the tolerance covers float32 sums of 64 terms of size ~1).
    xt = data.x_test.astype(np.float64)
    ll = np.mean(xt @ np.log(p) + (1.0 - xt) @ np.log1p(-p))
    assert base["test_log_likelihood_nats"] == pytest.approx(ll, abs=1e-3)
    assert base["test_bits_per_pixel"] == pytest.approx(-ll / (64 * math.log(2.0)), abs=1e-4)

    rbm = summary["models"]["rbm"]
    assert rbm["log_z"] > 0 and rbm["test_log_likelihood_nats"] < 0
    assert rbm["test_bits_per_pixel"] == pytest.approx(
        -rbm["test_log_likelihood_nats"] / (64 * math.log(2.0)), rel=1e-12
    )


def test_quickstart_saves_models(quickstart_run):
    _, _, _, out_dir = quickstart_run
    summary = json.loads((out_dir / "summary.json").read_text())
    base = ep.load(out_dir / "base_rate.ebm")
    rbm = ep.load(out_dir / "rbm.ebm")
    assert isinstance(base, ep.BernoulliRBM) and isinstance(rbm, ep.BernoulliRBM)
    assert base.n_hidden == rbm.n_hidden == 8 and base.n_visible == 64
    np.testing.assert_array_equal(np.asarray(base.W), 0.0)
    np.testing.assert_array_equal(np.asarray(rbm.b), np.asarray(base.b))  # base-rate biases
    assert float(ep.log_partition(rbm)) == pytest.approx(summary["models"]["rbm"]["log_z"], abs=1e-4)


def test_quickstart_is_deterministic_in_the_seed(tmp_path, capsys):
    logs_z = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        code, _, _ = _run(capsys, ["quickstart", "--out", tmp_path / name, "--quiet", "--n-hidden", 4, "--seed", seed])
        assert code == 0
        logs_z[name] = json.loads((tmp_path / name / "summary.json").read_text())["models"]["rbm"]["log_z"]
    assert logs_z["a"] == logs_z["b"]
    assert logs_z["a"] != logs_z["c"]


def test_quickstart_without_quiet_prints_next_steps_and_no_bar_off_a_tty(tmp_path, capsys):
    code, out, err = _run(capsys, ["quickstart", "--out", tmp_path, "--n-hidden", 2])
    assert code == 0
    assert "Next steps" in out and "ep.load(" in out
    rbm = tmp_path / "rbm.ebm"
    assert f"ebm-ppl sample {rbm} --out {tmp_path / 'samples'}" in out
    assert f"ebm-ppl report {tmp_path / 'samples'}" in out
    assert f"ebm-ppl logz {rbm} --reverse --data digits" in out
    assert err == ""  # stderr is not a TTY under pytest, so no progress bar


@pytest.mark.parametrize("argv", [[], ["quickstart"], ["version"]])
def test_help_mentions_an_example(capsys, argv):
    code, out, err = _run(capsys, [*argv, "--help"])
    assert code == 0
    assert err == ""
    assert "example" in out
    assert "ebm-ppl" in out


def test_every_registered_command_has_help_with_example(capsys):
    assert {"quickstart", "sample", "report", "logz", "version"} <= set(COMMANDS)
    for name in COMMANDS:
        code, out, _ = _run(capsys, [name, "--help"])
        assert code == 0
        assert f"ebm-ppl {name}" in out.split("example:")[1]


def test_help_lists_the_workflow_in_order(capsys):
    code, out, _ = _run(capsys, ["--help"])
    assert code == 0
    examples = [line.split()[1] for line in out.split("examples:")[1].splitlines() if line.startswith("  ebm-ppl ")]
    assert examples == ["quickstart", "sample", "report", "logz", "version"]


def test_version(capsys):
    code, out, _ = _run(capsys, ["version"])
    assert code == 0 and out.strip() == f"ebm-ppl {ep.__version__}"
    code, out, _ = _run(capsys, ["--version"])
    assert code == 0 and out.strip() == f"ebm-ppl {ep.__version__}"
    code, out, _ = _run(capsys, ["version", "--verbose"])
    assert code == 0 and "jax " in out and "device" in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["quickstart", "--n-hidden", "-3"], "--n-hidden"),
        (["quickstart", "--n-hidden", "abc"], "expected an integer"),
        (["quickstart", "--n-hidden", "0"], "between 1 and"),
        (["quickstart", "--n-hidden", "1000"], "between 1 and"),
        (["quickstart", "--seed", "-1"], "--seed"),
        (["quickstart", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice"),
        ([], "missing command"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(capsys, argv, fragment):
    code, out, err = _run(capsys, argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n")
    assert err.startswith("ebm-ppl: error: ")
    assert fragment in err
    assert "Traceback" not in err


def test_out_dir_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("not a folder")
    code, _, err = _run(capsys, ["quickstart", "--out", target, "--quiet", "--n-hidden", 2])
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ebm-ppl: error: ") and "not a directory" in err
    code, _, err = _run(capsys, ["quickstart", "--out", target / "sub", "--quiet", "--n-hidden", 2])
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ebm-ppl: error: ") and "Traceback" not in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_out_dir_not_writable(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = _run(capsys, ["quickstart", "--out", locked / "run", "--quiet", "--n-hidden", 2])
    finally:
        locked.chmod(0o700)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ebm-ppl: error: ")


def test_traceback_env_var_reraises(tmp_path, monkeypatch):
    target = tmp_path / "file"
    target.write_text("x")
    monkeypatch.setenv(cli.TRACEBACK_ENV, "1")
    with pytest.raises(ValueError, match="not a directory"):
        main(["quickstart", "--out", str(target), "--quiet"])


@pytest.fixture
def temporary_command():
    """Register throw-away subcommands, removed afterwards (COMMANDS is a module-level table)."""
    names = []

    def register(name, run, **kwargs):
        cli.command(name, help=f"{name} help", example=f"{name} --x 1", **kwargs)(run)
        names.append(name)

    yield register
    for name in names:
        COMMANDS.pop(name, None)


def test_adding_a_command_is_one_registration(capsys, temporary_command):
    def arguments(parser):
        parser.add_argument("--x", type=int, default=0)

    def run(args):
        """Echo x."""
        print(f"x={args.x}")
        return 0

    temporary_command("echo-x", run, arguments=arguments)
    code, out, _ = _run(capsys, ["echo-x", "--x", "7"])
    assert code == 0 and out == "x=7\n"
    code, out, _ = _run(capsys, ["--help"])
    assert "echo-x" in out
    with pytest.raises(ValueError, match="registered twice"):
        cli.command("echo-x", help="", example="")(run)


def test_user_errors_inside_a_command_are_one_line(capsys, temporary_command):
    def bad_value(args):
        raise ValueError("something the user\ncan fix")

    def missing(args):
        raise FileNotFoundError(2, "No such file or directory", "model.ebm")

    def interrupted(args):
        raise KeyboardInterrupt

    temporary_command("bad-value", bad_value)
    temporary_command("missing", missing)
    temporary_command("interrupted", interrupted)
    assert _run(capsys, ["bad-value"])[:3:2] == (2, "ebm-ppl: error: something the user can fix\n")
    assert _run(capsys, ["missing"])[:3:2] == (2, "ebm-ppl: error: No such file or directory: model.ebm\n")
    assert _run(capsys, ["interrupted"])[:3:2] == (130, "ebm-ppl: interrupted\n")


def test_python_dash_m_version():
    result = subprocess.run(
        [sys.executable, "-m", "ebm_ppl", "version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ebm-ppl {ep.__version__}"


def test_python_dash_m_usage_error_is_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "ebm_ppl", "quickstart", "--n-hidden", "-3"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("ebm-ppl: error: ") and result.stderr.count("\n") == 1


def test_out_dir_not_writable_even_as_root(tmp_path, capsys, monkeypatch):
    # os.access is what _prepare_out_dir consults; faking it covers the check where root (CI
    # containers) could otherwise write anywhere.
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
    code, out, err = _run(capsys, ["quickstart", "--out", tmp_path / "run", "--quiet", "--n-hidden", 2])
    assert code == 2 and out == ""
    assert err == f"ebm-ppl: error: --out {tmp_path / 'run'}: directory is not writable\n"
