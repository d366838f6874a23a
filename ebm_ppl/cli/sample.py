"""``ebm-ppl sample``: MCMC draws of a saved model, stored as netCDF, with their diagnostics.

The draws are :func:`ebm_ppl.sample`'s ``xarray.DataTree``, written to ``DIR/samples.nc`` (HDF5
through h5netcdf); :func:`read_samples` reads it back, or any ArviZ NetCDF/Zarr data
(``ebm-ppl report``). The ``--kernel``
choices, the options each kernel takes and the support it needs come from the kernel table
:data:`ebm_ppl.kernels.KERNELS`.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import jax
import xarray as xr

import ebm_ppl as ep
from ebm_ppl.cli.app import EXIT_OK, PROG, command
from ebm_ppl.cli.helpers import (describe_model, float_at_least, int_in, load_model, max_memory_bytes,
                                 max_memory_option, out_dir, print_hints, progress_enabled, quiet_option,
                                 seed_option, write_atomic)
from ebm_ppl.kernels import KERNELS, check_kernel, default_kernel
from ebm_ppl.kernels.registry import check_kernel_options
from ebm_ppl.kernels.replica_exchange import BASE_KERNELS, REFERENCES

__all__ = ["SAMPLES_FILE", "read_samples", "is_zarr_store", "write_samples", "kernels_taking"]

#: File name of the draws inside ``sample``'s --out folder.
SAMPLES_FILE = "samples.nc"
_ENGINE = "h5netcdf"
#: diagnose() computes split R-hat, which needs at least this many draws per chain.
_MIN_SAMPLES = 4
#: The kernel options this command offers (ebm_ppl.sample's **kernel_options), by flag.
_OPTIONS = ("step_size", "noise_scale", "num_replicas", "base_kernel", "reference")


def kernels_taking(option: str) -> tuple[str, ...]:
    """The kernels of the table that take ``option``, in the table's order."""
    return tuple(name for name, spec in KERNELS.items() if option in spec.options)


def _require_hdf5(action: str) -> None:
    """h5netcdf reads and writes HDF5 through h5py, which recent h5netcdf releases make optional."""
    try:
        import h5py  # noqa: F401
    except ImportError:
        raise ValueError(f"{action} needs h5py (the HDF5 backend of h5netcdf); install it with "
                         "pip install 'h5netcdf[h5py]'") from None


def write_samples(data: xr.DataTree, path: Path) -> None:
    """``data`` as netCDF/HDF5 at ``path``, atomically (temporary file, fsync, rename)."""
    write_atomic(path, lambda tmp: data.to_netcdf(tmp, engine=_ENGINE))


def read_samples(path: str | Path) -> xr.DataTree:
    """The ArviZ DataTree in ``path``, loaded into memory (the file is closed on return).

    ``path`` is a NetCDF file (netCDF-4/HDF5, as ``ebm-ppl sample``, ``DataTree.to_netcdf`` and
    ArviZ's ``to_netcdf`` write it, for runs of ebm_ppl, NumPyro, PyMC, Stan or BlackJAX alike), a
    Zarr store (a folder or a ``.zip``, as ``DataTree.to_zarr`` writes it; needs the ``zarr``
    package), or a folder holding ``samples.nc``. The data are returned as written: an old
    ebm_ppl run (``sample_stats.energy`` = E(x)) is read as ``lp = -energy`` by
    :func:`ebm_ppl.diagnose` and :func:`ebm_ppl.report`, which say so.

    Raises:
        FileNotFoundError: no such file.
        ValueError: neither NetCDF/HDF5 nor Zarr, or no ``posterior`` group.
    """
    path = Path(path)
    if (path.is_dir() and not is_zarr_store(path)) or (not path.exists() and not path.suffix):
        path = path / SAMPLES_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; write it with "
                                f"'{PROG} sample MODEL_FILE --out {shlex.quote(str(path.parent))}'")
    engine = "zarr" if is_zarr_store(path) else _ENGINE
    if engine == "zarr":
        try:
            import zarr  # noqa: F401
        except ImportError:
            raise ValueError(f"{path} is a Zarr store; reading it needs the zarr package (pip install zarr)") from None
    else:
        _require_hdf5("reading samples")
    try:
        with xr.open_datatree(path, engine=engine) as tree:
            data = tree.load()
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"cannot read {path}: not a NetCDF (HDF5) file or Zarr store of ArviZ data, as "
                         f"'{PROG} sample' or ArviZ's to_netcdf/to_zarr write ({exc})") from None
    if "posterior" not in data.children:
        raise ValueError(f"{path} has no 'posterior' group; it is not the ArviZ data of a sampling run")
    return data


