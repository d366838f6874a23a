"""Convergence diagnostics and an HTML report of a sampling run, from ArviZ's own statistics.

    from ebm_ppl.diagnostics import diagnose, report
    print(diagnose(data))            # R-hat, ESS, MCSE of the energy and every coordinate
    report(data, "run.html")         # one self-contained HTML file with the table and plots

The three names load on first use (PEP 562): a module that needs only the figures
(:mod:`ebm_ppl.diagnostics.figures`, matplotlib) does not import ArviZ and xarray.
"""

__all__ = ["diagnose", "Diagnostics", "report"]

#: The public names and the module each comes from.
_FROM = {"report": "ebm_ppl.diagnostics.html_report", "diagnose": "ebm_ppl.diagnostics.summary",
         "Diagnostics": "ebm_ppl.diagnostics.summary"}


def __getattr__(name: str):
    """The public names, imported on first access and kept."""
    import importlib

    if name not in _FROM:
        raise AttributeError(f"module 'ebm_ppl.diagnostics' has no attribute {name!r}")
    value = getattr(importlib.import_module(_FROM[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
