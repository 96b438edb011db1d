"""The one pass of the frozen backbone over the images, and the cache it leaves.

The frozen part of the backbone runs in inference mode, so its output is a fixed function of the
image: it is computed once and every epoch of the head (and of fine-tuning) trains on the cache.
With a cut of N blocks the cache is the input of the backbone's last N blocks, stored as float16;
without, the pooled features in float32.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar10.data.dataset import Dataset
from cifar10.data.splits import split_rows, validation_source
from cifar10.schema.transfer import TransferParams
from cifar10.training.distribution import Cluster


@dataclass
class Pass:
    """What the one backbone pass produced: the backbone, its part below the cache and the part above
    (None when all of it is frozen), the cached outputs of every image and of the mirror images of
    `mirror_rows`."""

    backbone: object
    lower: object
    upper: object | None
    cache: np.ndarray
    mirror_rows: np.ndarray  # sorted rows whose mirror image went through the pass
    mirrored: np.ndarray  # their cached outputs, in the order of mirror_rows
    train_rows: np.ndarray
    val_rows: np.ndarray
    seconds: float
    policy: str = "float32"  # the dtype policy the frozen pass computed in (and the saved model predicts in)

    def of(self, rows: np.ndarray, mirror: bool = False) -> np.ndarray:
        if not mirror:
            return self.cache[rows]
        return self.mirrored[np.searchsorted(self.mirror_rows, rows)]


def backbone_pass(train: Dataset, cfg: TransferParams, weights: Path | None, seed: int, cluster: Cluster,
                  cut_blocks: int) -> Pass:
    """Build the frozen backbone and run it once over every training image (and the mirror images
    `cfg` asks for), caching its pooled features, or with `cut_blocks` the input of its top blocks."""
    from cifar10.training.embeddings import embed

    tr, val = split_rows(train.y, cfg.validation_split, seed, section="transfer",
                         source=validation_source(train.extra, cfg.validation_from, "transfer"))
    backbone, lower, upper, cached, frozen = pass_networks(cfg, weights, cluster, cut_blocks)
    mirrors = (len(tr) if cfg.flip_train else 0) + (len(val) if cfg.flip_test else 0)
    check_cache_fits(tuple(lower.output.shape[1:]), len(train) + mirrors, cut_blocks, _memory_bytes())
    started = time.perf_counter()
    store = "float16" if cut_blocks else "float32"  # a 7x7 feature-map cache is 37x larger than pooled features
    cache, _ = embed(cached, train.x, cfg.embed_batch_size, desc="backbone pass", dtype=store)
    mirror_rows = np.sort(np.concatenate([tr if cfg.flip_train else [], val if cfg.flip_test else []]).astype(int))
    # The saved model's mirror layers flip the same way, exactly (tested).
    mirrored, _ = embed(cached, train.x[mirror_rows][:, :, ::-1], cfg.embed_batch_size, desc="mirrored pass",
                        dtype=store)
    return Pass(backbone, lower, upper, cache, mirror_rows, mirrored, tr, val, time.perf_counter() - started, frozen)


def pass_networks(cfg: TransferParams, weights: Path | None, cluster: Cluster, cut_blocks: int):
    """(backbone, lower, upper, the extractor the pass runs, the frozen work's dtype policy): the backbone
    built in the fine-tuning precision (it trains and is saved), cut before its top `cut_blocks` blocks
    (upper None without a cut), and the frozen pass's extractor over the lower part."""
    from cifar10.models import transfer as tm
    from cifar10.models.blocks import split
    from cifar10.models.folding import fold_batch_norm
    from cifar10.models.recast import recast
    from cifar10.training.precision import resolve
    from cifar10.runtime import precision

    frozen, tuning = resolve(cfg.precision, "frozen")[0], resolve(cfg.precision, "fine_tune")[0]
    with cluster.scope(), precision(tuning):  # the network that trains (fine-tuning) and is saved
        backbone = tm.build_backbone(cfg.backbone, cfg.image_size, weights)
        lower, upper = split(backbone, cut_blocks) if cut_blocks else (backbone, None)
    with cluster.scope(), precision(frozen):
        # The pass runs the frozen part with batch norm folded into its convolutions: the same features
        # to float32 rounding, 1.7x faster on a 2-core CPU (BENCHMARKS.md); training and saving use the
        # original. It computes in the frozen work's precision, which fine-tuning need not share.
        cached = tm.build_extractor(cfg.backbone, fold_batch_norm(recast(lower, frozen)), cfg.image_size,
                                    pool=not cut_blocks)
    return backbone, lower, upper, cached, frozen


def check_cache_fits(map_shape: tuple, images: int, cut_blocks: int, memory: int) -> None:
    """Refuse a `fine_tune_blocks` whose feature-map cache cannot fit in `memory` bytes, before the pass.

    The cache is float16, and fine-tuning holds a copy of its training rows: about twice its size.

    Raises:
        PipelineError: the cache would need more than half of the machine's memory.
    """
    from cifar10.errors import PipelineError

    if not cut_blocks:
        return
    need = 2 * 2 * images * int(np.prod(map_shape))
    if need > memory // 2:
        raise PipelineError(
            f"params.yaml: transfer.fine_tune_blocks: {cut_blocks} caches {images:,} feature maps of "
            f"{'x'.join(map(str, map_shape))} ({need / 2**30:.1f} GiB with fine-tuning's copy), more than half of "
            f"this machine's {memory / 2**30:.0f} GiB; fine-tune fewer blocks or lower transfer.image_size")


def _memory_bytes() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def narrowed(p: Pass, n_blocks: int, cluster: Cluster, batch: int = 256) -> Pass:
    """The same pass cut above its frozen middle: the cache run once through the blocks between its cut and
    the top `n_blocks`, so fine-tuning fewer blocks than the pass left above its cache does not rerun the
    frozen ones every epoch. The returned pass shares the backbone's layers (training it trains them)."""
    import keras
    import tensorflow as tf

    from cifar10.models.blocks import block_names, split
    from cifar10.models.folding import fold_batch_norm
    from cifar10.models.recast import recast

    if p.upper is None or n_blocks >= len(block_names(p.upper)):
        return p
    lower, upper = split(p.backbone, n_blocks)
    middle = keras.Model(p.lower.output, lower.output)  # both tensors of the backbone's own graph
    with cluster.scope():
        frozen = fold_batch_norm(recast(middle, p.policy))  # inference only, as in the first pass
    step = tf.function(lambda x: frozen(tf.cast(x, tf.float32), training=False), reduce_retracing=True)

    def through(maps: np.ndarray) -> np.ndarray:
        out = np.empty((len(maps), *middle.output.shape[1:]), dtype=maps.dtype)
        for start in range(0, len(maps), batch):
            out[start : start + batch] = step(maps[start : start + batch]).numpy()
        return out

    started = time.perf_counter()
    cache, mirrored = through(p.cache), through(p.mirrored)
    return Pass(p.backbone, lower, upper, cache, p.mirror_rows, mirrored, p.train_rows, p.val_rows,
                p.seconds + time.perf_counter() - started, p.policy)


def features(p: Pass, rows: np.ndarray, cluster: Cluster, batch: int, mirror: bool = False) -> np.ndarray:
    """Pooled features of `rows` (or of their mirror images): the cache, or the cache through the upper
    blocks as they are now, run like the frozen pass (batch norm folded, in its precision): for the head's
    features that pass costs a third of the plain upper blocks' on AMX, and predictions run the same way."""
    from cifar10.models.folding import fold_batch_norm
    from cifar10.models.recast import recast
    from cifar10.training.embeddings import pooled

    maps = p.of(rows, mirror)
    if p.upper is None:
        return maps
    with cluster.scope():
        frozen = fold_batch_norm(recast(p.upper, p.policy))  # a copy of the blocks' current weights
    return pooled(frozen, maps, batch, cluster)
