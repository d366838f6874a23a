"""``ebm-ppl report``: :func:`ebm_ppl.report`'s self-contained HTML page of a sampling run (ours, or
any ArviZ data in NetCDF or Zarr)."""

from __future__ import annotations

import argparse
from pathlib import Path

import ebm_ppl as ep
from ebm_ppl.cli.app import EXIT_OK, PROG, command
from ebm_ppl.cli.helpers import quiet_option, steps
from ebm_ppl.cli.sample import SAMPLES_FILE, is_zarr_store, read_samples

__all__ = ["REPORT_FILE"]

#: Default file name of the page, next to ``samples.nc``.
REPORT_FILE = "report.html"


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR",
                        help=f"the --out folder of '{PROG} sample' (holding {SAMPLES_FILE}), or any ArviZ "
                        "NetCDF file or Zarr store (NumPyro, PyMC, Stan, BlackJAX runs)")
    parser.add_argument("--out", metavar="PATH",
                        help=f"the HTML file to write [default: {REPORT_FILE} in DIR, or next to the file or store]")
    parser.add_argument("--title", metavar="T",
                        help="heading of the page [default: names the model family and the kernel]")
    quiet_option(parser, "no progress bar")


@command(
    "report",
    help="HTML report (diagnostics table and ArviZ's plots) of a sampling run",
    example=(
        "report runs/quickstart/samples\n"
        "report runs/site --out ~/site-report.html --title 'site Gibbs, 8 chains'\n"
        "report numpyro_run.nc --out numpyro_run.html"
    ),
    arguments=_report_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Write one self-contained HTML file about a sampling run.

    Reads DIR/samples.nc (written by 'ebm-ppl sample'), or any ArviZ data saved as NetCDF or Zarr
    (arviz.from_numpyro(mcmc).to_netcdf(...), PyMC's or Stan's runs), and writes ep.report's page:
    the verdict against Stan's thresholds, the diagnostics table (R-hat, bulk and tail ESS, MCSE
    of lp and of every coordinate), ArviZ's trace, rank, ESS, autocorrelation, energy/BFMI (HMC,
    NUTS), pair and density plots of lp and the worst-mixing coordinates, the sampler statistics
    and, for image-shaped draws such as the 8x8 digits, the draws as images and per-pixel maps.
    Plots are inline PNGs, so the file can be mailed or archived.
    """
    source = Path(args.dir).expanduser()
    folder = source if source.is_dir() and not is_zarr_store(source) else source.parent
    out = Path(args.out).expanduser() if args.out else folder / REPORT_FILE
    with steps(2, quiet=args.quiet) as step:
        step("reading samples")
        data = read_samples(source)
        step("writing report")
        written = ep.report(data, out, title=args.title)
    print(f"Wrote {written}")
    return EXIT_OK
