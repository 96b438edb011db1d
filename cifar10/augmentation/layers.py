"""The augmentation pipeline: keras-cv preprocessing layers built from `AugmentParams`, seeded.

Policy `seed` reproduces the study's transforms: one affine transform per image (rotation, shift,
zoom), then an optional flip, then brightness. Meanings of the ranges:

- rotation `[lo, hi]` degrees is the angle's magnitude; the direction is random, so `[0, 30]`
  draws uniformly in [-30, 30] like Keras' `ImageDataGenerator(rotation_range=30)`, and `[10, 30]`
  draws from [-30, -10] or [10, 30].
- shifts draw uniformly in [-f, f] of the width/height; zoom draws a scale factor uniformly in
  `[lo, hi]` (>1 enlarges the content), the output stays 32x32; brightness multiplies each image by
  a factor drawn uniformly in `[lo, hi]` and clips to [0, 255].

keras-cv lacks these exact semantics: its rotation takes a signed range, its zoom a sampling step
limited to [-1, 1], its brightness is additive, and chaining its three geometric layers resamples
(blurs) each image three times where the study resampled once. So two thin layers of our own, on
keras-cv's vectorized base layer, do the geometry (its maths in `exact.py`) and the brightness;
flip and RandAugment are keras-cv's. Every layer gets its own generator seeded from the stage seed,
so the same params and seed give the same bytes, and for the `seed` and `oversample` policies the
same bytes on every x86-64 CPU (`exact.py` says why; RandAugment's keras-cv ops make no such promise).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from cifar10.console import quiet_tensorflow

quiet_tensorflow()  # before keras-cv loads TensorFlow, or its start-up banners show
import keras_cv  # noqa: E402
import tensorflow as tf  # noqa: E402

from cifar10.augmentation.exact import bilinear, sample_coordinates  # noqa: E402
from cifar10.schema.augment import AugmentParams  # noqa: E402

_Base = keras_cv.layers.VectorizedBaseImageAugmentationLayer


class StudyAffine(_Base):
    """Rotation, shift and zoom of the study as ONE affine transform per image.

    Drawn per image: an angle of magnitude uniform in `degrees` with a random sign, shifts uniform
    in [-f, f] of the width/height, a scale uniform in `scale`. The three transforms (keras-cv's
    rotation, then translation, then zoom) are composed and the image is resampled once, as Keras'
    ImageDataGenerator does: three chained layers would blur 32x32 images three times, fill borders
    three times and take three times as long.
    """

    def __init__(self, degrees, width_shift, height_shift, scale, fill_mode="nearest", **kwargs):
        super().__init__(**kwargs)
        self.degrees = [math.radians(d) for d in degrees]
        self.width_shift, self.height_shift = width_shift, height_shift
        self.scale = scale
        self.fill_mode = fill_mode

    def get_random_transformation_batch(self, batch_size, **kwargs):
        draw = self._random_generator.uniform
        sign = tf.where(draw([batch_size]) < 0.5, -1.0, 1.0)
        return {
            "angles": sign * draw([batch_size], *self.degrees),
            "shifts": draw([batch_size, 2], -1.0, 1.0) * [self.width_shift, self.height_shift],
            "scales": draw([batch_size, 1], *self.scale),
        }

    def augment_images(self, images, transformations, **kwargs):
        t = transformations
        x, y = sample_coordinates(t["angles"], t["shifts"], t["scales"][:, 0], images.shape[1], images.shape[2])
        return bilinear(images, x, y, self.fill_mode)

    def augment_labels(self, labels, transformations, **kwargs):
        return labels


class MultiplicativeBrightness(_Base):
    """Multiply each image by a factor uniform in [low, high]; clip to the value range."""

    def __init__(self, factor: tuple[float, float], value_range=(0.0, 255.0), **kwargs):
        super().__init__(**kwargs)
        self.low, self.high = factor
        self.value_range = value_range

    def get_random_transformation_batch(self, batch_size, **kwargs):
        return self._random_generator.uniform([batch_size, 1, 1, 1], self.low, self.high)

    def augment_images(self, images, transformations, **kwargs):
        return tf.clip_by_value(images * transformations, *self.value_range)

    def augment_labels(self, labels, transformations, **kwargs):
        return labels


class SequentialRandAugment(keras_cv.layers.RandAugment):
    """keras-cv RandAugment, made reproducible.

    It draws per image inside `tf.map_fn` from shared stateful generators; with parallel
    iterations the draw order, hence the output, changes from run to run.
    """

    def _map_fn(self, func, inputs):
        return tf.map_fn(func, inputs, parallel_iterations=1)


def layer_seeds(seed: int, n: int) -> list[int]:
    """`n` distinct nonzero seeds from the stage seed (keras-cv treats seed 0 as "unseeded")."""
    state = np.random.SeedSequence([seed, 0xA06]).generate_state(n)
    return [int(s % (2**31 - 1)) + 1 for s in state]


def build_layers(cfg: AugmentParams, seed: int) -> list:
    """The preprocessing layers of `cfg.policy`, each seeded; identity transforms are left out (all of
    them for `oversample`, whose synthetic rows are exact copies)."""
    if cfg.policy == "oversample":
        return []
    seeds = iter(layer_seeds(seed, 8))
    # Some keras-cv layers ignore their seed: RandAugment's colour degeneration draws from the
    # global generator, some of its ops from TF's global seed. Seed both (this also lets them run
    # under TF op determinism, which refuses an unseeded global generator).
    tf.random.set_global_generator(tf.random.Generator.from_seed(next(seeds)))
    tf.random.set_seed(next(seeds))
    layers: list = []
    if cfg.policy == "randaugment":
        layers.append(
            SequentialRandAugment(
                value_range=(0, 255),
                augmentations_per_image=cfg.randaugment_layers,
                magnitude=cfg.randaugment_magnitude,
                seed=next(seeds),
            )
        )
    elif cfg.rotation[1] > 0 or cfg.width_shift > 0 or cfg.height_shift > 0 or cfg.zoom != [1.0, 1.0]:
        layers.append(
            StudyAffine(
                cfg.rotation, cfg.width_shift, cfg.height_shift, cfg.zoom, cfg.fill_mode, seed=next(seeds)
            )
        )
    if cfg.horizontal_flip:
        layers.append(keras_cv.layers.RandomFlip("horizontal", seed=next(seeds)))
    if cfg.policy == "seed" and cfg.brightness != [1.0, 1.0]:
        layers.append(MultiplicativeBrightness(tuple(cfg.brightness), seed=next(seeds)))
    return layers


def make_augmenter(cfg: AugmentParams, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping a uint8 batch (n, 32, 32, 3) to its augmented uint8 batch.

    Call it on whole batches: float32 exists only inside the compiled graph, one batch at a time.
    """
    layers = build_layers(cfg, seed)

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8)])
    def apply(batch):
        x = tf.cast(batch, tf.float32)
        for layer in layers:
            x = layer(x)
        return to_uint8(x)

    return lambda batch: apply(batch).numpy()


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """Float pixels to uint8: rounded half to even, clipped to [0, 255] (all exact operations)."""
    return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


def augment_rows(
    augmenter: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    rows: np.ndarray,
    out: np.ndarray,
    batch_size: int,
) -> None:
    """Write augmented copies of `x[rows]` into `out` (len(rows) images), batch by batch."""
    for start in range(0, len(rows), batch_size):
        stop = min(start + batch_size, len(rows))
        out[start:stop] = augmenter(x[rows[start:stop]])
