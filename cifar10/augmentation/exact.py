"""The study's geometry (rotation, shift, zoom, bilinear resampling) from operations whose results do
not depend on the CPU, so the augment stage writes the same bytes on every x86-64 machine.

Why each step cannot vary: every float result below comes from one IEEE 754 operation (add,
subtract, multiply, divide, floor) on float64 tensors, applied one TensorFlow op at a time in the
order written. IEEE 754 fixes each such result to the last bit, whatever the vector width of the
kernel that computes it (SSE, AVX2, AVX-512 give the same sums and products), and a separate op
cannot be fused into a multiply-add. Everything else is integer arithmetic, comparisons and copies
(gather, cast of a whole number, select). What is left out is what made the bytes differ between
CPU kinds: `tf.sin`/`tf.cos` (polynomial kernels that are not correctly rounded: on an AMD EPYC 2 of
64 cosines differed from the correctly rounded value), matmuls (oneDNN picks its kernel and its
summation order per CPU) and `ImageProjectiveTransformV3`. `tests/test_exact_augment.py` holds the
stage's graph to an allow-list of such ops and checks every step against a NumPy twin bit for bit.
"""
from __future__ import annotations

import math

import tensorflow as tf

F64 = tf.float64
# Taylor coefficients 1/n!, n = 1..33 odd (sine) and 0..32 even (cosine), as Python floats: the same
# doubles everywhere (Python's int -> float conversion and division are correctly rounded). Enough
# terms that the series is exact to float64 rounding for |angle| <= pi (the schema's 180 degrees).
SIN_COEFFS = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(17))
COS_COEFFS = tuple((-1) ** k / math.factorial(2 * k) for k in range(17))
# Coordinates beyond this are clamped before `floor`, so a tiny zoom factor cannot overflow int32.
_FAR = 2.0**20
FILL_MODES = ("nearest", "reflect", "wrap", "constant")


def _series(x2: tf.Tensor, coeffs: tuple[float, ...]) -> tf.Tensor:
    """sum(coeffs[k] * x2**k) by Horner's rule, one multiply and one add per term."""
    acc = tf.fill(tf.shape(x2), tf.constant(coeffs[-1], F64))
    for c in reversed(coeffs[:-1]):
        acc = tf.add(tf.multiply(acc, x2), tf.constant(c, F64))
    return acc


def sin_cos(angles: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(sin, cos) of float64 radians in [-pi, pi], by the Taylor series: no transcendental kernel."""
    x2 = tf.multiply(angles, angles)
    return tf.multiply(angles, _series(x2, SIN_COEFFS)), _series(x2, COS_COEFFS)


def sample_coordinates(angles, shifts, scales, height: int, width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Where each output pixel samples its input: (x, y), each float64 (n, height, width).

    Per image: rotate by `angles` radians about the centre, shift by `shifts` (n, 2) fractions of the
    width and height, zoom by `scales` (n,) (> 1 enlarges the content), as keras-cv's rotation, then
    translation, then zoom layers chained: the input is sampled at centre + R(z * (p - centre) - d).
    """
    angles, shifts, scales = (tf.cast(t, F64) for t in (angles, shifts, scales))
    sin, cos = sin_cos(angles)
    cx, cy = (width - 1) / 2, (height - 1) / 2  # halves of small integers: exact
    z = tf.divide(tf.constant(1.0, F64), scales)[:, None, None]
    dx = tf.multiply(shifts[:, 0], float(width))[:, None, None]
    dy = tf.multiply(shifts[:, 1], float(height))[:, None, None]
    gx = tf.constant([i - cx for i in range(width)], F64)[None, None, :]
    gy = tf.constant([i - cy for i in range(height)], F64)[None, :, None]
    u = tf.subtract(tf.multiply(z, gx), dx)  # (n, 1, width)
    v = tf.subtract(tf.multiply(z, gy), dy)  # (n, height, 1)
    c, s = cos[:, None, None], sin[:, None, None]
    x = tf.add(tf.subtract(tf.multiply(c, u), tf.multiply(s, v)), cx)
    y = tf.add(tf.add(tf.multiply(s, u), tf.multiply(c, v)), cy)
    return x, y


def _fill_index(i: tf.Tensor, size: int, fill_mode: str) -> tuple[tf.Tensor, tf.Tensor | None]:
    """(an index into [0, size), mask of in-range indices or None): integer arithmetic only.

    nearest repeats the edge pixel (aaaa|abcd|dddd), reflect mirrors about the edge (dcba|abcd|dcba),
    wrap tiles the image (abcd|abcd|abcd), constant reads 0 outside (the mask zeroes those reads).
    """
    if fill_mode == "nearest":
        return tf.clip_by_value(i, 0, size - 1), None
    if fill_mode == "wrap":
        return tf.math.floormod(i, size), None
    if fill_mode == "reflect":
        m = tf.math.floormod(i, 2 * size)
        return tf.where(m >= size, 2 * size - 1 - m, m), None
    if fill_mode == "constant":
        inside = tf.logical_and(i >= 0, i < size)
        return tf.clip_by_value(i, 0, size - 1), inside
    raise ValueError(f"fill_mode: one of {FILL_MODES} (got {fill_mode!r})")


def bilinear(images: tf.Tensor, x: tf.Tensor, y: tf.Tensor, fill_mode: str) -> tf.Tensor:
    """Sample float images (n, h, w, c) at float64 (n, h, w) coordinates; float32 (n, h, w, c) out.

    Each output is ((1-fy)((1-fx)p00 + fx p01) + fy((1-fx)p10 + fx p11)) in float64, in that order,
    then rounded once to float32; pixels outside the image come from `fill_mode`.
    """
    n, h, w, c = (tf.shape(images)[k] for k in range(4))
    size_y, size_x = images.shape[1], images.shape[2]
    x = tf.clip_by_value(x, -_FAR, _FAR)
    y = tf.clip_by_value(y, -_FAR, _FAR)
    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = tf.subtract(x, x0)[..., None], tf.subtract(y, y0)[..., None]  # exact: x0 is x's whole part
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    flat = tf.reshape(tf.cast(images, F64), [-1, c])
    base = tf.range(n)[:, None, None] * (h * w)

    def read(yi, xi):
        (yi, y_in), (xi, x_in) = _fill_index(yi, size_y, fill_mode), _fill_index(xi, size_x, fill_mode)
        pixels = tf.gather(flat, base + yi * w + xi)
        if y_in is None:
            return pixels
        return tf.where(tf.logical_and(y_in, x_in)[..., None], pixels, tf.zeros_like(pixels))

    one = tf.constant(1.0, F64)
    gx, gy = tf.subtract(one, fx), tf.subtract(one, fy)
    top = tf.add(tf.multiply(gx, read(y0, x0)), tf.multiply(fx, read(y0, x0 + 1)))
    bottom = tf.add(tf.multiply(gx, read(y0 + 1, x0)), tf.multiply(fx, read(y0 + 1, x0 + 1)))
    return tf.cast(tf.add(tf.multiply(gy, top), tf.multiply(fy, bottom)), tf.float32)
