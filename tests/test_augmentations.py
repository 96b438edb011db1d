"""Each transform of the augmentation pipeline on purpose-built images: it acts, within its bounds."""
from __future__ import annotations

import numpy as np
import pytest

from cifar10.augmentation.layers import augment_rows, layer_seeds, make_augmenter
from cifar10.schema.augment import AugmentParams

N = 64
# Every transform switched off; each test turns on one.
IDENTITY = dict(
    rotation=[0.0, 0.0], width_shift=0.0, height_shift=0.0, brightness=[1.0, 1.0], zoom=[1.0, 1.0]
)


def only(**changes) -> AugmentParams:
    return AugmentParams(**{**IDENTITY, "batch_size": 32, **changes})


def run(cfg: AugmentParams, image: np.ndarray, seed: int = 7) -> np.ndarray:
    batch = np.repeat(image[None], N, axis=0)
    out = np.empty_like(batch)
    augment_rows(make_augmenter(cfg, seed), batch, np.arange(N), out, cfg.batch_size)
    assert out.dtype == np.uint8 and out.shape == batch.shape
    return out


def square(side: int = 8, value: int = 200) -> np.ndarray:
    img = np.zeros((32, 32, 3), np.uint8)
    lo = 16 - side // 2
    img[lo : lo + side, lo : lo + side] = value
    return img


def centroid_and_mass(img: np.ndarray) -> tuple[np.ndarray, float]:
    w = img[..., 0].astype(np.float64)
    rows, cols = np.indices(w.shape)
    mass = w.sum()
    return np.array([(rows * w).sum() / mass, (cols * w).sum() / mass]), mass


def test_identity_config_returns_input_unchanged():
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(run(only(), img), np.repeat(img[None], N, axis=0))


def test_rotation_turns_a_line_by_a_magnitude_in_range_both_ways():
    img = np.zeros((32, 32, 3), np.uint8)
    img[15:17, 2:30] = 255  # a horizontal bar through the centre: its angle is measurable
    out = run(only(rotation=[20.0, 30.0], fill_mode="constant"), img)
    angles = []
    for o in out:
        w = o[..., 0].astype(np.float64)
        r, c = np.indices(w.shape)
        mr, mc = (r * w).sum() / w.sum(), (c * w).sum() / w.sum()
        cov = np.cov(np.stack([(c - mc).ravel(), (r - mr).ravel()]), aweights=w.ravel())
        angles.append(np.degrees(0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])))
    magnitude = np.abs(angles)
    assert magnitude.min() > 18 and magnitude.max() < 32, (magnitude.min(), magnitude.max())
    assert (np.array(angles) > 0).any() and (np.array(angles) < 0).any()


def test_shift_moves_content_within_the_fraction_and_keeps_it_whole():
    img = square()
    out = run(only(width_shift=0.2, height_shift=0.1, fill_mode="constant"), img)
    (cy, cx), mass = centroid_and_mass(img)
    shifts = []
    for o in out:
        (oy, ox), omass = centroid_and_mass(o)
        shifts.append((oy - cy, ox - cx))
        assert omass == pytest.approx(mass, rel=0.02)  # geometry only: nothing brightened or lost
        assert o.max() <= img.max() and o.min() >= img.min()
    dy, dx = np.abs(np.array(shifts)).T
    assert dx.max() <= 0.2 * 32 + 0.5 and dy.max() <= 0.1 * 32 + 0.5
    assert dx.max() > 2 and dy.max() > 1


def test_zoom_scales_content_by_factors_in_range_both_ways():
    img = square(side=10)
    out = run(only(zoom=[0.8, 1.2], fill_mode="constant"), img)
    _, mass = centroid_and_mass(img)
    scale = np.sqrt([centroid_and_mass(o)[1] / mass for o in out])  # area grows with scale squared
    assert scale.min() >= 0.8 - 0.03 and scale.max() <= 1.2 + 0.03, (scale.min(), scale.max())
    assert scale.min() < 0.9 and scale.max() > 1.1
    assert out.max() <= img.max()


def test_brightness_multiplies_each_image_within_the_factor_bounds():
    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    lo, hi = 0.7, 1.3
    out = run(only(brightness=[lo, hi]), img).astype(np.int64)
    x = img.astype(np.float64)
    assert (out >= np.floor(x * lo) - 1).all()
    assert (out <= np.minimum(255, np.ceil(x * hi) + 1)).all()
    unclipped = (x > 20) & (x * hi < 250)
    ratios = np.array([(o[unclipped] / x[unclipped]) for o in out])
    assert ratios.std(axis=1).max() < 0.02  # one factor per image, not per pixel
    assert ratios.mean(axis=1).min() < 0.8 and ratios.mean(axis=1).max() > 1.2


def test_flip_only_when_enabled_and_exact():
    img = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = run(only(horizontal_flip=True), img)
    same = [np.array_equal(o, img) for o in out]
    mirrored = [np.array_equal(o, img[:, ::-1]) for o in out]
    assert all(s or m for s, m in zip(same, mirrored)) and any(same) and any(mirrored)


def test_default_pipeline_is_seeded():
    img = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cfg = AugmentParams(batch_size=32)
    first, again, other = run(cfg, img, seed=5), run(cfg, img, seed=5), run(cfg, img, seed=6)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert len({o.tobytes() for o in first}) == N  # every variant differs


def test_randaugment_policy_runs_seeded_on_uint8():
    img = np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cfg = AugmentParams(policy="randaugment", batch_size=32)
    first, again = run(cfg, img, seed=5), run(cfg, img, seed=5)
    assert np.array_equal(first, again)
    assert sum(not np.array_equal(o, img) for o in first) > N // 2


def test_layer_seeds_are_nonzero_and_distinct_even_for_seed_zero():
    seeds = layer_seeds(0, 8)
    assert 0 not in seeds and len(set(seeds)) == 8
