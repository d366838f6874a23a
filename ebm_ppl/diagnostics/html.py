"""Self-contained HTML pages: the skeleton and its CSS, tables, and figures inlined as PNG data URIs.

One implementation for :func:`ebm_ppl.report`'s page and the quickstart's ``report.html``. Every
page is one file (CSS and images inline), so it can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import io
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from matplotlib.figure import Figure

from ebm_ppl.archive import atomic_write
from ebm_ppl.diagnostics.formatting import COLUMNS, TEXT_COLUMNS, format_value

__all__ = ["CSS", "escape", "page", "write_page", "figure_png", "png_figure", "figure_section", "table", "row",
           "diagnostics_row", "diagnostics_table", "spanning_row"]

#: Resolution of the figures :func:`figure_section` embeds.
DPI = 72

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em auto;
       max-width: 1100px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #555; font-size: 0.9em; }
.verdict { padding: 0.6em 1em; border-radius: 4px; font-weight: 600; margin: 1em 0; }
.verdict.ok { background: #e6f4ea; color: #1e6b34; border: 1px solid #a8d5b5; }
.verdict.warn { background: #fdecea; color: #8a1c12; border: 1px solid #f0b4ad; }
span.ok { color: #1a7f37; } span.warn { color: #b35900; }
table { border-collapse: collapse; font-size: 0.85em; font-variant-numeric: tabular-nums; }
table th, table td { padding: 0.2em 0.6em; border-bottom: 1px solid #eee; }
table th { background: #f4f4f4; text-align: right; }
table td { text-align: right; }
table td.text, table th.text { text-align: left; }
table tr.warn td { background: #fff4f2; }
table tr.summary td { text-align: left; font-style: italic; background: #f8f8fb; }
figure { margin: 0.8em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, p.note { color: #555; font-size: 0.88em; }
details { margin-top: 0.8em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
"""

escape = html.escape
_TEXT_INDEX = tuple(i for i, c in enumerate(COLUMNS) if c in TEXT_COLUMNS)


def page(title: str, meta: str, sections: Sequence[str]) -> str:
    """The whole page: ``title`` (plain text) as title and heading, ``meta`` (HTML) under it, then
    the non-empty ``sections`` (HTML)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<h1>{escape(title)}</h1>\n<p class=\"meta\">{meta}</p>\n"
            + "\n".join(s for s in sections if s)
            + "\n</body>\n</html>\n")


def write_page(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically, creating its folder if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def figure_png(fig: Figure, dpi: float = DPI) -> bytes:
    """``fig`` as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    return buf.getvalue()


def png_figure(png: bytes, alt: str, caption: str) -> str:
    """A ``<figure>`` with the PNG inline (a base64 data URI) and its caption (plain text)."""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def figure_section(heading: str, caption: str, make: Callable[[], Figure | None]) -> str:
    """A section with ``make()``'s figure (none: empty string); a figure that fails to draw becomes a
    note and a RuntimeWarning instead of failing the page."""
    try:
        fig = make()
        if fig is None:
            return ""
        body = png_figure(figure_png(fig), heading, caption)
    except Exception as error:  # one bad plot should not cost the whole report
        warnings.warn(f"report: could not draw {heading!r}: {error!r}", RuntimeWarning, stacklevel=3)
        body = f'<p class="note">Could not draw this plot: {escape(repr(error))}</p>'
    return f"<section><h2>{escape(heading)}</h2>{body}</section>"


def _cls(name: str | None) -> str:
    return f' class="{name}"' if name else ""


def row(cells: Sequence[str], *, text: Sequence[int] = (0,), cls: str | None = None) -> str:
    """A ``<tr>`` of HTML ``cells``; the cells at indices ``text`` are left-aligned text."""
    tds = "".join(f'<td class="text">{c}</td>' if i in text else f"<td>{c}</td>" for i, c in enumerate(cells))
    return f"<tr{_cls(cls)}>{tds}</tr>"


def table(header: Sequence[str], rows: Sequence[str], *, text: Sequence[int] = (0,), cls: str | None = None) -> str:
    """A ``<table>`` with ``header`` (HTML) and ``rows`` (``<tr>`` HTML from :func:`row`)."""
    head = "".join(f'<th class="text">{h}</th>' if i in text else f"<th>{h}</th>" for i, h in enumerate(header))
    return f"<table{_cls(cls)}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def diagnostics_row(r: dict[str, Any]) -> str:
    """One row of :attr:`Diagnostics.table` as ``<tr class="ok">`` or ``<tr class="warn">``."""
    cells = [escape(format_value(c, r[c])) for c in COLUMNS]
    return row(cells, text=_TEXT_INDEX, cls="warn" if r["flag"] != "ok" else "ok")


def spanning_row(text: str) -> str:
    """A summary row (plain ``text``) across all diagnostics columns."""
    return f'<tr class="summary"><td colspan="{len(COLUMNS)}">{escape(text)}</td></tr>'


def diagnostics_table(rows: Sequence[str]) -> str:
    """``<table class="diagnostics">`` with the :data:`COLUMNS` header and ``rows`` (HTML)."""
    return table(COLUMNS, rows, text=_TEXT_INDEX, cls="diagnostics")
