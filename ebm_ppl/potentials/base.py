"""The potential protocol: an unnormalized density p(x) = exp(-E(x)) / Z over a fixed event shape.

A potential is an :class:`equinox.Module`; its parameters are its fields, so ``jax.jit``,
``jax.grad``, ``jax.vmap``, Optax and :func:`ebm_ppl.save` work on it directly. Each family
implements the energy of *one* example in :meth:`Potential.unbatched_energy`; the public
:meth:`Potential.energy` validates its input and maps over any leading batch axes.

Sign conventions (the most common source of bugs when moving between libraries):

* ``energy(x)``         E(x), for latent-variable models the free energy F(x);
* ``logdensity(x)``     -E(x);
* ``logdensity_fn()``   ``x -> -E(x)`` for one example, what BlackJAX kernels take as ``logdensity_fn``;
* ``unbatched_energy``  ``x -> E(x)`` for one example, what NumPyro's ``potential_fn`` takes
  (NumPyro's potential is -log p).

What a potential can do beyond its energy (exact log Z, exact samples, block conditionals, a base
model, ...) is declared by optional methods; :mod:`ebm_ppl.potentials.capabilities` lists them.
"""

from __future__ import annotations

import abc
import math
import sys
import warnings
from typing import Any, Callable, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl import checks
from ebm_ppl.potentials.supports import Box, Support, as_support, box, categorical

__all__ = ["Potential", "Support", "Box", "box", "categorical", "as_support", "validate_input", "is_concrete",
           "check_potential", "check_scalar_energy"]


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds values now (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def validate_input(
    x: ArrayLike,
    event_shape: tuple[int, ...],
    support: Support,
    *,
    name: str = "x",
    owner: str = "potential",
) -> Array:
    """Check ``x`` of shape ``(*batch, *event_shape)`` at a public boundary; return it as an array.

    Shapes and dtypes (numeric and real: complex input is refused) are always checked (they are
    static). Values (NaN/inf, and membership in {0, 1} for binary support) are checked only when
    ``x`` is concrete, so jitted inner code pays nothing for the checks.

    Raises:
        ValueError: naming the problem and the expected shape/support.
    """
    if isinstance(x, (jax.Array, np.ndarray)):
        dtype = x.dtype
    else:
        try:
            dtype = np.asarray(x).dtype
        except Exception as exc:  # ragged lists and friends
            raise ValueError(f"{owner}: {name} is not an array ({exc})") from None
    if not (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)):
        raise ValueError(f"{owner}: {name} has dtype {dtype}; expected a numeric array")
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise ValueError(f"{owner}: {name} has complex dtype {dtype}; expected real numbers (pass x.real if the "
                         "imaginary part is zero)")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    nd = len(event_shape)
    if x.ndim < nd or tuple(x.shape[x.ndim - nd :]) != tuple(event_shape):
        raise ValueError(
            f"{owner}: {name} has shape {tuple(x.shape)}; expected (*batch, {_fmt(event_shape)}) "
            f"with event shape {tuple(event_shape)}"
        )
    if is_concrete(x):
        values = np.asarray(x)
        if not np.all(np.isfinite(values)):
            bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
            raise ValueError(f"{owner}: {name} contains {bad} NaN or infinite value(s)")
        problem = support.problem(values)
        if problem is not None:
            raise ValueError(f"{owner}: {name} {problem}")
    return x


def _fmt(shape: tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in shape)


