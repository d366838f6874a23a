"""Supports: the sets a potential's events live on, and what each means for sampling.

``Support.REAL`` (R^D), ``Support.BINARY`` ({0, 1}^D), ``Support.SPIN`` ({-1, +1}^D),
:func:`categorical` (``{0, ..., q - 1}^D``, the states of Potts units, stored as numbers) and
:func:`box` (``[low, high]^D``, either bound possibly infinite: intervals, lower- or
upper-bounded reals). A support knows

* its ``kind`` (``"real"``, ``"binary"``, ``"spin"``, ``"categorical"``, ``"box"``), which the
  kernel table and the annealing paths read, whether it is ``continuous``, and for discrete
  supports the ``values`` one coordinate takes;
* which values belong to it (:meth:`Support.problem`, used by ``validate_input`` on concrete
  input);
* for continuous supports, the bijection from the unconstrained space R^D onto it
  (:meth:`Support.transform`, NumPyro's ``biject_to``), through which gradient samplers and AIS
  run on bounded supports, log-Jacobian included (:mod:`ebm_ppl.potentials.unconstrained`);
* the NumPyro constraint of one coordinate, and default chain starts.

Supports are immutable and hashable (static metadata of a potential). For compatibility with
ebm_ppl 0.1's string enum, ``Support.REAL == "real"`` and ``support.value`` is its kind.
"""

from __future__ import annotations

import math
import functools
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, DTypeLike, PRNGKeyArray

if TYPE_CHECKING:
    from numpyro.distributions import constraints
    from numpyro.distributions.transforms import Transform

__all__ = ["Support", "Box", "Categorical", "box", "categorical", "as_support", "spin"]  # noqa: F822 (spin: __getattr__)


def _constraints():
    """NumPyro's ``constraints`` module, imported on first use (NumPyro's import takes 0.3 s, and
    only the gradient samplers, AIS on bounded supports and the NumPyro bridge need it)."""
    import numpyro  # noqa: F401  the package first: a submodule imported first left numpyro.distributions incomplete
    from numpyro.distributions import constraints

    return constraints


@functools.cache
def _spin():
    class _Spin(_constraints().ParameterFreeConstraint):
        """The values {-1, +1} (discrete), NumPyro's constraint protocol."""

        is_discrete = True

        def __call__(self, x):
            xp = jnp if isinstance(x, jax.Array) else np
            return xp.equal(x, -1) | xp.equal(x, 1)

        def feasible_like(self, prototype):
            return jnp.ones_like(prototype)

    return _Spin()


