"""Optax transformations as static arguments of ``ebm_ppl.fit``'s compiled program.

Optax transformations are closures, which Python compares by identity, so a fresh
``optax.sgd(0.05)`` would compile ``fit``'s program again. :func:`fingerprint` compares them by
value instead (the code of their functions and what the closures hold), and :func:`guarded`
returns one object per fingerprint, with the scale the divergence guard halves appended.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import types
from typing import Any

import jax
import numpy as np
import optax

from ebm_ppl.random import is_key

__all__ = ["guarded", "fingerprint", "settings_digest"]


#: ``guarded`` transformations of recent optimizers, by :func:`fingerprint` (oldest dropped first)
_GUARDED: dict = {}


def _guard(optimizer):
    return optax.chain(optimizer, optax.inject_hyperparams(optax.scale)(step_size=1.0))


def guarded(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` followed by a scale the divergence guard halves (:func:`scale_step`). The
    compiled program takes it as a static argument, so optimizers of equal :func:`fingerprint`
    (``optax.sgd(0.05)`` written twice) get one object and share the program."""
    key = fingerprint(optimizer)
    if key is None:  # something in it cannot be compared by value: the same object, the same program
        try:
            key = ("identity", optimizer, hash(optimizer))
        except TypeError:
            return _guard(optimizer)
    if key not in _GUARDED:
        if len(_GUARDED) >= 32:
            _GUARDED.pop(next(iter(_GUARDED)))
        _GUARDED[key] = _guard(optimizer)
    return _GUARDED[key]


class _Opaque(Exception):
    """Something in an optimizer that :func:`fingerprint` cannot compare by value."""


def fingerprint(obj: Any) -> Any:
    """A hashable value equal for two Optax transformations that compute the same thing: the code
    of their functions, and the values they close over (numbers, strings, small arrays, nested
    transformations and schedules), compared recursively; other hashable objects by their own
    equality. None when something cannot be compared (an unhashable object that is not a
    container, a large array, deep nesting): such an optimizer is then compared by identity."""
    try:
        return _walk(obj, (), stable=False)
    except _Opaque:
        return None


def settings_digest(obj: Any) -> str | None:
    """A hash, the same in every process, of what an optimizer or a gradient estimator computes
    with: its functions by module and qualified name, and the numbers, strings and small arrays
    they close over or hold as fields (dataclasses and Equinox modules field by field). None when
    something in it has no such description; ``ebm_ppl.fit`` keeps it in checkpoints, so that a
    resume with other settings is refused."""
    try:
        return hashlib.sha256(repr(_walk(obj, (), stable=True)).encode()).hexdigest()[:16]
    except _Opaque:
        return None


def _walk(obj: Any, stack: tuple[int, ...], stable: bool) -> Any:
    """:func:`fingerprint`'s value (``stable=False``: functions by their code, other objects by
    their own equality) or :func:`settings_digest`'s description (``stable=True``: only what
    reads the same in another process: names, numbers, field values)."""
    if id(obj) in stack:
        return ("cycle", stack.index(id(obj)))
    if len(stack) > 40:
        raise _Opaque
    inner = stack + (id(obj),)

    def walk(o):
        return _walk(o, inner, stable)

    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return (type(obj).__name__, repr(obj)) if stable else (type(obj), obj)
    if isinstance(obj, (np.ndarray, np.generic, jax.Array)):
        if is_key(obj) or isinstance(obj, jax.core.Tracer) or obj.size > 4096:
            raise _Opaque
        a = np.asarray(obj)
        return ("array", a.shape, str(a.dtype), a.tobytes().hex() if stable else a.tobytes())
    if stable and isinstance(obj, type):
        return ("type", obj.__module__, obj.__qualname__)
    if isinstance(obj, (tuple, list)):
        return (type(obj).__qualname__ if stable else type(obj), tuple(walk(o) for o in obj))
    if isinstance(obj, dict):
        return ("dict" if stable else type(obj), tuple((walk(k), walk(v)) for k, v in obj.items()))
    if isinstance(obj, functools.partial):
        return ("partial", walk(obj.func), walk(obj.args), walk(obj.keywords))
    if isinstance(obj, types.FunctionType):
        cells = tuple(walk(c.cell_contents) if _filled(c) else ("empty",) for c in obj.__closure__ or ())
        code = (obj.__module__, obj.__qualname__) if stable else (obj.__code__, id(obj.__globals__))
        return ("function", *code, walk(obj.__defaults__), walk(obj.__kwdefaults__), cells)
    if stable and dataclasses.is_dataclass(obj):
        return (type(obj).__module__, type(obj).__qualname__,
                tuple((f.name, walk(getattr(obj, f.name))) for f in dataclasses.fields(obj)))
    if stable:
        raise _Opaque
    try:
        hash(obj)
    except TypeError:
        raise _Opaque from None
    return ("object", type(obj), obj)


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True
