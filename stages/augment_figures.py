"""The augment stage's figures: one image and its variants, and synthetic samples per class."""
from __future__ import annotations

from typing import Mapping

import numpy as np
from matplotlib.figure import Figure


def _show(ax, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def preview_figure(original: np.ndarray, variants: np.ndarray, label: str) -> Figure:
    """One training image followed by its augmented variants, in one row (uint8 HWC images)."""
    n = 1 + len(variants)
    fig = Figure(figsize=(1.4 * n, 1.8))
    axes = np.atleast_1d(fig.subplots(1, n))
    _show(axes[0], original, f"original ({label})")
    for i, (ax, image) in enumerate(zip(axes[1:], variants), start=1):
        _show(ax, image, f"variant {i}")
    fig.tight_layout()
    return fig


def samples_figure(samples: Mapping[str, np.ndarray], columns: int = 8) -> Figure:
    """A grid with one row of synthetic images per augmented class."""
    rows = max(len(samples), 1)
    fig = Figure(figsize=(1.2 * columns + 0.8, 1.3 * rows + 0.4))
    axes = np.array(fig.subplots(rows, columns, squeeze=False))
    for ax in axes.ravel():
        ax.axis("off")
    for r, (name, images) in enumerate(samples.items()):
        for c, image in enumerate(images[:columns]):
            axes[r, c].axis("on")
            _show(axes[r, c], image)
        axes[r, 0].set_ylabel(name, fontsize=9)
        axes[r, 0].axis("on")
    if not samples:
        fig.text(0.5, 0.5, "no synthetic images (all classes at target)", ha="center")
    fig.suptitle("synthetic training images per augmented class", fontsize=10)
    fig.tight_layout()
    return fig
