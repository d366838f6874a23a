"""How the diagnostics table's cells read, shared by the printed table and the HTML report."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["COLUMNS", "TEXT_COLUMNS", "format_value", "format_row", "format_summary"]

#: Columns of every row of :attr:`ebm_ppl.diagnostics.Diagnostics.table`.
COLUMNS = ("quantity", "mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "rhat", "flag", "note")
#: The columns that hold text (left-aligned); the others hold numbers.
TEXT_COLUMNS = ("quantity", "flag", "note")


def format_value(column: str, v) -> str:
    """How a table cell is printed: ESS as integers, R-hat with three decimals, others 4 digits."""
    if isinstance(v, str):
        return v
    if v is None or not math.isfinite(v):
        return "-"
    if column in ("ess_bulk", "ess_tail"):
        return f"{v:.0f}"
    if column == "rhat":
        return f"{v:.3f}" if v < 100 else f"{v:.3g}"
    return f"{v:.4g}"


def format_row(row: dict[str, Any]) -> list[str]:
    """The cells of one row of the table, in :data:`COLUMNS` order."""
    return [format_value(c, row[c]) for c in COLUMNS]


def format_summary(s: dict[str, Any]) -> str:
    """One line over all coordinates of a variable (a :meth:`Diagnostics.variable_summaries` entry)."""
    constant = f", {s['num_constant']} constant (agreed)" if s["num_constant"] else ""
    return (f"{s['variable']} ({s['size']} coordinates): max R-hat {format_value('rhat', s['max_rhat'])}, "
            f"min ESS bulk {format_value('ess_bulk', s['min_ess_bulk'])}, "
            f"min ESS tail {format_value('ess_tail', s['min_ess_tail'])}, "
            f"{s['num_flagged']} flagged{constant}")
