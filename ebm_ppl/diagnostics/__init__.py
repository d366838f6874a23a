"""Convergence diagnostics and an HTML report of a sampling run, from ArviZ's own statistics.

    from ebm_ppl.diagnostics import diagnose, report
    print(diagnose(data))            # R-hat, ESS, MCSE of the energy and every coordinate
    report(data, "run.html")         # one self-contained HTML file with the table and plots
"""

from ebm_ppl.diagnostics.report import report
from ebm_ppl.diagnostics.summary import Diagnostics, diagnose

__all__ = ["diagnose", "Diagnostics", "report"]