class Potential(eqx.Module):
    """Base class of every energy family.

    Subclasses set the class variables ``name`` (the registry name) and ``support``, implement
    :attr:`event_shape` and :meth:`unbatched_energy` for one example, and may add the optional
    methods of :mod:`ebm_ppl.potentials.capabilities` (exact log Z, exact samples, block
    conditionals, a base model, ...). Families whose static settings are not array fields
    override :meth:`to_config` and :meth:`from_config` (saving).
    """

    name: ClassVar[str]
    support: ClassVar[Support]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for old, new in _RENAMED.items():
            if old in vars(cls) and new not in vars(cls):
                warnings.warn(
                    f"{cls.__qualname__}.{old} is the name of ebm_ppl < 0.2; define {new} instead "
                    f"(the old name still works for now)", DeprecationWarning, stacklevel=3)
                setattr(cls, new, vars(cls)[old])
        if not _is_abstract(cls) and not (isinstance(getattr(cls, "name", None), str) and cls.name):
            raise TypeError(f"{cls.__qualname__} needs a name: set the class variable name = '...' (the registry, "
                            "ep.save and ep.load know a family by it)")

    @property
    @abc.abstractmethod
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one sample x."""

    @abc.abstractmethod
    def unbatched_energy(self, x: Array) -> Array:
        """E(x) for one example of shape ``event_shape``, a scalar; no validation (jitted inner code).

        This is the function NumPyro's ``potential_fn`` takes; :meth:`energy` is its validated,
        batched form.
        """

    def energy(self, x: ArrayLike) -> Array:
        """E(x) for ``x`` of shape ``(*batch, *event_shape)``; returns shape ``(*batch,)``."""
        x = validate_input(x, self.event_shape, self.support, owner=type(self).__name__)
        return self._batched(self.unbatched_energy, x)

    def logdensity(self, x: ArrayLike) -> Array:
        """-E(x), the unnormalized log density; ``(*batch, *event_shape) -> (*batch,)``."""
        return -self.energy(x)

    def logdensity_fn(self) -> Callable[[Array], Array]:
        """``x -> -E(x)`` for one example of shape ``event_shape``, unvalidated: the
        ``logdensity_fn`` every BlackJAX kernel takes."""

        def logdensity(x: Array) -> Array:
            return -self.unbatched_energy(x)

        return logdensity

    def __call__(self, x: ArrayLike) -> Array:
        """Alias of :meth:`energy`."""
        return self.energy(x)

    def initial_positions(self, key: PRNGKeyArray, num: int) -> Array:
        """Default starting points of ``num`` chains, ``(num, *event_shape)`` in the default float
        dtype: fair coin flips for binary support, standard normal draws for real support,
        uniform draws in a box (:meth:`~ebm_ppl.potentials.supports.Support.initial_positions`)."""
        num = checks.non_negative_int(num, "initial_positions: num")
        size, dtype = math.prod(self.event_shape), jnp.result_type(float)
        checks.check_memory(num * size * jnp.dtype(dtype).itemsize, f"{num} chains x {size} values",
                            owner="initial_positions")
        return self.support.initial_positions(key, (num, *self.event_shape), dtype)

    def _batched(self, fn, x: Array, *rest: Array) -> Array:
        """Apply a one-example function over the leading batch axes of ``x`` (and ``rest``)."""
        batch_ndim = x.ndim - len(self.event_shape)
        for _ in range(batch_ndim):
            fn = jax.vmap(fn)
        return fn(x, *rest)

    def _check(self, x: ArrayLike, name: str = "x", support: Support | None = None) -> Array:
        return validate_input(
            x,
            self.event_shape,
            self.support if support is None else support,
            name=name,
            owner=type(self).__name__,
        )

    # -- saving (see ebm_ppl.io) -----------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """JSON-able static settings that, with the array fields, rebuild this potential."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Potential":
        """Rebuild from :meth:`to_config` and the array leaves keyed by ``jax.tree_util.keystr``.

        The default suits families whose fields are top-level arrays (keys like ``".W"``); the
        constructor runs, so a file holding invalid parameters is refused like any bad input.
        Raise ``NotImplementedError`` when the config cannot describe the structure (``ep.load``
        then asks for ``like=``).
        """
        kwargs = {key.removeprefix("."): value for key, value in arrays.items()}
        return cls(**kwargs, **config)


def _is_abstract(cls: type) -> bool:
    """Whether ``cls`` still has an abstract method or property (computed here because
    ``__init_subclass__`` runs before ``abc`` records ``__abstractmethods__``)."""
    names = {name for base in cls.__mro__[1:] for name in getattr(base, "__abstractmethods__", ())}
    names |= {name for name, value in vars(cls).items() if getattr(value, "__isabstractmethod__", False)}
    return any(getattr(getattr(cls, name, None), "__isabstractmethod__", False) for name in names)


