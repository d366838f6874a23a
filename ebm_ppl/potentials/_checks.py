"""Parameter checks shared by the families' constructors (the public boundary)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ebm_ppl.potentials.base import is_concrete


def as_param(
    value: ArrayLike,
    name: str,
    *,
    owner: str,
    shape: tuple[int, ...] | None = None,
    ndim: int | None = None,
) -> Array:
    """``value`` as a floating array of the given shape (or rank); ValueError naming the mismatch."""
    if isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jnp.floating):
        arr = value
    else:
        np_value = np.asarray(value)
        if not (np.issubdtype(np_value.dtype, np.number) or np_value.dtype == bool):
            raise ValueError(f"{owner}: parameter {name} has dtype {np_value.dtype}; expected numbers")
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
        if is_concrete(leaf) and not bool(jnp.all(jnp.isfinite(leaf))):
            raise ValueError(f"{name}: parameter {jax.tree_util.keystr(path).lstrip('.')} contains NaN or inf")


def check_positive(value: Array, name: str, *, owner: str) -> None:
    """Refuse a concrete ``value`` with an entry <= 0."""
    if is_concrete(value) and not bool(jnp.all(value > 0)):
        raise ValueError(f"{owner}: {name} must be positive everywhere, got min {float(jnp.min(value))}")
