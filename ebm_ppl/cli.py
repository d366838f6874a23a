"""The ``ebm-ppl`` command (also ``python -m ebm_ppl``).

Each subcommand is one function ``run(args) -> exit code`` registered with :func:`command`, which
records its help line, example and argument setup in :data:`COMMANDS`; :func:`build_parser`
turns that table into an argparse parser. Adding a subcommand is one decorated function, here or
in a module ``ebm_ppl/cli_NAME.py`` imported where this file registers ``cli_sample`` (sample,
report) and ``cli_logz`` (logz)::

    def _energy_arguments(parser):
        parser.add_argument("model", help="a saved .ebm file")

    @command("energy", help="print the energy of the digits under a saved model",
             example="energy runs/quickstart/rbm.ebm", arguments=_energy_arguments)
    def _energy(args):
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
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from tqdm import tqdm

import ebm_ppl as ep
from ebm_ppl._version import __version__
from ebm_ppl.potentials.enumeration import DEFAULT_MAX_TERMS

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
_LISTED_FIRST = ("quickstart", "sample", "report", "logz")
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
    """Write ``payload`` as JSON atomically (temporary file in the same folder, then rename)."""
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:  # mode from the umask, like any new file
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, fsync it, move it onto ``path``.

    A reader never sees half a file, and on any failure the temporary file is removed and an
    existing ``path`` is left as it was.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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


# -- quickstart -------------------------------------------------------------------------------
#: Standard deviation of the RBM's initial weights (Hinton's practical guide).
QUICKSTART_INIT_SCALE = 0.01


def _max_enumerable_hidden() -> int:
    return int(math.log2(DEFAULT_MAX_TERMS))


def _quickstart_arguments(parser: argparse.ArgumentParser) -> None:
    max_hidden = _max_enumerable_hidden()
    parser.add_argument(
        "--out", default="runs/quickstart", metavar="DIR",
        help="folder for the saved models and summary.json (created; files are overwritten) "
        "[default: %(default)s]",
    )
    parser.add_argument(
        "--seed", type=_int_in(0, 2**32 - 1), default=0, metavar="INT",
        help="seed of the RBM's random initial weights [default: %(default)s]",
    )
    parser.add_argument(
        "--n-hidden", type=_int_in(1, max_hidden), default=16, metavar="INT",
        help=f"hidden units, 1..{max_hidden}; exact log Z sums over 2^n_hidden hidden states "
        "[default: %(default)s]",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no next-step hints")


@command(
    "quickstart",
    help="exact log Z and test log-likelihood of small RBMs on the digits",
    example="quickstart --out runs/quickstart --n-hidden 16\nquickstart --quiet --n-hidden 8 --seed 1",
    arguments=_quickstart_arguments,
)
def _quickstart(args: argparse.Namespace) -> int:
    """A first run, in seconds on a laptop CPU.

    Loads the binarized 8x8 digits (train 1000 / validation 350 / test 447), builds the
    base-rate model (independent pixels with the training marginals, Salakhutdinov & Murray
    2008; log Z = sum_i softplus(b_i) + n_hidden log 2) and an untrained Bernoulli RBM with the
    same visible biases and small random weights. For each it computes the exact log Z by
    enumerating the hidden layer and the mean test log-likelihood, prints a table, and saves
    the models (base_rate.ebm, rbm.ebm) and summary.json into --out.
    """
    out = _prepare_out_dir(args.out)
    n_hidden = args.n_hidden
    quiet = args.quiet

    with _steps(6, quiet=quiet) as step:
        step("loading digits")
        data = ep.data.digits(binarize=True)
        n_visible = data.x_train.shape[1]

        step("building models")
        base = ep.BernoulliRBM.base_rate(data.x_train, n_hidden)
        init = ep.BernoulliRBM.init(
            jax.random.key(args.seed), n_visible, n_hidden, scale=QUICKSTART_INIT_SCALE
        )
        rbm = ep.BernoulliRBM(init.W, base.b, init.c)  # base-rate visible biases (Hinton's guide)
        models = {"base_rate": base, "rbm": rbm}

        step("compiling exact log Z")
        t0 = time.perf_counter()
        ep.log_partition(base).block_until_ready()  # both models share shapes: one compilation
        compile_seconds = time.perf_counter() - t0

        step("exact log Z")
        results: dict[str, dict[str, Any]] = {}
        for name, model in models.items():
            t0 = time.perf_counter()
            log_z = float(ep.log_partition(model).block_until_ready())
            results[name] = {"log_z": log_z, "log_z_seconds": time.perf_counter() - t0}
        closed_form = float(jnp.sum(jax.nn.softplus(base.b)) + n_hidden * math.log(2.0))
        results["base_rate"]["log_z_closed_form"] = closed_form

        step("log-likelihoods")
        for name, model in models.items():
            for split, x in (("train", data.x_train), ("test", data.x_test)):
                ll = float(jnp.mean(-model.free_energy(x))) - results[name]["log_z"]
                results[name][f"{split}_log_likelihood_nats"] = ll
                results[name][f"{split}_bits_per_pixel"] = -ll / (n_visible * math.log(2.0))

        step("saving")
        files = {name: out / f"{name}.ebm" for name in models}
        for name, model in models.items():
            ep.save(files[name], model, metadata={
                "created_by": f"{PROG} quickstart", "model": name, "seed": args.seed,
                "data": "digits, binarized (pixel >= 8)",
            })
            results[name]["file"] = files[name].name
        summary = {
            "command": "quickstart",
            "ebm_ppl_version": __version__,
            "jax_version": jax.__version__,
            "backend": jax.default_backend(),
            "seed": args.seed,
            "n_hidden": n_hidden,
            "init_scale": QUICKSTART_INIT_SCALE,
            "data": {
                "name": "digits",
                "binarize": True,
                "n_visible": n_visible,
                "n_train": len(data.x_train),
                "n_val": len(data.x_val),
                "n_test": len(data.x_test),
            },
            "jit_compile_seconds": compile_seconds,
            "models": results,
        }
        _check_finite(summary)
        summary_path = out / "summary.json"
        _write_json(summary_path, summary)

    header = ["model", "hidden", "log Z", "closed form", "log Z time", "test LL", "test NLL"]
    units = ["", "", "(nats)", "(nats)", "(ms)", "(nats/image)", "(bits/pixel)"]
    rows = []
    for name, r in results.items():
        cf = r.get("log_z_closed_form")
        rows.append([
            name,
            str(n_hidden),
            f"{r['log_z']:.4f}",
            f"{cf:.4f}" if cf is not None else "-",
            f"{1e3 * r['log_z_seconds']:.1f}",
            f"{r['test_log_likelihood_nats']:.3f}",
            f"{r['test_bits_per_pixel']:.4f}",
        ])
    print(f"Binarized digits: {len(data.x_train)} train / {len(data.x_val)} validation / "
          f"{len(data.x_test)} test images of {n_visible} pixels; exact log Z by enumerating "
          f"2^{n_hidden} hidden states on {jax.default_backend()} "
          f"(JIT compile {compile_seconds:.2f} s, not in the timings).")
    print()
    print(_format_table(header, [units, *rows]))
    print()
    print("base_rate: independent pixels (W = 0); rbm: untrained, small random weights, same biases.")
    print()
    print(f"Saved to {out}/:")
    for name, path in files.items():
        print(f"  {path}")
    print(f"  {summary_path}")
    if not quiet:
        rbm_file = shlex.quote(str(files["rbm"]))
        samples_dir = shlex.quote(str(out / "samples"))
        hints = [
            (f"{PROG} sample {rbm_file} --out {samples_dir}", "MCMC draws of the rbm + diagnostics"),
            (f"{PROG} report {samples_dir}", "HTML report of those draws"),
            (f"{PROG} logz {rbm_file} --reverse --data digits", "AIS log Z against the exact value"),
            (f"python -c \"import ebm_ppl as ep; m = ep.load({str(files['rbm'])!r}); "
             "print(ep.log_partition(m))\"", ""),
            (f"{PROG} quickstart --n-hidden 20 --out runs/quickstart-h20", "a wider RBM"),
            (f"{PROG} --help", "all commands"),
        ]
        width = max(len(c) for c, note in hints if note)
        print()
        print("Next steps:")
        for cmd, note in hints:
            print(f"  {cmd.ljust(width)}   # {note}" if note else f"  {cmd}")
    return EXIT_OK


def _check_finite(tree: Any, where: str = "summary") -> None:
    """Refuse NaN/inf anywhere in the summary (JSON cannot hold them; they signal a bug)."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(tree, float) and not math.isfinite(tree):
        raise RuntimeError(f"quickstart computed a non-finite value for {where}: {tree}")


# -- commands in their own modules (imported here so that they register) ----------------------
# They import this module's helpers, all defined above. Run as ``python -m ebm_ppl.cli`` this file
# is __main__, a second copy; the guard leaves the registering to the real ebm_ppl.cli.
if __name__ != "__main__":
    from ebm_ppl import cli_logz as _cli_logz  # noqa: E402,F401  logz
    from ebm_ppl import cli_sample as _cli_sample  # noqa: E402,F401  sample, report


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
