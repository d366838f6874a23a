"""Names of a package loaded on first use (PEP 562), so that importing the package costs nothing."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__all__ = ["lazy_names"]


def lazy_names(namespace: dict[str, Any], sources: Mapping[str, str]) -> tuple[Callable, Callable]:
    """The package's ``__getattr__`` and ``__dir__``: each name of ``sources`` is imported from
    the module it maps to on first access and kept in ``namespace`` (the package's ``globals()``);
    a name whose module is the package's submodule of that name is the submodule itself.

        __getattr__, __dir__ = lazy_names(globals(), {"report": "ebm_ppl.diagnostics.html_report"})
    """
    package = namespace["__name__"]

    def __getattr__(name: str):
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(sources[name])
        value = module if module.__name__ == f"{package}.{name}" else getattr(module, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(sources))

    return __getattr__, __dir__
