"""The documentation: the site builds with ``mkdocs build --strict``, and its Python snippets run.

Every fenced ```` ```python ```` block at the start of a line in ``docs/**/*.md`` is executed in a
fresh namespace, in a temporary working directory (snippets may write files such as
``rbm.ebm``), unless the line before it (blank lines aside) is an HTML comment starting with
``<!-- skip``, e.g. ``<!-- skip: needs 4 devices -->``. Skipped blocks are the slow or
environment-dependent ones. Those whose reason starts with "slow" (``<!-- skip: slow -->``) are
checked by hand with ``EBM_PPL_DOCS_ALL=1``, which runs them too, and with it the snippets
marked ``<!-- skip: 4 devices ... -->`` in a process with four CPU devices::

    EBM_PPL_DOCS_ALL=1 python -m pytest tests/test_docs.py -k snippet

The command-line reference in ``docs/cli.md`` below its marker line is the ``--help`` output of
``ebm-ppl`` and every subcommand; a test checks it is current, and
``python tests/test_docs.py --write-cli`` regenerates it after the CLI changes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import NamedTuple

import pytest

from forced_devices import run_on_four_devices

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_FENCE_OPEN = re.compile(r"^```python\s*$")
_FENCE_CLOSE = re.compile(r"^```\s*$")
_SKIP = re.compile(r"^<!--\s*skip\b:?\s*(.*?)\s*-->\s*$")
RUN_ALL = os.environ.get("EBM_PPL_DOCS_ALL", "") not in ("", "0")


class Snippet(NamedTuple):
    page: str  # path relative to docs/
    line: int  # 1-based line of the opening fence
    code: str
    skip_reason: str | None  # None: runnable

    @property
    def skipped(self) -> bool:
        return self.skip_reason is not None

    @property
    def slow(self) -> bool:
        return self.skipped and self.skip_reason.startswith("slow")

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def extract_snippets(path: Path) -> list[Snippet]:
    """The ```python blocks of one Markdown file, with whether a skip marker precedes each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(DOCS).as_posix()
    out, i = [], 0
    while i < len(lines):
        if _FENCE_OPEN.match(lines[i]):
            start = i
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            marker = _SKIP.match(lines[j].strip()) if j >= 0 else None
            skip_reason = marker.group(1) if marker else None
            i += 1
            body = []
            while i < len(lines) and not _FENCE_CLOSE.match(lines[i]):
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise AssertionError(f"{page}:{start + 1}: unclosed ```python block")
            out.append(Snippet(page, start + 1, "\n".join(body) + "\n", skip_reason))
        i += 1
    return out


def all_snippets() -> list[Snippet]:
    return [s for path in sorted(DOCS.rglob("*.md")) for s in extract_snippets(path)]


SNIPPETS = all_snippets()


def test_docs_have_runnable_snippets():
    runnable = [s for s in SNIPPETS if not s.skipped]
    assert len(runnable) >= 10, [s.id for s in SNIPPETS]
    for s in SNIPPETS:
        compile(s.code, s.id, "exec")  # skipped blocks must at least be valid Python


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if not s.skipped or (RUN_ALL and s.slow)],
                         ids=lambda s: s.id)
def test_snippet_runs(snippet: Snippet, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a fresh module, registered while it runs (dataclasses and Equinox look classes up there)
    module = types.ModuleType("_ebm_ppl_docs_snippet")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    # families a snippet registers do not outlive it
    from ebm_ppl.potentials import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    exec(compile(snippet.code, snippet.id, "exec"), module.__dict__)  # noqa: S102  running the docs is the test


@pytest.mark.skipif(not RUN_ALL, reason="set EBM_PPL_DOCS_ALL=1 to run the multi-device snippets")
@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.skipped and s.skip_reason.startswith("4 devices")],
                         ids=lambda s: s.id)
def test_multi_device_snippet_runs(snippet: Snippet, tmp_path):
    """Snippets marked ``<!-- skip: 4 devices ... -->``, in a process with 4 CPU devices."""
    run_on_four_devices(snippet.code, cwd=tmp_path)


def _missing_docs_tools() -> str | None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return module
    return None


def test_mkdocs_build_strict(tmp_path):
    missing = _missing_docs_tools()
    if missing:
        pytest.skip(f"{missing} is not installed; install the docs extra (sh scripts/venv.sh dev,docs) "
                    "to build the site")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert (site / "index.html").exists()
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    # mkdocstrings rendered the reference, not just the headings
    for name in ("ebm_ppl.inference.sampling.sample", "ebm_ppl.partition.ais.ais", "ebm_ppl.training.fit.fit"):
        assert f'id="{name}"' in api, name


# -- the command-line reference ---------------------------------------------------------------------

CLI_PAGE = DOCS / "cli.md"
CLI_MARKER = "<!-- generated by `python tests/test_docs.py --write-cli` from the --help texts; edit above this line only -->"


def cli_reference() -> str:
    """``ebm-ppl --help`` and ``ebm-ppl COMMAND --help`` of every subcommand, as Markdown."""
    from ebm_ppl.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal width; pin it
    try:
        parser = build_parser()
        (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        sections = [("ebm-ppl", parser.format_help())]
        sections += [(f"ebm-ppl {name}", sub.format_help()) for name, sub in subparsers.choices.items()]
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return "".join(f"## `{title}`\n\n```text\n{text.rstrip()}\n```\n\n" for title, text in sections).rstrip() + "\n"


def _split_cli_page() -> tuple[str, str]:
    text = CLI_PAGE.read_text(encoding="utf-8")
    head, marker, generated = text.partition(CLI_MARKER + "\n")
    assert marker, f"{CLI_PAGE} lost its marker line {CLI_MARKER!r}"
    return head, generated.lstrip("\n")


def test_cli_reference_is_current():
    _, generated = _split_cli_page()
    assert generated == cli_reference(), (
        "docs/cli.md is out of date with the ebm-ppl --help texts; regenerate it with "
        "`python tests/test_docs.py --write-cli`"
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-cli"]:
        sys.exit("usage: python tests/test_docs.py --write-cli   (regenerates the reference part of docs/cli.md)")
    head, _ = _split_cli_page()
    CLI_PAGE.write_text(head + CLI_MARKER + "\n\n" + cli_reference(), encoding="utf-8")
    print(f"wrote {CLI_PAGE}")
