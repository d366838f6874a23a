"""Figures of draws that are images: grids of draws, the report's image views and per-pixel maps.

Drawn on ``matplotlib.figure.Figure`` with the Agg canvas (see :mod:`ebm_ppl.diagnostics.figures`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from jaxtyping import ArrayLike
from matplotlib.figure import Figure

from ebm_ppl import checks
from ebm_ppl.diagnostics.figures import is_binary, new_figure

if TYPE_CHECKING:  # an annotation only: the training figures need no ArviZ
    from ebm_ppl.diagnostics.summary import Diagnostics

__all__ = ["image_grid", "show_grid", "draws_grid_figure", "image_layout", "last_draws_figure",
           "time_grid_figure", "pixel_maps_figure"]

_MAX_IMAGE_CHAINS = 8  # rows of the "draws across time" grid
_TIME_POINTS = 8  # its columns


def image_grid(images: ArrayLike, image_shape: tuple[int, int], *, ncols: int | None = None,
               pad: int = 1, fill: float = np.nan) -> np.ndarray:
    """Tile ``images`` ``(N, H*W)`` or ``(N, H, W)`` into one ``(rows*(H+pad)-pad, cols*(W+pad)-pad)``
    array, row-major, separated by ``pad`` pixels of ``fill`` (NaN shows as the background)."""
    h, w = image_shape
    images = np.asarray(images, dtype=np.float64).reshape(-1, h, w)
    n = images.shape[0]
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    nrows = max(1, math.ceil(n / ncols))
    grid = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad), fill)
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        grid[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = image
    return grid


def show_grid(ax, images: np.ndarray, image_shape: tuple[int, int], title: str, span: tuple[float, float],
              *, cmap: str = "gray", ncols: int | None = None, fontsize: float = 10) -> None:
    """Draw ``images`` ``(N, H*W)`` as one :func:`image_grid` on ``ax``, clipped to ``span``, on a grey
    background, without ticks."""
    grid = image_grid(np.clip(images, *span) if span[1] > span[0] else images, image_shape, ncols=ncols)
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=span[0], vmax=span[1], interpolation="nearest")
    ax.set_facecolor("0.85")
    ax.set_title(title, fontsize=fontsize)
    ax.set_xticks([])
    ax.set_yticks([])


def draws_grid_figure(x: np.ndarray, image_shape: tuple[int, int], title: str, *, columns: int = 10,
                      span: tuple[float, float] = (-1.0, 1.0)) -> Figure:
    """Draws ``x`` ``(chain, draw, H*W)`` as images: rows are chains, columns ``columns`` draws evenly
    spaced over the run (the last one last), clipped to ``span``."""
    num_chains, num_draws = x.shape[:2]
    index = np.unique(np.linspace(0, num_draws - 1, min(columns, num_draws)).round().astype(int))
    images = x[:, index].reshape(-1, x.shape[-1])
    fig, axes = new_figure(1, 1, 1.0 + 0.6 * len(index), 0.9 + 0.6 * num_chains)
    ax = axes[0, 0]
    show_grid(ax, images, image_shape, title, span, ncols=len(index), fontsize=8)
    ax.set_ylabel("chain")
    ax.set_xlabel(f"draws {index[0] + 1} .. {index[-1] + 1} (clipped to [{span[0]:g}, {span[1]:g}])")
    return fig


def image_layout(data, diag: Diagnostics, image_shape) -> tuple[str, tuple[int, ...]] | None:
    """``(posterior variable, image shape)`` when the draws are images, else None.

    ``image_shape`` (None: guess) is checked against the variable's size: ``(height, width)`` or
    ``(height, width, channels)`` with 1, 3 or 4 channels. The guess: a 1-D event whose size is a
    perfect square >= 16, or a 2-D (or channels-last 3-D) event at least 4 pixels a side.
    """
    variables = [v for g, v, _ in diag.locations.values() if g == "posterior"]
    if not variables:
        return None
    var = "x" if "x" in variables else variables[0]
    event_shape = tuple(int(s) for s in data["posterior"][var].shape[2:])
    size = math.prod(event_shape)
    if image_shape is not None:
        shape = tuple(checks.positive_int(s, "report: image_shape entry") for s in image_shape)
        if len(shape) not in (2, 3):
            raise ValueError(f"report: image_shape must be (height, width) or (height, width, channels), "
                             f"got {tuple(image_shape)}")
        if len(shape) == 3 and shape[-1] not in (1, 3, 4):
            raise ValueError(f"report: image_shape channels must be 1, 3 or 4, got {shape[-1]}")
        if math.prod(shape) != size:
            raise ValueError(f"report: image_shape {shape} has {math.prod(shape)} pixels but each draw of "
                             f"{var!r} has {size} values (event shape {event_shape})")
        return var, shape
    if len(event_shape) == 1:
        side = math.isqrt(size)
        return (var, (side, side)) if side * side == size and side >= 4 else None
    if len(event_shape) == 2 and min(event_shape) >= 4:
        return var, event_shape
    if len(event_shape) == 3 and event_shape[-1] in (1, 3, 4) and min(event_shape[:2]) >= 4:
        return var, event_shape
    return None


def _images(data, var: str, shape: tuple[int, ...]) -> tuple[np.ndarray, dict[str, Any]]:
    """All draws as ``(chain, draw, *shape)`` and the imshow settings shared by every panel."""
    da = data["posterior"][var]
    values = np.asarray(da.transpose("chain", "draw", ...).values).astype(float)
    values = values.reshape(*values.shape[:2], *shape)
    if len(shape) == 3 and shape[-1] == 1:
        values = values[..., 0]
    finite = values[np.isfinite(values)]
    if is_binary(values):
        style = {"cmap": "gray_r", "vmin": 0.0, "vmax": 1.0}
    elif len(shape) == 3 and shape[-1] in (3, 4):
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        values = (values - low) / (high - low) if high > low else np.zeros_like(values)
        style = {}
    else:
        low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        style = {"cmap": "gray", "vmin": float(low), "vmax": float(high) if high > low else float(low) + 1}
    return values, style


def _image_axes(nrows: int, ncols: int, shape) -> tuple[Figure, np.ndarray]:
    aspect = shape[0] / shape[1]
    side = min(1.4, 11 / max(ncols, 1))
    fig, axes = new_figure(nrows, ncols, side * ncols, side * aspect * nrows + 0.4)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def last_draws_figure(data, var: str, shape) -> Figure:
    """The last draw of each chain of posterior variable ``var`` as an image of ``shape``."""
    values, style = _images(data, var, shape)
    num_chains = values.shape[0]
    ncols = min(num_chains, 8)
    nrows = math.ceil(num_chains / ncols)
    fig, axes = _image_axes(nrows, ncols, shape)
    for c, ax in enumerate(axes.flat):
        if c < num_chains:
            ax.imshow(values[c, -1], interpolation="nearest", **style)
            ax.set_title(f"chain {c}", fontsize=8)
        else:
            ax.set_visible(False)
    return fig


def time_grid_figure(data, var: str, shape) -> Figure:
    """Rows: (up to 8) chains; columns: (up to 8) draws evenly spaced over the run."""
    values, style = _images(data, var, shape)
    num_chains, num_draws = values.shape[:2]
    chains = min(num_chains, _MAX_IMAGE_CHAINS)
    times = np.unique(np.linspace(0, num_draws - 1, min(_TIME_POINTS, num_draws)).astype(int))
    fig, axes = _image_axes(chains, len(times), shape)
    for c in range(chains):
        for j, t in enumerate(times):
            ax = axes[c, j]
            ax.imshow(values[c, t], interpolation="nearest", **style)
            if c == 0:
                ax.set_title(f"draw {t}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"chain {c}", fontsize=8)
    return fig


def pixel_maps_figure(data, diag: Diagnostics, var: str, shape) -> Figure:
    """Mean over all draws, R-hat and bulk ESS of every pixel; pixels constant in every chain
    (R-hat and ESS undefined) grey."""
    rows = [r for r in diag.coordinates if diag.locations[r["quantity"]][1] == var]
    values, style = _images(data, var, shape)
    shape2d = shape[:2]
    mean = np.nanmean(values, axis=(0, 1)).reshape(shape2d)
    rhat = np.array([r["rhat"] for r in rows], dtype=float).reshape(shape2d)
    ess = np.array([r["ess_bulk"] for r in rows], dtype=float).reshape(shape2d)
    fig, axes = new_figure(1, 3, 11, 3.4)
    panels = ((mean, "mean", style.get("cmap", "gray"), style.get("vmin"), style.get("vmax")),
              (rhat, "R-hat", "magma", 1.0, max(float(np.nanmax(rhat)) if np.isfinite(rhat).any() else 1.0,
                                                  diag.rhat_threshold)),
              (ess, "bulk ESS", "viridis", 0.0, None))
    for ax, (img, name, cmap, vmin, vmax) in zip(axes[0], panels):
        cmap = matplotlib.colormaps[cmap].with_extremes(bad="0.75")
        im = ax.imshow(np.ma.masked_invalid(img), interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig
