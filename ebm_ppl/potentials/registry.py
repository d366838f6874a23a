"""Registry of potential families by name, with third-party discovery through entry points.

A package adds its own family by declaring, in its ``pyproject.toml``::

    [project.entry-points."ebm_ppl.potentials"]
    my_energy = "my_package.energies:MyEnergy"

where ``MyEnergy`` subclasses :class:`ebm_ppl.Potential`. It then shows up in
:func:`list_potentials` and :func:`get_potential` like the built-in families.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from typing import TypeVar

from ebm_ppl.potentials.base import Potential

__all__ = ["register_potential", "get_potential", "list_potentials", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "ebm_ppl.potentials"
_REGISTRY: dict[str, type[Potential]] = {}
P = TypeVar("P", bound=type[Potential])


def register_potential(name: str | None = None, *, overwrite: bool = False):
    """Class decorator registering a :class:`Potential` subclass under ``name``.

    ``name`` defaults to the class variable ``cls.name``. Registering a different class under a
    taken name raises unless ``overwrite=True``.
    """

    def decorator(cls: P) -> P:
        if not (isinstance(cls, type) and issubclass(cls, Potential)):
            raise TypeError(f"register_potential expects a Potential subclass, got {cls!r}")
        key = name if name is not None else getattr(cls, "name", None)
        if not isinstance(key, str) or not key:
            raise ValueError(f"{cls.__name__} needs a registry name (pass one or set cls.name)")
        if key in _REGISTRY and _REGISTRY[key] is not cls and not overwrite:
            raise ValueError(
                f"a potential named {key!r} is already registered ({_REGISTRY[key].__qualname__}); "
                "pass overwrite=True to replace it"
            )
        _REGISTRY[key] = cls
        return cls

    return decorator


def _discover() -> None:
    """Load third-party families declared under the ``ebm_ppl.potentials`` entry-point group."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not break the library
            warnings.warn(f"ebm_ppl: could not load potential plugin {ep.name!r} ({ep.value}): {exc}", stacklevel=3)
            continue
        if isinstance(cls, type) and issubclass(cls, Potential):
            _REGISTRY[ep.name] = cls
        else:
            warnings.warn(f"ebm_ppl: plugin {ep.name!r} ({ep.value}) is not a Potential subclass; ignored",
                          stacklevel=3)


def get_potential(name: str) -> type[Potential]:
    """The potential class registered under ``name``."""
    if name not in _REGISTRY:
        _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"no potential named {name!r}; registered: {known}") from None


def list_potentials() -> dict[str, type[Potential]]:
    """All registered potentials, built-in and plugins, as ``{name: class}`` sorted by name."""
    _discover()
    return dict(sorted(_REGISTRY.items()))
