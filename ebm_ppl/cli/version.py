"""``ebm-ppl version``: the installed version, and with ``--verbose`` what a bug report needs."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys

import jax

from ebm_ppl import __version__
from ebm_ppl.cli.app import EXIT_OK, PROG, command

__all__ = ["VERSION_PACKAGES"]

#: The dependencies ``version --verbose`` lists.
VERSION_PACKAGES = (
    "jax", "jaxlib", "equinox", "blackjax", "numpyro", "optax", "arviz", "numpy", "scikit-learn",
)


def _version_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose", "-v", action="store_true",
        help="also list Python, the main dependencies and JAX's devices (for bug reports)",
    )


@command(
    "version",
    help="print the version (with -v also dependencies and devices)",
    example="version\nversion --verbose",
    arguments=_version_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Print the installed ebm_ppl version; with --verbose also Python, dependencies and devices."""
    print(f"{PROG} {__version__}")
    if args.verbose:
        print(f"python {platform.python_version()} ({sys.executable})")
        for package in VERSION_PACKAGES:
            try:
                print(f"{package} {importlib.metadata.version(package)}")
            except importlib.metadata.PackageNotFoundError:
                print(f"{package} (not installed)")
        devices = jax.devices()
        print(f"jax backend {jax.default_backend()}: {len(devices)} device(s): "
              + ", ".join(str(d) for d in devices))
    return EXIT_OK
