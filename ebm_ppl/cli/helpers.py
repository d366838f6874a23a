"""What the commands share: option types and options, the progress bar, output files, warnings,
models in a few words, and plain-text tables and hints."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

import ebm_ppl as ep
from ebm_ppl import checks
from ebm_ppl.archive import atomic_write
from ebm_ppl.cli.app import PROG
from ebm_ppl.sharding import is_writer

__all__ = ["int_in", "float_at_least", "seed_option", "quiet_option", "max_memory_option", "max_memory_bytes", "Steps",
           "steps", "progress_enabled", "prepare_out_dir", "out_dir", "write_json", "write_atomic", "finite_or_none",
           "warnings_to", "print_warnings", "load_model", "describe_model", "format_table", "print_hints"]


# -- option types (argparse turns their ArgumentTypeErrors into usage errors) -----------------
def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer ``>= lo`` (and ``<= hi``)."""

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


def float_at_least(lo: float, *, strict: bool) -> Callable[[str], float]:
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


def seed_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--seed INT`` in [0, 2^32 - 1], default 0; ``help`` ends with its default."""
    parser.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0, metavar="INT",
                        help=f"{help} [default: %(default)s]")


def max_memory_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--max-memory GIB``: the most memory ``what`` may take; larger requests are refused up front."""
    parser.add_argument("--max-memory", type=float_at_least(0.0, strict=True), metavar="GIB",
                        help=f"the most memory {what} may take, in GiB; a larger request is refused before "
                        f"any work [default: {checks.MEMORY_LIMIT / 2**30:g}, ebm_ppl.checks.MEMORY_LIMIT]")


def max_memory_bytes(args: argparse.Namespace) -> dict[str, int]:
    """``{"max_memory": bytes}`` when ``--max-memory`` is given, else ``{}`` (the library's limit)."""
    return {} if args.max_memory is None else {"max_memory": int(args.max_memory * 2**30)}


def quiet_option(parser: argparse.ArgumentParser, help: str = "no progress bar and no next-step hints") -> None:
    """``--quiet``."""
    parser.add_argument("--quiet", action="store_true", help=help)


# -- progress -----------------------------------------------------------------------------------
class Steps:
    """A tqdm bar over named steps on stderr; silent when disabled. ``steps(label)`` starts a step."""

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
def steps(total: int, *, quiet: bool) -> Iterator[Steps]:
    """A :class:`Steps` bar of ``total`` steps, shown when :func:`progress_enabled`; closed on exit."""
    bar = Steps(total, progress_enabled(quiet))
    try:
        yield bar
    finally:
        bar.close()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_enabled(quiet: bool) -> bool:
    """Progress bars (the library's ``progress=``) only on an interactive stderr and without --quiet."""
    return not quiet and _isatty(sys.stderr)


# -- files ------------------------------------------------------------------------------------
def prepare_out_dir(out: str) -> Path:
    """Create ``out`` (and parents); refuse a file or an unwritable folder, before any work."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: directory is not writable")
    return path


@contextlib.contextmanager
def out_dir(out: str) -> Iterator[Path]:
    """:func:`prepare_out_dir`'s folder for the rest of a command. When the command fails inside
    (an error, Ctrl-C), the folders this call created are removed again if they are still empty,
    so a failed command leaves no empty --out behind; a folder that existed, or holds files, stays."""
    path = Path(out).expanduser().absolute()
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    folder = prepare_out_dir(out)
    try:
        yield folder
    except BaseException:
        for p in created:
            try:
                p.rmdir()  # only an empty folder; stop at the first that is not
            except OSError:
                break
        raise


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON atomically (see :func:`ebm_ppl.archive.atomic_write`); in a
    multi-process run only process 0 writes."""
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path`` and move it onto ``path``; in a
    multi-process run (``jax.distributed``) only process 0 writes."""
    if is_writer():
        atomic_write(path, lambda tmp: write(Path(tmp)))


def finite_or_none(tree: Any) -> Any:
    """NaN/inf become None (JSON has no such numbers, and a degenerate run should still be saved),
    tuples lists, NumPy scalars Python ones."""
    if isinstance(tree, dict):
        return {k: finite_or_none(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [finite_or_none(v) for v in tree]
    if isinstance(tree, (np.floating, np.integer, np.bool_)):
        tree = tree.item()
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


# -- warnings ---------------------------------------------------------------------------------
@contextlib.contextmanager
def warnings_to(notes: list[str]) -> Iterator[None]:
    """Collect the RuntimeWarnings raised inside (degenerate AIS weights, training divergence) into
    ``notes`` as one-line texts, each once, for :func:`print_warnings`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        yield
    for w in caught:
        if issubclass(w.category, RuntimeWarning):
            text = " ".join(str(w.message).split())
            if text not in notes:
                notes.append(text)


def print_warnings(notes: Sequence[str]) -> None:
    """Each note as ``ebm-ppl: warning: ...`` on stderr."""
    for note in notes:
        print(f"{PROG}: warning: {note}", file=sys.stderr)


# -- models -----------------------------------------------------------------------------------
def load_model(path: str) -> ep.Potential:
    """``ep.load`` with errors that name the file: missing, a folder, or not an ebm_ppl model."""
    return ep.load(Path(path).expanduser())  # FileNotFoundError / IsADirectoryError / ValueError


def describe_model(model: ep.Potential) -> str:
    """``bernoulli_rbm, 64 visible x 16 hidden, binary`` -- family, size and support in a few words."""
    family = getattr(type(model), "name", type(model).__name__)
    n_visible, n_hidden = getattr(model, "n_visible", None), getattr(model, "n_hidden", None)
    if n_visible is not None and n_hidden is not None:
        size = f"{n_visible} visible x {n_hidden} hidden"
    else:
        size = "event shape " + "x".join(str(d) for d in model.event_shape)
    return f"{family}, {size}, {model.support.value}"


# -- plain text -------------------------------------------------------------------------------
def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-align the first column, right-align the others."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def print_hints(heading: str, hints: Sequence[tuple[str, str]]) -> None:
    """A blank line, ``heading``, then one ``  COMMAND   # what it does`` line per hint, aligned."""
    width = max(len(cmd) for cmd, _ in hints)
    print()
    print(heading)
    for cmd, note in hints:
        print(f"  {cmd.ljust(width)}   # {note}")
