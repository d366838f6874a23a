"""Potentials from plain functions: ``ep.potential(energy_fn, event_shape=..., support=...)``.

    well = ep.potential(lambda x: jnp.sum((x**2 - 1) ** 2), event_shape=(2,), support="real")

    @ep.potential(event_shape=(4, 4), support="binary", params={"J": 0.5}, name="ising")
    def ising(params, s):
        spins = 2 * s - 1
        return -params["J"] * jnp.sum(spins * (jnp.roll(spins, 1, 0) + jnp.roll(spins, 1, 1)))

The energy is written for one example (a scalar for an array of ``event_shape``) and batched by
the library like every family's. With ``params`` (any pytree of numbers) the function takes
``(params, x)``, and the parameters are the potential's array fields: ``ep.fit`` trains them,
NumPyro infers them, ``ep.save`` stores them. Each call makes a small :class:`FunctionPotential`
subclass carrying the function, the event shape and the support; with ``name=`` it is registered,
so that ``ep.load`` finds it again once the same ``ep.potential(...)`` has run in the loading
process (or pass ``like=``).
"""

from __future__ import annotations

import operator
import re
import warnings
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl.potentials.base import Potential, Support, as_support, check_scalar_energy, is_concrete
from ebm_ppl.potentials.registry import get_potential, register_potential

