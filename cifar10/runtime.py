"""Process-wide TensorFlow set-up shared by the stages that train or transform: seeds, determinism, precision."""
from __future__ import annotations

import contextlib
from typing import Iterator


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy, TF and Keras; with `deterministic`, make TF ops reproducible on CPU.

    Must run before any model or dataset is built, since layers draw their seeds at construction.
    """
    from cifar10.console import quiet_tensorflow

    quiet_tensorflow()  # TF's log level only applies if set before TensorFlow loads
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)  # seeds random, numpy and the TF/Keras global generators
    if deterministic:
        tf.config.experimental.enable_op_determinism()


@contextlib.contextmanager
def precision(policy: str) -> Iterator[None]:
    """Keras' global dtype policy for the block (float32, or mixed_bfloat16: bf16 compute on CPUs with
    native bfloat16), restored afterwards: layers take the policy when they are built."""
    import keras

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
