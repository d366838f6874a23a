"""The command table, the ``ebm-ppl`` parser built from it, :func:`main` and the exit codes.

Exit codes: :data:`EXIT_OK` (0) success; :data:`EXIT_USAGE` (2) a usage error or a problem the user
can fix (bad option value, unwritable output folder, invalid input), reported as one line
``ebm-ppl: error: ...`` on stderr without a traceback (set ``EBM_PPL_TRACEBACK=1`` to see it);
:data:`EXIT_INTERRUPTED` (130) interrupted.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from typing import Any, Callable, NamedTuple, Sequence

from ebm_ppl import __version__
from ebm_ppl.compiler import CACHE_ENV, cache_dir, enable_persistent_cache

__all__ = ["Command", "COMMANDS", "command", "build_parser", "main", "PROG", "EXIT_OK", "EXIT_USAGE",
           "EXIT_INTERRUPTED", "TRACEBACK_ENV", "COORDINATOR_ENV", "DISTRIBUTED_COMMANDS", "UsageError"]

PROG = "ebm-ppl"
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
TRACEBACK_ENV = "EBM_PPL_TRACEBACK"
#: Set, it makes ``train``, ``sample`` and ``logz`` join a ``jax.distributed`` run.
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
#: The commands that join a multi-process run (and use every device of it).
DISTRIBUTED_COMMANDS = ("train", "sample", "logz")


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


class UsageError(Exception):
    """A command-line usage error (argparse's), reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises instead of printing usage and exiting, so main() owns the output."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's example lines as written; wider column for option names."""

    def __init__(self, prog: str, **kwargs: Any):
        kwargs.setdefault("max_help_position", 28)
        super().__init__(prog, **kwargs)


#: The modules of the built-in subcommands (imported, so that they register, when the parser is built).
COMMAND_MODULES = ("quickstart", "train", "sample", "report", "logz", "version")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``ebm-ppl`` parser with one subparser per entry of :data:`COMMANDS` (the built-in
    commands' modules imported first); with ``command`` one of the built-in commands, only its
    module is imported and only its subparser built (what :func:`main` does for ``ebm-ppl
    COMMAND ...``, so that ``logz`` does not pay for importing ArviZ or ``sample``'s BlackJAX)."""
    import importlib

    only = command in COMMAND_MODULES
    for name in (command,) if only else COMMAND_MODULES:
        importlib.import_module(f"ebm_ppl.cli.{name}")
    listed = [c for c in _listed() if c.name == command] if only else _listed()
    commands = "\n".join(f"  {PROG} {c.example.splitlines()[0]}" for c in listed)
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
    parser.add_argument("--no-compile-cache", action="store_true",
                        help=f"do not keep compiled programs on disk (default: kept in ~/.cache/ebm_ppl/xla, or in "
                             f"${CACHE_ENV}; {CACHE_ENV}=off also disables it); later runs then compile again")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for c in listed:
        example = "\n".join(f"  {PROG} {line}" for line in c.example.splitlines())
        p = sub.add_parser(c.name, help=c.help, description=c.description, epilog=f"example:\n{example}",
                           formatter_class=_Formatter)
        c.arguments(p)
        p.set_defaults(_run=c.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ebm-ppl`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        # before anything starts JAX's backend (the commands' imports do: BlackJAX computes at import)
        joined = bool(os.environ.get(COORDINATOR_ENV)) and _command_word(argv) in DISTRIBUTED_COMMANDS
        if joined:
            _join_distributed()
        word = _command_word(argv)
        asks_help = any(a in ("-h", "--help") for a in argv[:argv.index(word)]) if word is not None else True
        parser = build_parser(None if asks_help else word)
        try:
            args, extra = parser.parse_known_args(argv)
        except SystemExit as exc:  # --help and --version print and exit 0
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        if args.command is None:
            raise UsageError(f"missing command; choose from {', '.join(COMMANDS)} (see '{PROG} --help')")
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see '{PROG} {args.command} --help')")
        if joined:
            _check_same_command(args)
        if not args.no_compile_cache:
            _enable_compile_cache()
        return int(args._run(args))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, ValueError, OSError) as exc:
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``: its first word that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def _join_distributed() -> None:
    """Join the multi-process run named by JAX's environment (``JAX_COORDINATOR_ADDRESS``, with
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or a cluster JAX detects: SLURM, Open MPI, ...):
    ``jax.distributed.initialize``, CPU collectives over gloo. Processes other than 0 compute
    their part and print nothing to stdout; process 0 writes the files."""
    import jax

    def count(name: str) -> int | None:
        text = os.environ.get(name)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"{name}={text!r} is not an integer") from None

    if os.environ.get("JAX_PLATFORMS", "cpu").split(",")[0] in ("", "cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(os.environ[COORDINATOR_ENV], num_processes=count("JAX_NUM_PROCESSES"),
                               process_id=count("JAX_PROCESS_ID"))
    if jax.process_index() != 0:  # stdout (file descriptor 1, for the rest of the process) to the null device
        sys.stdout.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


#: Options each process of a multi-process run may set for itself (they change no computation;
#: --out does: train --resume reads its checkpoint on every process).
_PER_PROCESS = frozenset({"quiet", "no_compile_cache"})


def _check_same_command(args) -> None:
    """Refuse, in every process, a multi-process run whose processes were given other commands or
    settings (``--chains 8`` here, ``--chains 4`` there): their programs would wait for each
    other forever. One small collective that every process reaches before any work."""
    import hashlib

    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return
    settings = sorted((k, repr(v)) for k, v in vars(args).items() if not k.startswith("_") and k not in _PER_PROCESS)
    digest = np.frombuffer(hashlib.sha256(repr(settings).encode()).digest()[:8], np.int32)
    gathered = np.asarray(multihost_utils.process_allgather(digest)).reshape(jax.process_count(), -1)
    differ = [i for i in range(len(gathered)) if not np.array_equal(gathered[i], gathered[0])]
    if differ:
        raise UsageError(f"the {jax.process_count()} processes of this run were given different commands or "
                         f"options (process {differ[0]} differs from process 0); give every process the same "
                         "ones (only --quiet and --no-compile-cache may differ)")


def _enable_compile_cache() -> None:
    """JAX's persistent compilation cache in :func:`ebm_ppl.compiler.cache_dir` (unless the
    environment turns it off); a folder that cannot be used is a one-line warning, never a failure."""
    folder = cache_dir()
    if folder is None:
        return
    try:
        enable_persistent_cache(folder)
    except OSError as exc:
        print(f"{PROG}: warning: compile cache disabled ({_one_line(exc)}); set {CACHE_ENV}=off to silence this",
              file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.strerror}: {exc.filename}"  # drop the "[Errno 13]" prefix
    return text or type(exc).__name__
