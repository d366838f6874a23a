"""The ``ebm-ppl`` command: help, the command table, one-line errors, --out checks.

The commands' own runs are tested in test_cli_quickstart.py, test_cli_train.py, test_cli_sample.py
and test_cli_logz.py; the failures here all happen before any work, so they cost milliseconds.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import ebm_ppl as ep
from ebm_ppl.cli import app as cli
from ebm_ppl.cli import COMMANDS, main
from cli_helpers import run_cli as _run


@pytest.mark.parametrize("argv", [[], ["quickstart"], ["train"], ["version"]])
def test_help_mentions_an_example(capsys, argv):
    code, out, err = _run(capsys, [*argv, "--help"])
    assert code == 0
    assert err == ""
    assert "example" in out
    assert "ebm-ppl" in out


def test_every_registered_command_has_help_with_example(capsys):
    assert {"quickstart", "train", "sample", "report", "logz", "version"} <= set(COMMANDS)
    for name in COMMANDS:
        code, out, _ = _run(capsys, [name, "--help"])
        assert code == 0
        assert f"ebm-ppl {name}" in out.split("example:")[1]


def test_help_lists_the_workflow_in_order(capsys):
    code, out, _ = _run(capsys, ["--help"])
    assert code == 0
    examples = [line.split()[1] for line in out.split("examples:")[1].splitlines() if line.startswith("  ebm-ppl ")]
    assert examples == ["quickstart", "train", "sample", "report", "logz", "version"]


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
        (["quickstart", "--n-hidden", "21"], "between 1 and 20"),
        (["quickstart", "--fast=yes"], "--fast"),
        (["quickstart", "--seed", "-1"], "--seed"),
        (["quickstart", "--bogus"], "unrecognized arguments: --bogus"),
        (["train"], "required"),
        (["train", "boltzmann", "--out", "x"], "invalid choice"),
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
    code, _, err = _run(capsys, ["quickstart", "--out", target, "--quiet", "--fast"])
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ebm-ppl: error: ") and "not a directory" in err
    code, _, err = _run(capsys, ["quickstart", "--out", target / "sub", "--quiet", "--fast"])
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ebm-ppl: error: ") and "Traceback" not in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_out_dir_not_writable(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = _run(capsys, ["quickstart", "--out", locked / "run", "--quiet", "--fast"])
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
    code, out, err = _run(capsys, ["quickstart", "--out", tmp_path / "run", "--quiet", "--fast"])
    assert code == 2 and out == ""
    assert err == f"ebm-ppl: error: --out {tmp_path / 'run'}: directory is not writable\n"
