"""Argument checks shared by every public function, and the memory limit of what a call stores.

Each checker takes the value and its name and returns the value as a plain Python number (or
bool), or raises a ValueError naming the argument, what it must be and what it got. Python
numbers, NumPy scalars and 0-d NumPy or JAX arrays holding a value are accepted alike
(``k=np.int64(1)``, ``step_size=jnp.asarray(0.1)``); booleans are not numbers, complex numbers
are not real, and a traced value (inside ``jit``) is refused with a message saying so, since a
setting that decides shapes or loop lengths must be known when the program is built.

:func:`check_memory` refuses, before any work, a request whose stored arrays would exceed
:data:`MEMORY_LIMIT` bytes (or the call's own ``max_memory``): a sampler asked for 2e8 chains
says so in one line instead of failing in the allocator after seconds of compiling.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

import jax
import numpy as np

__all__ = ["MEMORY_LIMIT", "MAX_MEMORY_OPTION", "number", "positive_float", "non_negative_float", "probability",
           "int_at_least", "positive_int", "non_negative_int", "flag", "check_memory", "format_bytes", "PACKAGE_DIR"]

#: The package's folder: ``warnings.warn(..., skip_file_prefixes=(PACKAGE_DIR,))`` points a warning
#: at the user's line however deep inside ebm_ppl it was raised.
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

#: The most bytes the arrays a call stores may take (draws, chains, per-temperature arrays),
#: 16 GiB. A call's ``max_memory=`` overrides it; assigning ``ebm_ppl.checks.MEMORY_LIMIT``
#: changes the default for the whole process.
MEMORY_LIMIT = 16 * 2**30


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, jax.Array))


def _scalar(value: Any, name: str, kind: str, accept) -> Any:
    """``value`` as a NumPy/Python scalar when it is one of ``kind`` (``accept(dtype)`` for 0-d
    arrays); ValueError naming ``name`` otherwise."""
    if _is_array(value):
        if isinstance(value, jax.core.Tracer):
            raise ValueError(f"{name} must be a concrete {kind} (it decides what is compiled), got a traced "
                             "value; pass a Python or NumPy number")
        if value.ndim != 0 or not accept(np.dtype(value.dtype)):
            raise ValueError(f"{name} must be {_article(kind)}, got an array of shape {tuple(value.shape)} and "
                             f"dtype {value.dtype}")
        return np.asarray(value)[()]
    return value


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def number(value: Any, name: str) -> float:
    """A finite real number (not a bool, not complex) as a Python float."""
    value = _scalar(value, name, "real number",
                    lambda d: np.issubdtype(d, np.integer) or np.issubdtype(d, np.floating))
    if _is_bool(value) or not isinstance(value, numbers.Real):
        if _is_bool(value):  # bools are numbers.Complex too: name them first
            kind = f"a bool ({value!r})"
        else:
            kind = "a complex number" if isinstance(value, numbers.Complex) else repr(value)
        raise ValueError(f"{name} must be a real number, got {kind}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def positive_float(value: Any, name: str) -> float:
    """A finite number > 0."""
    x = number(value, name)
    if x <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return x


def non_negative_float(value: Any, name: str) -> float:
    """A finite number >= 0."""
    x = number(value, name)
    if x < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return x


def probability(value: Any, name: str) -> float:
    """A number strictly between 0 and 1."""
    x = number(value, name)
    if not 0 < x < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return x


def _integer(value: Any, name: str, wanted: str) -> int:
    value = _scalar(value, name, "integer", lambda d: np.issubdtype(d, np.integer))
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def int_at_least(value: Any, name: str, low: int) -> int:
    """An integer >= ``low`` as a Python int; the message says ``an integer >= low``."""
    wanted = f"an integer >= {low}"
    n = _integer(value, name, wanted)
    if n < low:
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return n


def positive_int(value: Any, name: str) -> int:
    """An integer >= 1 as a Python int; the message says ``a positive integer``."""
    n = _integer(value, name, "a positive integer")
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return n


def non_negative_int(value: Any, name: str) -> int:
    """An integer >= 0 as a Python int; the message says ``a non-negative integer``."""
    n = _integer(value, name, "a non-negative integer")
    if n < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return n


def flag(value: Any, name: str) -> bool:
    """True or False (a Python, NumPy or 0-d array bool); a string such as ``"no"`` is refused."""
    value = _scalar(value, name, "bool", lambda d: d == np.bool_)
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def format_bytes(nbytes: float) -> str:
    """``1.5 GiB``, ``12 MiB``, ``51.2 TiB``: binary units, three significant digits."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{int(nbytes)} bytes"


#: How a call that takes ``max_memory`` says the limit can be raised.
MAX_MEMORY_OPTION = "max_memory= (bytes; ebm-ppl's --max-memory, GiB)"


def check_memory(nbytes: float, what: str, max_memory: Any = None, *, owner: str, option: str | None = None) -> None:
    """Refuse, before any work, a request whose stored arrays need more than ``max_memory`` bytes
    (None: :data:`MEMORY_LIMIT`); the ValueError gives the estimate, what it counts and the limit.

    Args:
        nbytes: the estimated size of the arrays the call would store.
        what: how the estimate was formed, e.g. ``"1000 draws x 4 chains x 64 values x 4 bytes"``.
        max_memory: the call's own limit in bytes, or None.
        owner: the function named in the message.
        option: the call's own way to raise the limit, named in the message (e.g.
            :data:`MAX_MEMORY_OPTION`); None: only :data:`MEMORY_LIMIT` is named.
    """
    limit = MEMORY_LIMIT if max_memory is None else positive_float(max_memory, f"{owner}: max_memory")
    if nbytes > limit:
        how = "ebm_ppl.checks.MEMORY_LIMIT" if option is None else f"{option} or ebm_ppl.checks.MEMORY_LIMIT"
        raise ValueError(f"{owner}: the request needs about {format_bytes(nbytes)} ({what}), more than the "
                         f"limit of {format_bytes(limit)}; ask for less, or raise the limit with {how} if the "
                         "machine has the memory")
