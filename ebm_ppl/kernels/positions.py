"""The check of the starting point a kernel's ``init`` takes (the public boundary)."""

from __future__ import annotations

import numpy as np
from jaxtyping import Array, ArrayLike

from ebm_ppl.potentials.base import Potential, validate_input

__all__ = ["check_position"]


def check_position(position: ArrayLike, potential: Potential, owner: str, num_replicas: int | None = None) -> Array:
    """``position`` of shape ``event_shape`` (or ``(num_replicas, *event_shape)`` where given),
    real, and, where it is concrete, finite and on ``potential``'s support (a traced position is
    checked for shape only, so a jitted ``init`` keeps working); returned as a floating array.

    Raises:
        ValueError: naming ``owner``, the problem and the shape or values expected.
    """
    event_shape = tuple(potential.event_shape)
    shapes = [event_shape] if num_replicas is None else [event_shape, (num_replicas, *event_shape)]
    try:
        shape = tuple(np.shape(position))
    except ValueError:  # ragged lists: validate_input names them
        shape = None
    if shape is not None and shape not in shapes:
        expected = str(event_shape) if num_replicas is None else \
            f"{event_shape} (every replica starts there) or {shapes[1]} (one point per rung)"
        raise ValueError(f"{owner}: position has shape {shape}; expected {expected}, from the event shape "
                         f"{event_shape} of {type(potential).__name__}")
    return validate_input(position, event_shape, potential.support, name="position", owner=owner)
