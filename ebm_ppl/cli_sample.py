"""``ebm-ppl sample`` and ``ebm-ppl report``: MCMC draws of a saved model, and their HTML report.

``sample`` runs :func:`ebm_ppl.sample` on a model file and stores the ``xarray.DataTree`` as
netCDF (``DIR/samples.nc``, HDF5 through h5netcdf); ``report`` reads that file back and writes
:func:`ebm_ppl.report`'s self-contained HTML page next to it.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import jax
import xarray as xr

import ebm_ppl as ep
from ebm_ppl._version import __version__
from ebm_ppl.cli import (
    EXIT_OK,
    PROG,
    _describe_model,
    _float_at_least,
    _int_in,
    _load_model,
    _prepare_out_dir,
    _progress_enabled,
    _steps,
    _write_atomic,
    command,
)
from ebm_ppl.inference import KERNELS, default_kernel

__all__ = ["SAMPLES_FILE", "REPORT_FILE", "read_samples"]

#: File name of the draws inside ``sample``'s --out folder.
SAMPLES_FILE = "samples.nc"
#: Default file name of ``report``'s page inside the same folder.
REPORT_FILE = "report.html"
_ENGINE = "h5netcdf"
#: Kernels that follow the gradient of log p, so need real-valued x (ebm_ppl.inference.sampling).
_GRADIENT_KERNELS = ("langevin", "mala", "hmc", "nuts")
#: The kernels that take each kernel option this command offers (ebm_ppl.sample's **kernel_options).
_OPTION_KERNELS = {"step_size": _GRADIENT_KERNELS, "noise_scale": ("langevin",)}
#: diagnose() computes split R-hat, which needs at least this many draws per chain.
_MIN_SAMPLES = 4


def _require_hdf5(action: str) -> None:
    """h5netcdf reads and writes HDF5 through h5py, which recent h5netcdf releases make optional."""
    try:
        import h5py  # noqa: F401
    except ImportError:
        raise ValueError(f"{action} needs h5py (the HDF5 backend of h5netcdf); install it with "
                         "pip install 'h5netcdf[h5py]'") from None


def _write_samples(data: xr.DataTree, path: Path) -> None:
    """``data`` as netCDF/HDF5 at ``path``, atomically (temporary file, fsync, rename)."""
    _write_atomic(path, lambda tmp: data.to_netcdf(tmp, engine=_ENGINE))


def read_samples(path: str | Path) -> xr.DataTree:
    """The DataTree in a ``samples.nc`` written by ``ebm-ppl sample``, loaded into memory (the file
    is closed on return).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not netCDF/HDF5, or has no ``posterior`` group.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; write it with "
                                f"'{PROG} sample MODEL_FILE --out {shlex.quote(str(path.parent))}'")
    _require_hdf5("reading samples")
    try:
        with xr.open_datatree(path, engine=_ENGINE) as tree:
            data = tree.load()
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: not a samples file written by '{PROG} sample' ({exc})") from None
    if "posterior" not in data.children:
        raise ValueError(f"{path} has no 'posterior' group; it was not written by '{PROG} sample'")
    return data


# -- sample -------------------------------------------------------------------------------------
def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_FILE", help="a model saved with ep.save (.ebm)")
    parser.add_argument(
        "--out", required=True, metavar="DIR",
        help=f"folder for {SAMPLES_FILE} (created; an existing file is replaced)",
    )
    parser.add_argument(
        "--kernel", choices=KERNELS, metavar="NAME",
        help=f"one of {', '.join(KERNELS)} [default: block_gibbs where the model has conditionals, "
        "site_gibbs for other binary models, nuts for real ones]",
    )
    parser.add_argument("--chains", type=_int_in(1), default=4, metavar="INT",
                        help="independent chains [default: %(default)s]")
    parser.add_argument("--warmup", type=_int_in(0), default=500, metavar="INT",
                        help="tuning / burn-in steps per chain, discarded [default: %(default)s]")
    parser.add_argument("--samples", type=_int_in(_MIN_SAMPLES), default=1000, metavar="INT",
                        help=f"kept draws per chain, >= {_MIN_SAMPLES} [default: %(default)s]")
    parser.add_argument("--thin", type=_int_in(1), default=1, metavar="INT",
                        help="steps between kept draws [default: %(default)s]")
    parser.add_argument(
        "--step-size", type=_float_at_least(0.0, strict=True), metavar="F",
        help="step size of langevin, mala, hmc, nuts (the initial value where it is tuned) "
        "[default: the kernel's]",
    )
    parser.add_argument(
        "--noise-scale", type=_float_at_least(0.0, strict=False), metavar="F",
        help="noise standard deviation of langevin [default: sqrt(2 step size), exact Langevin]",
    )
    parser.add_argument("--seed", type=_int_in(0, 2**32 - 1), default=0, metavar="INT",
                        help="PRNG seed; the same seed gives the same draws [default: %(default)s]")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no next-step hints")


@command(
    "sample",
    help="MCMC draws of a saved model, with convergence diagnostics",
    example=(
        "sample runs/quickstart/rbm.ebm --out runs/quickstart/samples\n"
        "sample rbm.ebm --kernel site_gibbs --chains 8 --samples 2000 --thin 2 --out runs/site\n"
        "sample gaussian.ebm --kernel mala --step-size 0.05 --warmup 1000 --out runs/mala --seed 3"
    ),
    arguments=_sample_arguments,
)
def _sample(args: argparse.Namespace) -> int:
    """Run many MCMC chains on a saved model and store the draws.

    Loads MODEL_FILE (written by ep.save or 'ebm-ppl quickstart'), runs ep.sample with the chosen
    kernel (--step-size and --noise-scale are passed only when given), prints ep.diagnose's table
    (R-hat, bulk/tail ESS, MCSE of the energy and of the worst-mixing coordinates) and saves the
    draws with their sampler statistics as netCDF in DIR/samples.nc (read it with
    xarray.open_datatree(path, engine="h5netcdf")). 'ebm-ppl report DIR' turns it into an HTML
    report with trace, rank, ESS and autocorrelation plots.
    """
    model = _load_model(args.model)
    kernel = args.kernel or default_kernel(model)
    if kernel in _GRADIENT_KERNELS and model.support != ep.Support.REAL:
        raise ValueError(
            f"--kernel {kernel} follows gradients, so it needs a real-valued model; {args.model} holds a "
            f"{_describe_model(model)} model. Use --kernel block_gibbs or site_gibbs (or leave --kernel out)"
        )
    options = {name: value for name, value in (("step_size", args.step_size), ("noise_scale", args.noise_scale))
               if value is not None}
    for name in options:
        if kernel not in _OPTION_KERNELS[name]:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} applies to --kernel {', '.join(_OPTION_KERNELS[name])}, not to {kernel}"
                             + ("" if args.kernel else f" (the default kernel of a {_describe_model(model)} model)"))
    _require_hdf5("writing samples.nc")
    out = _prepare_out_dir(args.out)
    path = out / SAMPLES_FILE

    print(f"Sampling {args.model} ({_describe_model(model)}) with {kernel}: {args.chains} chains x "
          f"{args.samples} draws (thin {args.thin}) after {args.warmup} warm-up steps, seed {args.seed}"
          + (", " + ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in options.items()) if options else "")
          + ".", flush=True)
    t0 = time.perf_counter()
    data = ep.sample(
        jax.random.key(args.seed), model, kernel,
        num_chains=args.chains, num_warmup=args.warmup, num_samples=args.samples, thin=args.thin,
        progress=_progress_enabled(args.quiet), **options,
    )
    seconds = time.perf_counter() - t0
    data.attrs.update({
        "created_by": f"{PROG} sample", "ebm_ppl_version": __version__,
        "model_file": str(Path(args.model).expanduser().resolve()),
        "kernel": kernel, "seed": args.seed, "num_warmup": args.warmup, "thin": args.thin,
        **{f"kernel_{k}": v for k, v in options.items()},
    })
    _write_samples(data, path)

    print(f"({seconds:.1f} s on {jax.default_backend()}, compilation included)")
    print()
    print(ep.diagnose(data))
    print()
    print(f"Saved {args.chains} chains x {args.samples} draws to {path}")
    if not args.quiet:
        print()
        print("Next step:")
        print(f"  {PROG} report {shlex.quote(str(out))}   # HTML report: trace, rank, ESS and autocorrelation plots")
    return EXIT_OK


# -- report -------------------------------------------------------------------------------------
def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR",
                        help=f"the --out folder of '{PROG} sample' (holding {SAMPLES_FILE}), or the .nc file")
    parser.add_argument("--out", metavar="PATH",
                        help=f"the HTML file to write [default: DIR/{REPORT_FILE}]")
    parser.add_argument("--title", metavar="T",
                        help="heading of the page [default: names the model family and the kernel]")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


@command(
    "report",
    help="HTML report (diagnostics table and plots) of a 'sample' run",
    example=(
        "report runs/quickstart/samples\n"
        "report runs/site --out ~/site-report.html --title 'site Gibbs, 8 chains'"
    ),
    arguments=_report_arguments,
)
def _report(args: argparse.Namespace) -> int:
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
    with _steps(2, quiet=args.quiet) as step:
        step("reading samples")
        data = read_samples(samples)
        step("writing report")
        written = ep.report(data, out, title=args.title)
    print(f"Wrote {written}")
    return EXIT_OK
