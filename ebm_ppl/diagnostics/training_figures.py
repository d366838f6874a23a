"""Training figures of the chapter: JEM (Fig. 6.2) and an RBM's filters, samples and likelihood.

Drawn on ``matplotlib.figure.Figure`` with the Agg canvas (pyplot and its global figure list are
never touched; :func:`ebm_ppl.diagnostics.figures.new_figure`) and written atomically: a temporary
file in the target's folder, then :func:`os.replace`, so a reader never sees half a PNG.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jaxtyping import ArrayLike, PRNGKeyArray
from matplotlib.figure import Figure

from ebm_ppl.archive import atomic_write
from ebm_ppl.compiler import filter_jit
from ebm_ppl.diagnostics.figures import new_figure
from ebm_ppl.diagnostics.image_figures import image_grid, show_grid
from ebm_ppl.moves.gibbs import gibbs_sweeps
from ebm_ppl.potentials.base import Potential, Support
from ebm_ppl.training.jem import langevin_samples

__all__ = ["jem_figure", "rbm_figure", "image_grid"]

_gibbs_sweeps = filter_jit(gibbs_sweeps)  # module-level: one compiled program per model shape

_DPI = 120


def jem_figure(model: Potential, x_real: ArrayLike, history: Any, path: str | os.PathLike, *, key: PRNGKeyArray,
               image_shape: tuple[int, int] = (8, 8), num_images: int = 64, steps: int = 20,
               step_size: float = 1.0, noise_scale: float | None = 0.01) -> str:
    """The chapter's Fig. 6.2 as a PNG: real digits, samples after ``steps`` Langevin steps from
    uniform noise, and the validation curves of L_clf + L_gen and of L_gen over epochs.

    Args:
        model: a trained :class:`ebm_ppl.JEM`.
        x_real: real images ``(N, H*W)``; the first ``num_images`` are shown.
        history: the :class:`ebm_ppl.training.History` of ``fit`` with the JEM estimator (its
            ``val_loss``/``val_gen_loss``; the ``train_`` curves are drawn dashed when present).
        path: the PNG to write.
        key: PRNG key of the samples.
        image_shape: (H, W) of one image.
        num_images: how many real images and samples to show.
        steps: Langevin steps of the samples (:func:`ebm_ppl.training.jem.langevin_samples`).
        step_size: their step size alpha.
        noise_scale: their noise standard deviation sigma.

    Returns:
        ``path`` as a string.
    """

    x_real = np.asarray(x_real, dtype=np.float64)
    _check_images(x_real, image_shape, "jem_figure")
    real = x_real[:num_images]
    low, high = float(real.min()), float(real.max())
    samples = np.asarray(langevin_samples(key, model, real.shape[0], steps=steps, step_size=step_size,
                                          noise_scale=noise_scale, init_low=low, init_high=high))

    fig, axes = new_figure(1, 4, 15.0, 3.8)
    ax_real, ax_samples, ax_loss, ax_gen = axes[0]
    show_grid(ax_real, real, image_shape, "real digits", (low, high))
    show_grid(ax_samples, samples, image_shape, f"samples after {steps} Langevin steps", (low, high))
    _curves(ax_loss, history, "loss", r"$L_{clf} + L_{gen}$")
    _curves(ax_gen, history, "gen_loss", r"$L_{gen}$")
    return _save(fig, path)


def rbm_figure(model: Potential, history: Any, path: str | os.PathLike, *, key: PRNGKeyArray,
               image_shape: tuple[int, int] = (8, 8), num_samples: int = 64, sweeps: int = 1000,
               max_filters: int = 64, metric: str | None = None, tempered_samples: np.ndarray | None = None,
               num_replicas: int | None = None) -> str:
    """An RBM's training figure as a PNG: its filters (columns of W as images), samples of
    ``num_samples`` block Gibbs chains after ``sweeps`` sweeps from the model's default starts
    (:meth:`~ebm_ppl.Potential.initial_positions`), and the log-likelihood over epochs
    (``val_log_likelihood`` and ``train_log_likelihood``; the pseudo-log-likelihood when no exact
    one was recorded).

    Args:
        model: an RBM (a potential with weights ``W`` ``(n_visible, ...)``).
        history: the :class:`ebm_ppl.training.History` of ``fit``.
        path: the PNG to write.
        key: PRNG key of the samples.
        image_shape: (H, W) of one image; ``H * W`` must be the number of visible units.
        max_filters: how many columns of ``W`` to show.
        metric: the metric whose curves to draw (without ``val_``/``train_``); default the exact
            log-likelihood, else the pseudo-log-likelihood.
        tempered_samples: ``(n, n_visible)`` draws of parallel tempering after as many sweeps,
            shown beside the plain Gibbs samples (``num_replicas`` names its ladder's size).

    Returns:
        ``path`` as a string.
    """
    if not hasattr(model, "W"):
        raise TypeError(f"rbm_figure: expects an RBM with weights W, got {type(model).__name__}")
    d = int(np.prod(model.event_shape))
    if d != image_shape[0] * image_shape[1]:
        raise ValueError(f"rbm_figure: image_shape {image_shape} does not hold the {d} visible units")
    filters = np.asarray(model.W, dtype=np.float64).reshape(d, -1).T[:max_filters]

    k_start, k_run = jax.random.split(key)
    start = model.initial_positions(k_start, num_samples).astype(np.asarray(model.W).dtype)
    samples = np.asarray(_gibbs_sweeps(k_run, model, start, sweeps))

    panels = 3 if tempered_samples is None else 4
    fig, axes = new_figure(1, panels, 4.0 * panels, 3.9)
    ax_filters, ax_samples, *ax_pt, ax_ll = axes[0]
    bound = float(np.max(np.abs(filters))) or 1.0
    show_grid(ax_filters, filters, image_shape, f"filters (columns of W, {filters.shape[0]})", (-bound, bound),
              cmap="RdBu_r")
    span = (0.0, 1.0) if model.support == Support.BINARY else (float(samples.min()), float(samples.max()))
    show_grid(ax_samples, samples, image_shape, f"samples after {sweeps} Gibbs sweeps", span)
    if ax_pt:
        _check_images(np.asarray(tempered_samples), image_shape, "rbm_figure")
        replicas = f", {num_replicas} replicas" if num_replicas else ""
        show_grid(ax_pt[0], np.asarray(tempered_samples), image_shape,
                  f"parallel tempering, {sweeps} sweeps{replicas}", span)
    names = getattr(history, "metric_names", [])
    if metric is None:
        metric = "log_likelihood" if any(n in ("val_log_likelihood", "train_log_likelihood") for n in names) \
            else "pseudo_log_likelihood"
    _curves(ax_ll, history, metric, metric.replace("_", " "))
    return _save(fig, path)


def _check_images(x: np.ndarray, image_shape: tuple[int, int], owner: str) -> None:
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != image_shape[0] * image_shape[1]:
        raise ValueError(f"{owner}: images of shape {x.shape} do not match image_shape {image_shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{owner}: no images to show")


def _curves(ax, history: Any, metric: str, label: str) -> None:
    drawn = False
    epochs = _values(history, "epoch")
    for prefix, style in (("val_", "-"), ("train_", "--")):
        values = _values(history, prefix + metric)
        if values is None or not np.isfinite(values).any():
            continue
        x = epochs if epochs is not None and len(epochs) == len(values) else np.arange(len(values))
        ax.plot(x, values, style, marker="o" if len(values) < 30 else None, ms=3,
                label=("validation" if prefix == "val_" else "training"))
        drawn = True
    ax.set_title(label, fontsize=10)
    ax.set_xlabel("epoch")
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"no {metric} recorded", ha="center", va="center", transform=ax.transAxes)


def _values(history: Any, name: str) -> np.ndarray | None:
    try:
        values = np.asarray(history[name], dtype=np.float64)
    except (KeyError, TypeError, IndexError):
        return None
    return values if values.ndim == 1 and values.size else None


def _save(fig: Figure, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI))
    return path
