"""The ``ebm-ppl`` command (also ``python -m ebm_ppl``).

Each subcommand is one function ``run(args) -> exit code`` registered with :func:`command`, which
records its help line, example and argument setup in :data:`COMMANDS`; :func:`build_parser`
turns that table into an argparse parser. Adding a subcommand is one decorated function, here or
in a module ``ebm_ppl/cli_NAME.py`` imported where this file registers ``cli_quickstart``
(quickstart), ``cli_train`` (train), ``cli_sample`` (sample, report) and ``cli_logz`` (logz)::

    def _energy_arguments(parser):
        parser.add_argument("model", help="a saved .ebm file")

    @command("energy", help="print the energy of the digits under a saved model",
             example="energy runs/quickstart/rbm.ebm", arguments=_energy_arguments)
    def unbatched_energy(args):
        ...
        return 0

Exit codes: 0 success; 2 a usage error or a problem the user can fix (bad option value,
unwritable output folder, invalid input), reported as one line ``ebm-ppl: error: ...`` on stderr
without a traceback (set ``EBM_PPL_TRACEBACK=1`` to see it); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import inspect
import json
import math
import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import jax
import numpy as np
from tqdm import tqdm

import ebm_ppl as ep
from ebm_ppl.archive import atomic_write
from ebm_ppl._version import __version__

__all__ = ["main", "build_parser", "command", "Command", "COMMANDS"]

PROG = "ebm-ppl"
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
TRACEBACK_ENV = "EBM_PPL_TRACEBACK"


# -- the command table ------------------------------------------------------------------------
class Command(NamedTuple):
    """One subcommand: its name, one-line help, an example for the epilog, and its functions."""

    name: str
    help: str
    description: str
    example: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


#: Subcommands by name, in the order they were registered.
COMMANDS: dict[str, Command] = {}
#: ``ebm-ppl --help`` lists these first, in this order (the workflow), then the others in the
#: order they were registered, and ``version`` last. Import order then does not matter.
_LISTED_FIRST = ("quickstart", "train", "sample", "report", "logz")
_LISTED_LAST = ("version",)


def _listed() -> list[Command]:
    def rank(c: Command) -> int:
        if c.name in _LISTED_FIRST:
            return _LISTED_FIRST.index(c.name)
        return len(_LISTED_FIRST) + (1 if c.name in _LISTED_LAST else 0)

    return sorted(COMMANDS.values(), key=rank)  # stable: registration order within a rank


def command(
    name: str,
    *,
    help: str,
    example: str,
    arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register the decorated ``run(args) -> int`` as subcommand ``name``.

    Args:
        name: the subcommand (``ebm-ppl NAME``).
        help: one line for the command list.
        example: one or more example invocations, shown in ``ebm-ppl NAME --help``.
        arguments: adds the subcommand's options to its parser.

    The function's docstring becomes the description in ``--help``.
    """

    def decorator(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        if name in COMMANDS:
            raise ValueError(f"ebm-ppl subcommand {name!r} is registered twice")
        description = inspect.cleandoc(run.__doc__ or help)
        COMMANDS[name] = Command(name, help, description, example, arguments or (lambda p: None), run)
        return run

    return decorator


class _UsageError(Exception):
    """A command-line usage error (argparse's), reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises instead of printing usage and exiting, so main() owns the output."""

    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's example lines as written; wider column for option names."""

    def __init__(self, prog: str, **kwargs: Any):
        kwargs.setdefault("max_help_position", 28)
        super().__init__(prog, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The ``ebm-ppl`` parser with one subparser per entry of :data:`COMMANDS`."""
    commands = "\n".join(f"  {PROG} {c.example.splitlines()[0]}" for c in _listed())
    parser = _Parser(
        prog=PROG,
        description="Energy-based models as first-class potentials for JAX probabilistic programming.",
        epilog=(
            f"examples:\n{commands}\n\n"
            f"Run '{PROG} COMMAND --help' for a command's options. Errors are reported as one line; "
            f"set {TRACEBACK_ENV}=1 for the full traceback."
        ),
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for c in _listed():
        example = "\n".join(f"  {PROG} {line}" for line in c.example.splitlines())
        p = sub.add_parser(
            c.name,
            help=c.help,
            description=c.description,
            epilog=f"example:\n{example}",
            formatter_class=_Formatter,
        )
        c.arguments(p)
        p.set_defaults(_run=c.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ebm-ppl`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        try:
            args, extra = parser.parse_known_args(argv)
        except SystemExit as exc:  # --help and --version print and exit 0
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        if args.command is None:
            raise _UsageError(
                f"missing command; choose from {', '.join(COMMANDS)} (see '{PROG} --help')"
            )
        if extra:
            raise _UsageError(
                f"unrecognized arguments: {' '.join(extra)} (see '{PROG} {args.command} --help')"
            )
        return int(args._run(args))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (_UsageError, ValueError, OSError) as exc:
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.strerror}: {exc.filename}"  # drop the "[Errno 13]" prefix
    return text or type(exc).__name__


# -- option types (argparse turns their ValueErrors into usage errors) ------------------------
def _int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def _float_at_least(lo: float, *, strict: bool) -> Callable[[str], float]:
    """A finite float ``> lo`` (``strict``) or ``>= lo``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < lo or (strict and value == lo):
            bound = f"> {lo:g}" if strict else f">= {lo:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


# -- progress ---------------------------------------------------------------------------------
class _Steps:
    """A tqdm bar over named steps on stderr; silent when disabled."""

    def __init__(self, total: int, enabled: bool):
        self._bar = tqdm(total=total, file=sys.stderr, disable=not enabled, unit="step", leave=False)
        self._started = False

    def __call__(self, label: str) -> None:
        if self._started:
            self._bar.update(1)
        self._started = True
        self._bar.set_description_str(label)

    def close(self) -> None:
        if self._started:
            self._bar.update(1)
        self._bar.close()


@contextlib.contextmanager
def _steps(total: int, *, quiet: bool) -> Iterator[_Steps]:
    enabled = not quiet and _isatty(sys.stderr)
    steps = _Steps(total, enabled)
    try:
        yield steps
    finally:
        steps.close()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _progress_enabled(quiet: bool) -> bool:
    """Progress bars (the library's ``progress=``) only on an interactive stderr and without --quiet."""
    return not quiet and _isatty(sys.stderr)


# -- files ------------------------------------------------------------------------------------
def _prepare_out_dir(out: str) -> Path:
    """Create ``out`` (and parents); refuse a file or an unwritable folder, before any work."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: directory is not writable")
    return path


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON atomically (see :func:`ebm_ppl.archive.atomic_write`)."""
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path`` and move it onto ``path``."""
    atomic_write(path, lambda tmp: write(Path(tmp)))


def _finite_or_none(tree: Any) -> Any:
    """NaN/inf become None (JSON has no such numbers), tuples lists, NumPy scalars Python ones."""
    if isinstance(tree, dict):
        return {k: _finite_or_none(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_finite_or_none(v) for v in tree]
    if isinstance(tree, (np.floating, np.integer, np.bool_)):
        tree = tree.item()
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


@contextlib.contextmanager
def _warnings_to(notes: list[str]) -> Iterator[None]:
    """Collect the RuntimeWarnings raised inside (degenerate AIS weights, training divergence) into
    ``notes`` as one-line texts, for the command to print as ``ebm-ppl: warning: ...``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        yield
    for w in caught:
        if issubclass(w.category, RuntimeWarning):
            text = " ".join(str(w.message).split())
            if text not in notes:
                notes.append(text)


def _load_model(path: str) -> ep.Potential:
    """``ep.load`` with errors that name the file: missing, a folder, or not an ebm_ppl model."""
    model = ep.load(Path(path).expanduser())  # FileNotFoundError / IsADirectoryError / ValueError
    return model


def _describe_model(model: ep.Potential) -> str:
    """``bernoulli_rbm, 64 visible x 16 hidden, binary`` -- family, size and support in a few words."""
    family = getattr(type(model), "name", type(model).__name__)
    n_visible, n_hidden = getattr(model, "n_visible", None), getattr(model, "n_hidden", None)
    if n_visible is not None and n_hidden is not None:
        size = f"{n_visible} visible x {n_hidden} hidden"
    else:
        size = "event shape " + "x".join(str(d) for d in model.event_shape)
    return f"{family}, {size}, {model.support.value}"


def _format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-align the first column, right-align the others."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


# -- commands in their own modules (imported here so that they register) ----------------------
# They import this module's helpers, all defined above. Run as ``python -m ebm_ppl.cli`` this file
# is __main__, a second copy; the guard leaves the registering to the real ebm_ppl.cli.
if __name__ != "__main__":
    from ebm_ppl import cli_logz as _cli_logz  # noqa: E402,F401  logz
    from ebm_ppl import cli_quickstart as _cli_quickstart  # noqa: E402,F401  quickstart
    from ebm_ppl import cli_sample as _cli_sample  # noqa: E402,F401  sample, report
    from ebm_ppl import cli_train as _cli_train  # noqa: E402,F401  train


# -- version ----------------------------------------------------------------------------------
_VERSION_PACKAGES = (
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
def _version(args: argparse.Namespace) -> int:
    """Print the installed ebm_ppl version; with --verbose also Python, dependencies and devices."""
    print(f"{PROG} {__version__}")
    if args.verbose:
        print(f"python {platform.python_version()} ({sys.executable})")
        for package in _VERSION_PACKAGES:
            try:
                print(f"{package} {importlib.metadata.version(package)}")
            except importlib.metadata.PackageNotFoundError:
                print(f"{package} (not installed)")
        devices = jax.devices()
        print(f"jax backend {jax.default_backend()}: {len(devices)} device(s): "
              + ", ".join(str(d) for d in devices))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    # ``python -m ebm_ppl.cli``: run the imported module's main, whose table the command modules
    # (which import ebm_ppl.cli) registered into; this file's own copy, run as __main__, is not it.
    from ebm_ppl.cli import main as _main

    sys.exit(_main())