def __getattr__(name: str):
    """``spin``: NumPyro constraint of one spin coordinate, ``{-1, +1}`` (made on first access)."""
    if name == "spin":
        return _spin()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Support:
    """A support (see the module docstring); ``Support.REAL`` and ``Support.BINARY`` are the
    unbounded real and binary ones, :func:`box` makes bounded real ones."""

    REAL: "Support"
    BINARY: "Support"
    SPIN: "Support"

    def __init__(self, kind: str):
        self._kind = kind

    @property
    def kind(self) -> str:
        """``"real"``, ``"binary"``, ``"spin"``, ``"categorical"`` or ``"box"``."""
        return self._kind

    @property
    def value(self) -> str:
        """The kind (the value of ebm_ppl 0.1's ``Support`` enum)."""
        return self._kind

    @property
    def continuous(self) -> bool:
        """Whether events are real vectors (gradient samplers, geometric annealing)."""
        return self._kind in ("real", "box")

    @property
    def values(self) -> tuple[float, ...]:
        """The values one coordinate of a discrete support takes (empty for continuous ones)."""
        return {"binary": (0.0, 1.0), "spin": (-1.0, 1.0)}.get(self._kind, ())

    @property
    def bounded(self) -> bool:
        """Whether a continuous support is a proper subset of R^D (sampled through :meth:`transform`)."""
        return False

    def problem(self, values: np.ndarray) -> str | None:
        """What is wrong with concrete ``values`` on this support (None: nothing)."""
        if self._kind == "binary" and not np.all((values == 0) | (values == 1)):
            offending = np.unique(values[(values != 0) & (values != 1)])[:5]
            return (f"must be binary (0/1) for a model with binary support; found values such as "
                    f"{offending.tolist()}. Binarize first, e.g. ebm_ppl.data.digits(binarize=True)")
        if self._kind == "spin" and not np.all((values == -1) | (values == 1)):
            offending = np.unique(values[(values != -1) & (values != 1)])[:5]
            return f"must be spins (-1/+1); found values such as {offending.tolist()}. Map 0/1 data by 2 x - 1"
        return None

    def constraint(self) -> constraints.Constraint:
        """NumPyro's constraint for one coordinate (:data:`spin` for {-1, +1}, which NumPyro lacks)."""
        if self._kind == "spin":
            return _spin()
        constraints = _constraints()
        return constraints.boolean if self._kind == "binary" else constraints.real

    def transform(self) -> Transform:
        """The bijection from R onto the support, coordinate-wise (identity for R)."""
        if not self.continuous:
            raise ValueError(f"a {self._kind} support has no continuous transform")
        constraint = self.constraint()  # imports the numpyro package first (see _constraints)
        from numpyro.distributions.transforms import biject_to

        return biject_to(constraint)

    def initial_positions(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        """Default chain starts of ``shape``: coin flips (binary, spin), standard normals (real)."""
        if self._kind in ("binary", "spin"):
            flips = jax.random.bernoulli(key, 0.5, shape).astype(dtype)
            return flips if self._kind == "binary" else 2 * flips - 1
        return jax.random.normal(key, shape, dtype)

    def to_json(self) -> Any:
        """A JSON value that :func:`as_support` turns back into this support."""
        return self._kind

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self._kind == other
        return isinstance(other, Support) and self._key() == other._key()

    def __hash__(self) -> int:  # its kind's string's, as the old string enum (boxes share it)
        return hash(self._kind)

    def _key(self) -> tuple:
        return (self._kind,)

    def __repr__(self) -> str:
        return f"Support.{self._kind.upper()}"

    def __str__(self) -> str:
        return self._kind

    def __reduce__(self):  # pickling (multiprocessing, deepcopy): rebuilt from the JSON form
        return as_support, (self.to_json(),)


class Box(Support):
    """``[low, high]`` in every coordinate (``low`` may be ``-inf``, ``high`` ``+inf``)."""

    def __init__(self, low: float, high: float):
        super().__init__("box")
        low, high = float(low), float(high)
        if math.isnan(low) or math.isnan(high) or not low < high:
            raise ValueError(f"box: need low < high, got low={low}, high={high}")
        if math.isinf(low) and math.isinf(high):
            raise ValueError("box: at least one bound must be finite (use Support.REAL for R^D)")
        self.low, self.high = low, high

    @property
    def bounded(self) -> bool:
        return True

    def problem(self, values: np.ndarray) -> str | None:
        outside = (values < self.low) | (values > self.high)
        if np.any(outside):
            return (f"must lie in [{self.low:g}, {self.high:g}] (the potential's support); found values such as "
                    f"{np.unique(values[outside])[:5].tolist()}")
        return None

    def constraint(self) -> constraints.Constraint:
        constraints = _constraints()
        if math.isinf(self.high):
            return constraints.greater_than(self.low)
        if math.isinf(self.low):
            return constraints.less_than(self.high)
        return constraints.interval(self.low, self.high)

    def initial_positions(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        """Uniform draws in the box where it is bounded; else a unit-scale draw past the finite bound."""
        if math.isinf(self.low) or math.isinf(self.high):
            step = jnp.abs(jax.random.normal(key, shape, dtype))
            return self.low + step if math.isinf(self.high) else self.high - step
        return jax.random.uniform(key, shape, dtype, minval=self.low, maxval=self.high)

    def interior(self, x: Array) -> Array:
        """``x`` with points on (or numerically at) a finite bound moved inside by a few units in
        the last place of the box's scale, so that the inverse transform stays finite (quantized
        data such as images scaled to [-1, 1] sit exactly on the bounds)."""
        x = jnp.asarray(x)
        eps = 16 * jnp.finfo(x.dtype).eps
        if math.isinf(self.low) or math.isinf(self.high):
            bound = self.low if math.isinf(self.high) else self.high
            margin = eps * max(1.0, abs(bound))
            return jnp.maximum(x, bound + margin) if math.isinf(self.high) else jnp.minimum(x, bound - margin)
        margin = eps * (self.high - self.low)
        return jnp.clip(x, self.low + margin, self.high - margin)

    def to_json(self) -> Any:
        return {"kind": "box", "low": self.low, "high": self.high}

    def _key(self) -> tuple:
        return ("box", self.low, self.high)

    def __repr__(self) -> str:
        return f"box({self.low:g}, {self.high:g})"

    __str__ = __repr__


class Categorical(Support):
    """``{0, ..., q - 1}`` in every coordinate: the states of Potts units (stored as numbers)."""

    def __init__(self, num_states: int):
        super().__init__("categorical")
        if isinstance(num_states, bool) or int(num_states) != num_states or num_states < 2:
            raise ValueError(f"categorical: the number of states must be an integer >= 2, got {num_states!r}")
        self.num_states = int(num_states)

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(float(v) for v in range(self.num_states))

    def problem(self, values: np.ndarray) -> str | None:
        bad = (values != np.round(values)) | (values < 0) | (values >= self.num_states)
        if np.any(bad):
            return (f"must be states 0 .. {self.num_states - 1} (a categorical support); found values such as "
                    f"{np.unique(values[bad])[:5].tolist()}")
        return None

    def constraint(self) -> constraints.Constraint:
        return _constraints().integer_interval(0, self.num_states - 1)

    def initial_positions(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        """Uniform states."""
        return jax.random.randint(key, shape, 0, self.num_states).astype(dtype)

    def to_json(self) -> Any:
        return {"kind": "categorical", "num_states": self.num_states}

    def _key(self) -> tuple:
        return ("categorical", self.num_states)

    def __repr__(self) -> str:
        return f"categorical({self.num_states})"

    __str__ = __repr__


Support.REAL = Support("real")
Support.BINARY = Support("binary")
Support.SPIN = Support("spin")


def categorical(num_states: int) -> Categorical:
    """The support ``{0, ..., num_states - 1}^D`` (Potts units)."""
    return Categorical(num_states)


def box(low: float = -math.inf, high: float = math.inf) -> Box:
    """The support ``[low, high]^D`` (an interval per coordinate; one bound may be infinite)."""
    return Box(low, high)


def as_support(value: Any) -> Support:
    """A support from a :class:`Support`, ``"real"``, ``"binary"`` or the JSON form of
    :meth:`Support.to_json`; ValueError otherwise."""
    if isinstance(value, Support):
        return value
    if value in ("real", "binary", "spin"):
        return {"real": Support.REAL, "binary": Support.BINARY, "spin": Support.SPIN}[value]
    if isinstance(value, dict) and value.get("kind") == "box":
        return Box(value["low"], value["high"])
    if isinstance(value, dict) and value.get("kind") == "categorical":
        return Categorical(value["num_states"])
    raise ValueError(f"unknown support {value!r}; use 'real', 'binary', 'spin', ebm_ppl.box(low, high) or "
                     "ebm_ppl.categorical(q)")
