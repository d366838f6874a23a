"""Bundled data: the 8x8 handwritten digits, split and scaled the way the chapter uses them.

Source: scikit-learn's :func:`sklearn.datasets.load_digits` (UCI "Optical Recognition of
Handwritten Digits"), 1797 grey-scale images of 8x8 pixels with integer values 0..16, shipped
inside scikit-learn, so nothing is downloaded.

Split (fixed, by index in scikit-learn's order; no shuffling, so every run sees the same sets):

=============  ===============  =======
split          indices          size
=============  ===============  =======
train          ``0 .. 999``     1000
validation     ``1000 .. 1349`` 350
test           ``1350 .. 1796`` 447
=============  ===============  =======

Scalings of a pixel value ``v`` in 0..16 (images are flattened to 64 features, row-major):

* ``binarize=True``   ``1 if v >= 8 else 0`` (threshold at half the range), for binary models
  such as :class:`ebm_ppl.BernoulliRBM`;
* ``scale="signed"``  ``2 v / 16 - 1`` in [-1, 1], for real-valued models (Gaussian-Bernoulli RBM,
  JEM);
* ``scale="unit"``    ``v / 16`` in [0, 1].

``train_noise`` adds i.i.d. Gaussian noise to the *training* images only (a common regulariser
for real-valued EBMs); validation and test images are never perturbed, so held-out figures stay
comparable across runs.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Digits", "digits", "SPLIT", "IMAGE_SHAPE", "BINARIZE_THRESHOLD", "MAX_PIXEL"]

#: Height and width of one digit image.
IMAGE_SHAPE: tuple[int, int] = (8, 8)
#: Largest pixel value in the raw data (values are integers 0..16).
MAX_PIXEL: int = 16
#: ``binarize=True`` maps a raw pixel ``v`` to ``v >= BINARIZE_THRESHOLD``.
BINARIZE_THRESHOLD: int = 8
#: Index ranges of the fixed split, in scikit-learn's order.
SPLIT: dict[str, slice] = {
    "train": slice(0, 1000),
    "val": slice(1000, 1350),
    "test": slice(1350, 1797),
}
_NUM_IMAGES = 1797
_SCALES = ("signed", "unit")


class Digits(NamedTuple):
    """The digits split into train / validation / test.

    Attributes:
        x_train: images, shape ``(1000, 64)``, in the requested dtype and scaling.
        y_train: labels 0..9, shape ``(1000,)``, int32.
        x_val: shape ``(350, 64)``.
        y_val: shape ``(350,)``.
        x_test: shape ``(447, 64)``.
        y_test: shape ``(447,)``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(8, 8)``: reshape a row of ``x_*`` with ``x.reshape(-1, *image_shape)`` to plot it."""
        return IMAGE_SHAPE

    @property
    def n_features(self) -> int:
        """64, the length of one flattened image."""
        return IMAGE_SHAPE[0] * IMAGE_SHAPE[1]


@functools.lru_cache(maxsize=1)
def _load_raw() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as read-only ``(1797, 64)`` float64 values 0..16 and int32 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int32)
    if x.shape != (_NUM_IMAGES, IMAGE_SHAPE[0] * IMAGE_SHAPE[1]) or y.shape != (_NUM_IMAGES,):
        raise RuntimeError(
            f"scikit-learn's load_digits returned shapes {x.shape}, {y.shape}; expected "
            f"({_NUM_IMAGES}, 64), ({_NUM_IMAGES},)"
        )
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def digits(
    *,
    binarize: bool = False,
    levels: int | None = None,
    scale: str = "signed",
    train_noise: float = 0.0,
    key: Any = None,
    dtype: Any = np.float32,
) -> Digits:
    """The 8x8 digits with the fixed train (1000) / validation (350) / test (447) split.

    Args:
        binarize: if True, pixels become {0, 1} with ``v >= 8`` (``scale`` is then ignored).
        levels: if given (2 to 17), pixels become gray levels ``0 .. levels - 1``: the 0..16
            values cut into ``levels`` equal-width bins, ``floor(v * levels / 17)`` (categorical
            data for Potts units, ``ep.categorical(levels)``; ``levels=2`` splits at ``v >= 9``,
            not ``binarize``'s ``v >= 8``).
        scale: for real-valued data, ``"signed"`` (``2 v / 16 - 1`` in [-1, 1]) or ``"unit"``
            (``v / 16`` in [0, 1]).
        train_noise: standard deviation of Gaussian noise added to ``x_train`` only; 0 for none.
            Not allowed with ``binarize=True`` (the data would no longer be binary).
        key: a JAX PRNG key (``jax.random.key(0)``), required when ``train_noise > 0``; the same
            key gives the same noise.
        dtype: floating dtype of the images (labels are always int32).

    Returns:
        :class:`Digits`, NumPy arrays ``x_*`` of shape ``(N, 64)`` and ``y_*`` of shape ``(N,)``;
        fresh copies on every call, so they may be modified freely.

    Raises:
        ValueError: for an unknown ``scale``, a negative or non-finite ``train_noise``, noise
            without a ``key`` or with ``binarize=True``, or a non-floating ``dtype``.
    """
    if not isinstance(binarize, (bool, np.bool_)):
        raise ValueError(f"digits: binarize must be True or False, got {binarize!r}")
    if levels is not None:
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or not 2 <= levels <= 17:
            raise ValueError(f"digits: levels must be an integer from 2 to 17, got {levels!r}")
        if binarize:
            raise ValueError("digits: give binarize=True or levels=q, not both")
    if scale not in _SCALES:
        raise ValueError(f"digits: scale must be one of {_SCALES}, got {scale!r}")
    try:
        np_dtype = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"digits: dtype {dtype!r} is not a NumPy dtype ({exc})") from None
    if not np.issubdtype(np_dtype, np.floating):
        raise ValueError(f"digits: dtype must be a floating dtype such as numpy.float32, got {np_dtype}")
    try:
        noise_std = float(train_noise)
    except (TypeError, ValueError):
        raise ValueError(f"digits: train_noise must be a number, got {train_noise!r}") from None
    if not math.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"digits: train_noise must be a finite number >= 0, got {train_noise!r}")
    if noise_std > 0 and (binarize or levels is not None):
        raise ValueError(
            "digits: train_noise cannot be combined with binarize=True (noisy pixels are not 0/1); "
            "use binarize=False with scale='signed' or 'unit'"
        )
    if noise_std > 0 and key is None:
        raise ValueError("digits: train_noise > 0 needs a PRNG key, e.g. key=jax.random.key(0)")

    raw_x, raw_y = _load_raw()
    if binarize:
        x = (raw_x >= BINARIZE_THRESHOLD).astype(np_dtype)
    elif levels is not None:
        x = np.floor(raw_x * levels / (MAX_PIXEL + 1)).astype(np_dtype)
    elif scale == "signed":
        x = (2.0 * raw_x / MAX_PIXEL - 1.0).astype(np_dtype)
    else:
        x = (raw_x / MAX_PIXEL).astype(np_dtype)
    y = raw_y.copy()

    parts = {name: (x[s].copy(), y[s].copy()) for name, s in SPLIT.items()}
    if noise_std > 0:
        x_train = parts["train"][0]
        parts["train"] = (x_train + noise_std * _normal(key, x_train.shape, np_dtype), parts["train"][1])
    return Digits(*parts["train"], *parts["val"], *parts["test"])


def _normal(key: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Standard normal draws from a JAX key, as NumPy in ``dtype`` (float32 draws unless x64 is on)."""
    import jax

    try:
        draws = jax.random.normal(key, shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"digits: key must be a JAX PRNG key such as jax.random.key(0), got {key!r} ({exc})"
        ) from None
    return np.asarray(draws).astype(dtype)
