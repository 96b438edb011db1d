"""The pipeline's figures, as matplotlib Figures (no pyplot state, headless): sample grids, class
counts, augmentation previews, confusion matrices."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure


def _show(ax, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def sample_grid(x: np.ndarray, y: np.ndarray, classes: Sequence[str], per_class: int = 8, title: str = "") -> Figure:
    """One row per class showing its first `per_class` images."""
    fig = Figure(figsize=(per_class * 0.8 + 1.2, len(classes) * 0.8 + 0.4))
    axes = fig.subplots(len(classes), per_class, squeeze=False)
    for label, name in enumerate(classes):
        rows = np.flatnonzero(y == label)[:per_class]
        for col, ax in enumerate(axes[label]):
            if col < len(rows):
                _show(ax, x[rows[col]])
            else:
                ax.axis("off")
        axes[label][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.15, right=0.99, top=0.95 if title else 0.99, bottom=0.01, wspace=0.05, hspace=0.05)
    return fig


def counts_figure(before: dict[str, int], after: dict[str, int], title: str = "training images per class") -> Figure:
    """Grouped bars: images per class before and after a stage changed the set."""
    names = list(before)
    pos = np.arange(len(names))
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    ax.bar(pos - 0.2, [before[n] for n in names], width=0.4, label="before")
    bars = ax.bar(pos + 0.2, [after[n] for n in names], width=0.4, label="after")
    ax.bar_label(bars, fontsize=7)
    ax.set_xticks(pos, names, rotation=30, ha="right")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


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


def confusion_figure(matrix: np.ndarray, classes: Sequence[str], title: str) -> Figure:
    """A labelled confusion-matrix heat map (rows actual, columns predicted)."""
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if n > threshold else "black")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig
