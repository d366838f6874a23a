"""``ebm-ppl report``: :func:`ebm_ppl.report`'s self-contained HTML page of a ``sample`` run."""

from __future__ import annotations

import argparse
from pathlib import Path

import ebm_ppl as ep
from ebm_ppl.cli.app import EXIT_OK, PROG, command
from ebm_ppl.cli.helpers import quiet_option, steps
from ebm_ppl.cli.sample import SAMPLES_FILE, read_samples

__all__ = ["REPORT_FILE"]

#: Default file name of the page, next to ``samples.nc``.
REPORT_FILE = "report.html"


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR",
                        help=f"the --out folder of '{PROG} sample' (holding {SAMPLES_FILE}), or the .nc file")
    parser.add_argument("--out", metavar="PATH",
                        help=f"the HTML file to write [default: DIR/{REPORT_FILE}]")
    parser.add_argument("--title", metavar="T",
                        help="heading of the page [default: names the model family and the kernel]")
    quiet_option(parser, "no progress bar")


@command(
    "report",
    help="HTML report (diagnostics table and plots) of a 'sample' run",
    example=(
        "report runs/quickstart/samples\n"
        "report runs/site --out ~/site-report.html --title 'site Gibbs, 8 chains'"
    ),
    arguments=_report_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Write one self-contained HTML file about a sampling run.

    Reads DIR/samples.nc (written by 'ebm-ppl sample') and writes ep.report's page: the verdict,
    the diagnostics table (R-hat, bulk and tail ESS, MCSE), trace and rank plots of the energy and
    the worst-mixing coordinates, ESS and autocorrelation plots, sampler statistics and, for
    image-shaped draws such as the 8x8 digits, the draws as images and per-pixel maps. Plots are
    inline PNGs, so the file can be mailed or archived. The output is deterministic.
    """
    source = Path(args.dir).expanduser()
    samples = source if source.is_file() else source / SAMPLES_FILE
    out = Path(args.out).expanduser() if args.out else samples.parent / REPORT_FILE
    with steps(2, quiet=args.quiet) as step:
        step("reading samples")
        data = read_samples(samples)
        step("writing report")
        written = ep.report(data, out, title=args.title)
    print(f"Wrote {written}")
    return EXIT_OK
