"""A second, independent implementation of the augment stage's `seed` policy after its random draws:
NumPy ufuncs instead of TensorFlow kernels, the same IEEE 754 operations in the same order.

Two libraries with their own kernels (and, for NumPy, its own run-time choice of SSE, AVX2 or AVX-512
code) can only agree bit for bit if every step is an exactly rounded operation: a step that used a
CPU-dependent approximation would show as a mismatch here, on any one machine.
"""
from __future__ import annotations

import numpy as np

from cifar10.augmentation.exact import COS_COEFFS, SIN_COEFFS


def _series(x2: np.ndarray, coeffs) -> np.ndarray:
    acc = np.full_like(x2, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = np.add(np.multiply(acc, x2), c)
    return acc


def sin_cos(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x2 = np.multiply(angles, angles)
    return np.multiply(angles, _series(x2, SIN_COEFFS)), _series(x2, COS_COEFFS)


def sample_coordinates(angles, shifts, scales, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    angles, shifts, scales = (np.asarray(t, np.float64) for t in (angles, shifts, scales))
    sin, cos = sin_cos(angles)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    z = np.divide(1.0, scales)[:, None, None]
    dx = np.multiply(shifts[:, 0], float(width))[:, None, None]
    dy = np.multiply(shifts[:, 1], float(height))[:, None, None]
    gx = (np.arange(width, dtype=np.float64) - cx)[None, None, :]
    gy = (np.arange(height, dtype=np.float64) - cy)[None, :, None]
    u = np.subtract(np.multiply(z, gx), dx)
    v = np.subtract(np.multiply(z, gy), dy)
    c, s = cos[:, None, None], sin[:, None, None]
    x = np.add(np.subtract(np.multiply(c, u), np.multiply(s, v)), cx)
    y = np.add(np.add(np.multiply(s, u), np.multiply(c, v)), cy)
    return x, y


def _index(i: np.ndarray, size: int, fill_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(index into [0, size), whether the read is kept): nearest, reflect, wrap or constant (0)."""
    keep = np.ones(i.shape, bool)
    if fill_mode == "nearest":
        i = np.clip(i, 0, size - 1)
    elif fill_mode == "wrap":
        i = np.mod(i, size)
    elif fill_mode == "reflect":
        m = np.mod(i, 2 * size)
        i = np.where(m >= size, 2 * size - 1 - m, m)
    else:
        keep = (i >= 0) & (i < size)
        i = np.clip(i, 0, size - 1)
    return i, keep


def bilinear(images: np.ndarray, x: np.ndarray, y: np.ndarray, fill_mode: str) -> np.ndarray:
    n, h, w, _ = images.shape
    far = 2.0**20
    x, y = np.clip(x, -far, far), np.clip(y, -far, far)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    pixels = images.astype(np.float64)
    batch = np.arange(n)[:, None, None]

    def read(yi, xi):
        (yi, y_keep), (xi, x_keep) = _index(yi, h, fill_mode), _index(xi, w, fill_mode)
        return np.where((y_keep & x_keep)[..., None], pixels[batch, yi, xi], 0.0)

    gx, gy = 1.0 - fx, 1.0 - fy
    top = np.add(np.multiply(gx, read(y0, x0)), np.multiply(fx, read(y0, x0 + 1)))
    bottom = np.add(np.multiply(gx, read(y0 + 1, x0)), np.multiply(fx, read(y0 + 1, x0 + 1)))
    return np.add(np.multiply(gy, top), np.multiply(fy, bottom)).astype(np.float32)


def brighten(images: np.ndarray, factors: np.ndarray) -> np.ndarray:
    return np.clip(np.multiply(images, factors), np.float32(0), np.float32(255))


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)
