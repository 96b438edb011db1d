"""The frozen backbone's single pass: features of every image, computed in batches."""
from __future__ import annotations

import time
import weakref

import numpy as np
from cifar10.console import progress

_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def embed(extractor, images: np.ndarray, batch_size: int, desc: str = "embed",
          dtype: str = "float32") -> tuple[np.ndarray, float]:
    """Run `extractor` over uint8 `images` in batches; return (outputs stored as `dtype`, images per second).

    Only one batch is ever resized (inside the extractor), so memory stays flat however many images
    there are: at 224 px the resized set would need 60,000 x 224 x 224 x 3 x 4 bytes (36 GB). The
    progress bar (stderr) shows images/s and the ETA.
    """
    step = _step(extractor)
    n = len(images)
    out: np.ndarray | None = None
    started = time.perf_counter()
    with progress(n, desc) as bar:
        for start in range(0, n, batch_size):
            batch = step(images[start : start + batch_size]).numpy()
            if out is None:
                out = np.empty((n, *batch.shape[1:]), dtype=dtype)
            out[start : start + len(batch)] = batch
            bar.update(len(batch))
    seconds = time.perf_counter() - started
    if out is None:
        out = np.empty((0, *extractor.output.shape[1:]), dtype=dtype)
    return out, (n / seconds if seconds > 0 else float("nan"))


def _step(extractor):
    """The extractor as one traced graph for every batch size (the last batch is usually shorter).

    Cached per extractor: tracing EfficientNet costs seconds, and the train and test passes share it.
    """
    import tensorflow as tf

    step = _STEPS.get(extractor)
    if step is None:
        model = weakref.ref(extractor)  # a strong reference here would keep the key alive forever
        dtype = extractor.input.dtype
        step = tf.function(  # images stay uint8 until a batch enters the graph
            lambda x: model()(tf.cast(x, dtype), training=False),
            input_signature=[tf.TensorSpec((None, *extractor.input.shape[1:]), tf.uint8)],
        )
        _STEPS[extractor] = step
    return step


def pooled(upper, maps: np.ndarray, batch_size: int, cluster) -> np.ndarray:
    """Pooled features of cached feature maps through the (frozen) upper blocks, batch by batch."""
    import keras

    from cifar10.training.half_batches import HalfBatches

    with cluster.scope():
        inputs = keras.Input(maps.shape[1:])
        model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(upper(inputs, training=False)))
    if maps.dtype == np.float16:  # cast batch by batch, not the whole cache at once (half_batches.py)
        return np.asarray(model.predict(HalfBatches(maps, batch_size=batch_size), verbose=0), dtype=np.float32)
    return np.asarray(model.predict(maps, batch_size=batch_size, verbose=0), dtype=np.float32)
