"""Decoding one image file into the pipeline's pixel format: RGB uint8, 32x32."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cifar10.errors import PipelineError

SIZE = (32, 32)


def to_rgb32(img: Image.Image) -> np.ndarray:
    """Any PIL image as a (32, 32, 3) uint8 RGB array.

    Grayscale, palette, RGBA, LA, CMYK, 16-bit... all go through PIL's RGB conversion (alpha is
    dropped). Only images that are not already 32x32 are resized, with bilinear filtering, so
    CIFAR-sized inputs keep their exact pixels.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # PIL cannot convert 16/32-bit integer images straight to RGB without clipping to white.
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray((arr * (255.0 / peak)).clip(0, 255).astype(np.uint8), mode="L")
    if img.mode != "RGB":
        img = img.convert("RGB")
    if img.size != SIZE:
        img = img.resize(SIZE, Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8).reshape(SIZE[1], SIZE[0], 3)


def read_image(path: str | Path) -> np.ndarray:
    """Decode a PNG/JPEG file into a (32, 32, 3) uint8 RGB array; PipelineError if it is not one."""
    try:
        with Image.open(path) as img:
            return to_rgb32(img)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise PipelineError(f"{path}: not a readable PNG/JPEG image ({type(exc).__name__}: {exc})") from None
