"""Convergence diagnostics and an HTML report of a sampling run, from ArviZ's own statistics.

    from ebm_ppl.diagnostics import diagnose, report
    print(diagnose(data))            # R-hat, ESS, MCSE of the energy and every coordinate
    report(data, "run.html")         # one self-contained HTML file with the table and plots

The three names load on first use (PEP 562): a module that needs only the figures
(:mod:`ebm_ppl.diagnostics.figures`, matplotlib) does not import ArviZ and xarray.
"""

from ebm_ppl.lazy import lazy_names

__all__ = ["diagnose", "Diagnostics", "report"]

__getattr__, __dir__ = lazy_names(globals(), {"report": "ebm_ppl.diagnostics.html_report",
                                             "diagnose": "ebm_ppl.diagnostics.summary",
                                             "Diagnostics": "ebm_ppl.diagnostics.summary"})
del lazy_names  # the package's names are its public ones