def check_potential(obj: Any, owner: str) -> "Potential":
    """``obj`` if it is a :class:`Potential`; else a TypeError naming ``owner`` that shows, for
    a plain function, the one-line wrapper."""
    if isinstance(obj, Potential):
        _check_energy_shape(obj, owner)
        return obj
    numpyro_dists = sys.modules.get("numpyro.distributions")  # loaded already wherever obj can be one
    if numpyro_dists is not None and isinstance(obj, numpyro_dists.Distribution):
        raise TypeError(f"{owner} expects an ebm_ppl.Potential, got the NumPyro distribution {type(obj).__name__}: "
                        "in a model, use it in numpyro.sample as it is; to give ebm_ppl its density, wrap its log "
                        "probability, e.g. ep.potential(lambda x: -d.log_prob(x).sum(), event_shape=(D,), "
                        "support='real')")
    if callable(obj) and not isinstance(obj, type):
        fn = getattr(obj, "__name__", "energy_fn")
        fn = fn if fn.isidentifier() else "energy_fn"
        raise TypeError(f"{owner} expects an ebm_ppl.Potential, got the function {fn}; wrap it as "
                        f"ep.potential({fn}, event_shape=(D,), support='real') (support 'binary', 'spin', "
                        "ep.categorical(q) or ep.box(low, high) as it applies)")
    if isinstance(obj, str):
        raise TypeError(f"{owner} expects an ebm_ppl.Potential, got str {obj!r}; a saved model is ep.load(path), "
                        "a family's class ep.get_potential(name)")
    raise TypeError(f"{owner} expects an ebm_ppl.Potential, got {type(obj).__name__}")


def check_scalar_energy(energy: Callable[[Array], Array], shape: tuple[int, ...], what: str) -> None:
    """Trace ``energy`` (one example -> E(x)) on an example of ``shape``, shapes only; a
    ValueError starting with ``what`` when it fails or does not return one real scalar."""
    try:
        out = jax.eval_shape(energy, jax.ShapeDtypeStruct(shape, jnp.result_type(float)))
    except Exception as exc:  # the user's code: any error is reported as what it is
        raise ValueError(f"{what} fails on one example of shape {shape}: {type(exc).__name__}: {exc}") from None
    if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
        got = f"shape {out.shape} and dtype {out.dtype}" if hasattr(out, "shape") else type(out).__name__
        raise ValueError(f"{what} must return a real scalar for one example of shape {shape}, got {got}. "
                         "Write the energy for ONE example (ebm_ppl batches it)")


#: Structures of potentials whose energy was checked to be a real scalar per example (bounded:
#: cleared when full). Keyed by the pytree structure and the array leaves' shapes and types.
_SCALAR_ENERGY: set = set()
_SCALAR_ENERGY_SIZE = 1024


def _check_energy_shape(potential: "Potential", owner: str) -> None:
    """Refuse a potential whose ``unbatched_energy`` is not a real scalar for one example of its
    event shape (checked by tracing shapes only, once per structure): a subclass returning, say,
    per-coordinate energies would otherwise fail deep inside a sampler or give a wrong sum. The
    library's own classes are tested instead (a function potential is checked when it is made)."""
    if type(potential).__module__.startswith("ebm_ppl."):
        return
    leaves, structure = jax.tree.flatten(potential)
    try:
        signature = (structure, tuple((leaf.shape, str(leaf.dtype)) if hasattr(leaf, "dtype") else type(leaf)
                                      for leaf in leaves))
        if signature in _SCALAR_ENERGY:
            return
    except TypeError:  # an unhashable static field: checked every time
        signature = None
    check_scalar_energy(potential.unbatched_energy, tuple(potential.event_shape),
                        f"{owner}: {type(potential).__name__}.unbatched_energy")
    if signature is not None:
        if len(_SCALAR_ENERGY) >= _SCALAR_ENERGY_SIZE:
            _SCALAR_ENERGY.clear()
        _SCALAR_ENERGY.add(signature)


#: Method names of ebm_ppl < 0.2 that subclasses may still define (with a DeprecationWarning).
_RENAMED = {"_energy": "unbatched_energy", "_config": "to_config", "_from_arrays": "from_config"}