__all__ = ["potential", "FunctionPotential"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class FunctionPotential(Potential):
    """A potential whose energy is a user's function (base of the classes :func:`potential`
    makes; each carries ``energy_fn``, ``takes_params``, the event shape and the support).

    Attributes:
        params: the function's parameters (a pytree of arrays), or None.
    """

    name: ClassVar[str] = "function"
    support: ClassVar[Support] = Support.REAL
    energy_fn: ClassVar[Callable[..., Any]]
    takes_params: ClassVar[bool] = False
    fixed_event_shape: ClassVar[tuple[int, ...]] = ()
    params_template: ClassVar[Any] = None

    params: Any

    def __init__(self, params: Any = None):
        self.params = _as_arrays(params)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return type(self).fixed_event_shape

    def with_params(self, params: Any) -> "FunctionPotential":
        """The same potential with other parameters (of the same structure), e.g. values sampled
        inside a NumPyro model."""
        return type(self)(params)

    def unbatched_energy(self, x):
        fn = type(self).energy_fn
        return fn(self.params, x) if type(self).takes_params else fn(x)

    def to_config(self) -> dict[str, Any]:
        cls = type(self)
        return {"function": _function_name(cls.energy_fn),
                "event_shape": list(cls.fixed_event_shape), "support": cls.support.to_json()}

    @classmethod
    def from_config(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> "FunctionPotential":
        stored, registered = config.get("function"), _function_name(cls.energy_fn)
        qualname = getattr(cls.energy_fn, "__qualname__", "?")
        # same family name, another energy (by qualified name: a module saved as __main__ may be imported by name)
        if stored is not None and stored != registered and not stored.endswith(f".{qualname}"):
            raise ValueError(f"the file's {cls.name!r} was made from the function {stored}; the registered "
                             f"{cls.name!r} is {registered}. Run the definition of {stored} before ep.load "
                             "(or pass like=<that potential>)")
        if tuple(config.get("event_shape", ())) != cls.fixed_event_shape or \
                as_support(config.get("support", "real")) != cls.support:
            raise ValueError(f"the file's {cls.name!r} has event shape {config.get('event_shape')} and support "
                             f"{config.get('support')}; the registered one has {list(cls.fixed_event_shape)} and "
                             f"{cls.support.to_json()}")
        leaves, treedef = jax.tree_util.tree_flatten_with_path(_as_arrays(cls.params_template))
        keys = [".params" + jax.tree_util.keystr(path) for path, _ in leaves]
        if sorted(keys) != sorted(arrays):
            raise ValueError(f"stored arrays {sorted(arrays)} do not match the parameters {sorted(keys)}")
        return cls(jax.tree_util.tree_unflatten(treedef, [jnp.asarray(arrays[k]) for k in keys]))


def _function_name(fn: Callable) -> str:
    """``module.qualname`` of an energy function, as files record it."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


def _as_arrays(params: Any) -> Any:
    """Numeric leaves as JAX arrays (Python floats would be static under jit and untrainable)."""
    if params is None:
        return None

    def leaf(value):
        try:
            given = np.asarray(value) if isinstance(value, (int, float, complex, bool)) else value
            array = jnp.asarray(given)
        except (TypeError, OverflowError):
            array = None
        if array is None or not (jnp.issubdtype(array.dtype, jnp.number) or jnp.issubdtype(array.dtype, jnp.bool_)):
            raise ValueError(f"potential: params must be a pytree of numbers, found {value!r}")
        inexact = jnp.issubdtype(array.dtype, jnp.inexact)
        if is_concrete(array) and inexact and not np.all(np.isfinite(np.asarray(array))):
            overflow = np.all(np.isfinite(np.asarray(given)))  # finite as given, not in JAX's precision
            raise ValueError(f"potential: params must be finite, found {value!r}" + (
                f" (beyond {array.dtype}'s range: rescale, or turn on jax_enable_x64)" if overflow else ""))
        return array

    return jax.tree.map(leaf, params)


def potential(energy_fn: Callable[..., Any] | None = None, *, event_shape: tuple[int, ...],
              support: Support | str = "real", params: Any = None, name: str | None = None):
    """A :class:`~ebm_ppl.Potential` whose energy is ``energy_fn(x)`` (or ``energy_fn(params, x)``).

    Args:
        energy_fn: E(x) for one example ``x`` of shape ``event_shape``, a scalar (JAX-traceable).
            Leave it out to use ``ep.potential(...)`` as a decorator.
        event_shape: the shape of one sample.
        support: ``"real"``, ``"binary"``, ``"spin"``, ``ep.categorical(q)`` or ``ep.box(low, high)``.
        params: a pytree of finite numbers passed as the first argument (saved; the floating-point
            ones trainable: write ``1.0``, not ``1``, for a number ``ep.fit`` should train); None
            for a function of x alone.
        name: registers the potential under this name (``ep.load`` of a saved one then works
            once this call has run again); default the function's name, unregistered.

    Returns:
        The potential (a fresh :class:`FunctionPotential` subclass's instance), or a decorator.

    Raises:
        ValueError: a bad event shape, support or name, or a function that does not return one
            real scalar for one example.
    """
    if energy_fn is None:
        return lambda fn: potential(fn, event_shape=event_shape, support=support, params=params, name=name)
    if not callable(energy_fn):
        raise TypeError(f"potential: energy_fn must be a function, got {type(energy_fn).__name__}")
    shape = _event_shape(event_shape)
    support = as_support(support)
    family = _family_name(energy_fn, name)
    arrays = _as_arrays(params)
    _check_energy(energy_fn, arrays, shape, params is not None, family)
    namespace = {"name": family, "support": support, "energy_fn": staticmethod(energy_fn),
                 "takes_params": params is not None, "fixed_event_shape": shape, "params_template": arrays,
                 "__module__": getattr(energy_fn, "__module__", __name__),
                 "__doc__": getattr(energy_fn, "__doc__", None) or f"The potential {family!r} (ep.potential)."}
    cls = type(_class_name(family), (FunctionPotential,), namespace)
    if name is not None:
        _register(cls, name)
    return cls(arrays)


def _event_shape(event_shape: Any) -> tuple[int, ...]:
    try:
        sizes = tuple(event_shape)
    except TypeError:
        raise ValueError(f"potential: event_shape must be a tuple of sizes, got {event_shape!r}") from None
    try:  # integers only (operator.index): int(2.5) and int(True) would silently make another shape
        shape = tuple(operator.index(s) for s in sizes if not isinstance(s, (bool, np.bool_)))
    except TypeError:
        shape = ()
    if len(shape) != len(sizes) or any(s < 1 for s in shape):
        raise ValueError(f"potential: event_shape must hold positive integers, got {event_shape!r}")
    return shape


def _family_name(energy_fn: Callable, name: str | None) -> str:
    if name is None:
        name = getattr(energy_fn, "__name__", "function")
        return name if _NAME.fullmatch(name) else "function"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"potential: name must be an identifier-like string, got {name!r}")
    return name


def _class_name(family: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", family) if part) + "Potential"


def _check_energy(energy_fn: Callable, params: Any, shape: tuple[int, ...], takes_params: bool, family: str) -> None:
    check_scalar_energy((lambda x: energy_fn(params, x)) if takes_params else energy_fn, shape,
                        f"potential {family!r}: the energy function{' with params' if takes_params else ''}")


def _register(cls: type, name: str) -> None:
    """Register ``cls`` under ``name``; redefining a function potential (a re-run cell) replaces it."""
    try:
        existing = get_potential(name)
    except KeyError:
        existing = None
    overwrite = existing is not None and issubclass(existing, FunctionPotential)
    if overwrite and _function_name(existing.energy_fn) != _function_name(cls.energy_fn):
        warnings.warn(f"potential {name!r} was made from the function {_function_name(existing.energy_fn)} and is "
                      f"now made from {_function_name(cls.energy_fn)}: files saved from the first will not load "
                      "until it is defined again. Give each energy its own name=", UserWarning, stacklevel=3)
    register_potential(name, overwrite=overwrite)(cls)
