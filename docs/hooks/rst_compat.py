"""MkDocs hook: render the reStructuredText habits of our docstrings in the API reference.

The docstrings use Google-style sections (which mkdocstrings parses) but keep two habits from
Sphinx that Markdown does not know:

* cross-reference roles, ``:func:`ebm_ppl.ais```, which Markdown renders as the literal text
  ``:func:`` followed by the code; the role (and a leading ``~``) is dropped here;
* simple tables framed by lines of ``=``, which Markdown renders as one paragraph; they become
  HTML tables here, cut at the border's column positions (a table whose rows do not line up
  with its border is left as it is).

Only pages produced from docstrings are affected in practice; the Markdown pages use neither.
"""

from __future__ import annotations

import html
import re

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj|const):(<code>)~?")
_PARAGRAPH = re.compile(r"<p>(=[= ]*=)\n(.*?)\n(=[= ]*=)</p>", re.DOTALL)
_BORDER = re.compile(r"^=[= ]*=$")
_CODE = re.compile(r"``(.+?)``")


def _columns(border: str) -> list[tuple[int, int | None]]:
    """Character spans of the columns of an RST simple-table border such as ``====  ===``."""
    starts = [m.start() for m in re.finditer(r"=+", border)]
    return [(a, b) for a, b in zip(starts, starts[1:] + [None])]


def _source(line: str) -> str:
    """The line as it was written in the docstring: inline code back to ````x````, entities decoded."""
    return html.unescape(line.replace("<code>", "``").replace("</code>", "``"))


def _cell(text: str) -> str:
    return _CODE.sub(r"<code>\1</code>", html.escape(text.strip(), quote=False))


def _table(match: re.Match) -> str:
    spans = _columns(match.group(1))
    lines = [_source(line) for line in match.group(2).split("\n")]
    if len(spans) < 2:
        return match.group(0)
    header = None
    if len(lines) >= 2 and _BORDER.match(lines[1].strip()):  # a header row, then a border
        header, lines = lines[0], lines[2:]
    rows = []
    for line in [header] + lines if header is not None else lines:
        if not line.strip() or _BORDER.match(line.strip()):
            continue
        # every column but the first must start at its border position (after a space)
        if any(a > 0 and (len(line) > a and line[a - 1] != " ") for a, _ in spans):
            return match.group(0)
        rows.append([_cell(line[a:b]) for a, b in spans])
    if not rows:
        return match.group(0)
    out = ["<table>"]
    if header is not None:
        head, rows = rows[0], rows[1:]
        out.append("<thead><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr></thead>")
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    out.append(f"<tbody>{body}</tbody></table>")
    return "".join(out)


def on_page_content(html_text: str, **kwargs) -> str:
    html_text = _ROLE.sub(r"\1", html_text)
    return _PARAGRAPH.sub(_table, html_text)
