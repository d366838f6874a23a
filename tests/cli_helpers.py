"""Shared helpers of the CLI tests: run ``ebm-ppl`` in-process and check one-line errors."""

from ebm_ppl.cli import main


def run_cli(capsys, argv):
    """``(exit code, stdout, stderr)`` of ``ebm-ppl ARGV``."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, out, err, fragment):
    """The command failed with exit 2 and exactly one ``ebm-ppl: error:`` line naming ``fragment``."""
    assert code == 2, err
    assert out == ""
    assert err.startswith("ebm-ppl: error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    assert fragment in err, err
