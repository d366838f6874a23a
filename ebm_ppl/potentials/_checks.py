"""Parameter checks shared by the families' constructors (the public boundary)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ebm_ppl import checks
from ebm_ppl.potentials.base import is_concrete


def as_param(
    value: ArrayLike,
    name: str,
    *,
    owner: str,
    shape: tuple[int, ...] | None = None,
    ndim: int | None = None,
) -> Array:
    """``value`` as a real floating array of the given shape (or rank); ValueError naming the
    mismatch (complex and non-numeric dtypes included)."""
    if isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jnp.floating):
        arr = value
    else:
        dtype = value.dtype if isinstance(value, jax.Array) else np.asarray(value).dtype
        if not (np.issubdtype(dtype, np.number) or dtype == bool):
            raise ValueError(f"{owner}: parameter {name} has dtype {dtype}; expected numbers")
        if np.issubdtype(dtype, np.complexfloating):
            raise ValueError(f"{owner}: parameter {name} has complex dtype {dtype}; expected real numbers")
        arr = jnp.asarray(value)
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            arr = arr.astype(jnp.result_type(float))
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{owner}: parameter {name} must have {ndim} dimension(s), got shape {arr.shape}")
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{owner}: parameter {name} must have shape {tuple(shape)}, got {tuple(arr.shape)}")
    return arr


def check_finite_params(module: eqx.Module) -> None:
    """Refuse NaN/inf in any concrete array field of ``module``."""
    name = type(module).__name__
    for path, leaf in jax.tree_util.tree_flatten_with_path(eqx.filter(module, eqx.is_array))[0]:
        if is_concrete(leaf) and not np.all(np.isfinite(np.asarray(leaf))):  # NumPy: no tracer inside a jit trace
            raise ValueError(f"{name}: parameter {jax.tree_util.keystr(path).lstrip('.')} contains NaN or inf")


def check_positive(value: Array, name: str, *, owner: str) -> None:
    """Refuse a concrete ``value`` with an entry <= 0."""
    if is_concrete(value) and not np.all(np.asarray(value) > 0):
        raise ValueError(f"{owner}: {name} must be positive everywhere, got min {float(np.min(np.asarray(value)))}")


def sizes(owner: str, **named: int) -> tuple[int, ...]:
    """The sizes an ``init`` takes (``n_visible=64, n_hidden=16``) as positive Python ints
    (NumPy and 0-d JAX integers accepted); ValueError naming a bad one."""
    return tuple(checks.positive_int(v, f"{owner}: {k}") for k, v in named.items())


def param_dtype(dtype, owner: str, num_params: int) -> jnp.dtype:
    """``dtype`` (None: the default float) as a real floating dtype, after refusing, with the
    estimate, ``num_params`` parameters that would not fit in memory
    (:func:`ebm_ppl.checks.check_memory`); ValueError otherwise."""
    if dtype is None:
        dtype = jnp.dtype(jnp.result_type(float))
    else:
        try:
            dtype = jnp.dtype(dtype)
        except TypeError:
            raise ValueError(f"{owner}: dtype {dtype!r} is not a dtype") from None
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"{owner}: dtype must be a real floating dtype such as float32, got {dtype}")
    checks.check_memory(num_params * dtype.itemsize, f"{num_params} parameters x {dtype.itemsize} bytes",
                        owner=owner)
    return dtype


def scale(value, owner: str) -> float:
    """An initial weight scale: a finite number >= 0."""
    return checks.non_negative_float(value, f"{owner}: scale")