def is_zarr_store(path: Path) -> bool:
    """A Zarr store: a folder with Zarr metadata (v2 or v3), or a ``.zip``/``.zarr`` path."""
    if path.is_dir():
        return any((path / name).exists() for name in ("zarr.json", ".zgroup", ".zmetadata"))
    return path.suffix in (".zip", ".zarr")


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
    parser.add_argument("--chains", type=int_in(1), default=4, metavar="INT",
                        help="independent chains [default: %(default)s]")
    parser.add_argument("--warmup", type=int_in(0), default=500, metavar="INT",
                        help="tuning / burn-in steps per chain, discarded [default: %(default)s]")
    parser.add_argument("--samples", type=int_in(_MIN_SAMPLES), default=1000, metavar="INT",
                        help=f"kept draws per chain, >= {_MIN_SAMPLES} [default: %(default)s]")
    parser.add_argument("--thin", type=int_in(1), default=1, metavar="INT",
                        help="steps between kept draws [default: %(default)s]")
    parser.add_argument(
        "--step-size", type=float_at_least(0.0, strict=True), metavar="F",
        help=f"step size of {', '.join(kernels_taking('step_size'))} (the initial value where it is tuned) "
        "[default: the kernel's]",
    )
    parser.add_argument(
        "--noise-scale", type=float_at_least(0.0, strict=False), metavar="F",
        help=f"noise standard deviation of {', '.join(kernels_taking('noise_scale'))} "
        "[default: sqrt(2 step size), exact Langevin]",
    )
    parser.add_argument("--num-replicas", type=int_in(2), metavar="INT",
                        help="replicas on the ladder of parallel_tempering (only the beta = 1 replica is kept) "
                        "[default: 8]")
    parser.add_argument("--base-kernel", choices=tuple(BASE_KERNELS), metavar="NAME",
                        help=f"the kernel moving each replica of parallel_tempering, one of {', '.join(BASE_KERNELS)} "
                        "[default: block_gibbs where the model has conditionals, else site_gibbs / mala]")
    parser.add_argument("--reference", choices=REFERENCES, metavar="NAME",
                        help=f"what parallel_tempering's ladder starts from, one of {', '.join(REFERENCES)} "
                        "(docs/parallel-tempering.md) [default: temperature where the model has it]")
    seed_option(parser, "PRNG seed; the same seed gives the same draws")
    max_memory_option(parser, "the draws and statistics")
    quiet_option(parser)


def _checked_kernel(args: argparse.Namespace, model: ep.Potential) -> tuple[str, dict[str, float]]:
    """The kernel and its options, checked against the table before any work (one-line errors)."""
    kernel = args.kernel or default_kernel(model)
    spec = KERNELS[kernel]
    if spec.gradient and model.support not in spec.supports:
        raise ValueError(
            f"--kernel {kernel} follows gradients, so it needs a real-valued model; {args.model} holds a "
            f"{describe_model(model)} model. Use --kernel block_gibbs or site_gibbs (or leave --kernel out)"
        )
    options = {name: getattr(args, name) for name in _OPTIONS if getattr(args, name) is not None}
    for name in options:
        if name not in spec.options:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} applies to --kernel {', '.join(kernels_taking(name))}, not to {kernel}"
                             + ("" if args.kernel else f" (the default kernel of a {describe_model(model)} model)"))
    check_kernel(kernel, model, options)  # what ep.sample would refuse, refused before any file
    check_kernel_options(spec, model, options, owner="sample")
    return kernel, options


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
def run(args: argparse.Namespace) -> int:
    """Run many MCMC chains on a saved model and store the draws.

    Loads MODEL_FILE (written by ep.save or 'ebm-ppl quickstart'), runs ep.sample with the chosen
    kernel (--step-size and --noise-scale are passed only when given), prints ep.diagnose's table
    (R-hat, bulk/tail ESS, MCSE of lp, the log density, and of the flagged coordinates) and saves
    the draws with their sampler statistics under ArviZ's names (lp, energy = the Hamiltonian for
    hmc/nuts, acceptance_rate, diverging, ...) as netCDF in DIR/samples.nc (read it with
    xarray.open_datatree(path, engine="h5netcdf")). 'ebm-ppl report DIR' turns it into an HTML
    report with ArviZ's trace, rank, ESS, autocorrelation and energy plots.
    """
    model = load_model(args.model)
    kernel, options = _checked_kernel(args, model)
    _require_hdf5("writing samples.nc")
    with out_dir(args.out) as out:
        return _sample(args, model, kernel, options, out)


def _sample(args: argparse.Namespace, model: ep.Potential, kernel: str, options: dict[str, float], out: Path) -> int:
    """Run the chains, save the draws, print the diagnostics (``run`` after its checks)."""
    path = out / SAMPLES_FILE

    print(f"Sampling {args.model} ({describe_model(model)}) with {kernel}: {args.chains} chains x "
          f"{args.samples} draws (thin {args.thin}) after {args.warmup} warm-up steps, seed {args.seed}"
          + (", " + ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in options.items()) if options else "")
          + ".", flush=True)
    t0 = time.perf_counter()
    data = ep.sample(
        jax.random.key(args.seed), model, kernel,
        num_chains=args.chains, num_warmup=args.warmup, num_samples=args.samples, thin=args.thin,
        progress=progress_enabled(args.quiet), **max_memory_bytes(args), **options,
    )
    seconds = time.perf_counter() - t0
    data.attrs.update({
        "created_by": f"{PROG} sample", "ebm_ppl_version": ep.__version__,
        "model_file": str(Path(args.model).expanduser().resolve()),
        "kernel": kernel, "seed": args.seed, "num_warmup": args.warmup, "thin": args.thin,
        **{f"kernel_{k}": v for k, v in options.items()},
    })
    write_samples(data, path)

    print(f"({seconds:.1f} s on {jax.default_backend()}, compilation included)")
    print()
    print(ep.diagnose(data))
    print()
    print(f"Saved {args.chains} chains x {args.samples} draws to {path}")
    if not args.quiet:
        print_hints("Next step:", [(f"{PROG} report {shlex.quote(str(out))}",
                                    "HTML report: ArviZ's trace, rank, ESS and energy plots")])
    return EXIT_OK
