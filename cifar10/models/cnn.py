"""The study's CNN as a function of the `train.model` params.

With the defaults it is the architecture of the study (552,874 parameters, 1,152 of them
non-trainable). The model takes raw uint8 images (N, 32, 32, 3) and returns class probabilities
(N, 10): scaling to [0, 1] is its first layer, so every consumer feeds it the dataset's arrays as they
are. Only built-in Keras layers are used, so `keras.models.load_model` needs no custom objects.
The params schema has already rejected architectures that cannot be built (cifar10.schema.train).
"""
from __future__ import annotations

from cifar10.schema.train import IMAGE_SIDE, ModelParams, OnlineAugmentationParams

IMAGE_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 3)


def build_cnn(cfg: ModelParams, n_classes: int = 10, fused_batch_norm: bool = False,
              online: OnlineAugmentationParams | None = None, bits_dropout: bool = False):
    """Build (not compile) the CNN: conv blocks, then hidden dense layers, then a softmax output.

    Per block: [Conv2D -> BatchNorm -> activation] x convs_per_block, MaxPool 2x2, Dropout.
    Head: Flatten, [Dense -> BatchNorm -> activation -> Dropout] per hidden layer, Dense softmax.
    The softmax runs in float32 even under a mixed-precision policy, so probabilities stay exact.
    `fused_batch_norm` computes batch norm with TensorFlow's fused kernel (the same maths, a third
    faster to train on a CPU; cifar10.models.fused_bn), for training; save `to_stock(model)`.
    `bits_dropout` draws dropout masks from 16-bit integers (cifar10.models.bits_dropout): the rate
    exact to 1/65536 in bfloat16 too, at half the draw's cost; also for training, saved as stock.
    `online`: random flip, pad-and-crop, translation and cutout layers after the scaling, in that order,
    active in training only (they pass images through unchanged at inference; cifar10.models.online);
    they have no weights, so the parameter count stays the study's.
    """
    import keras
    from keras import layers

    from cifar10.models.online import Cutout, PadCrop

    if fused_batch_norm:
        from cifar10.models.fused_bn import FusedBatchNormalization as BatchNorm
    else:
        BatchNorm = layers.BatchNormalization
    if bits_dropout:
        from cifar10.models.bits_dropout import BitsDropout as Dropout
    else:
        Dropout = layers.Dropout

    regularizer = keras.regularizers.L1L2(l1=cfg.l1, l2=cfg.l2) if (cfg.l1 or cfg.l2) else None
    dense_kwargs = dict(kernel_initializer=cfg.kernel_initializer, kernel_regularizer=regularizer)
    # The bias is redundant before batch norm (its beta shifts the same way) but the study's count includes it.
    inputs = keras.Input(shape=IMAGE_SHAPE, dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    # float32 whatever the policy: the image resampling has no bfloat16 kernel, and it is cheap.
    if online is not None and online.flip:
        x = layers.RandomFlip("horizontal", dtype="float32", name="online_flip")(x)
    if online is not None and online.crop:
        x = PadCrop(online.crop, dtype="float32", name="online_crop")(x)
    if online is not None and online.translate:
        x = layers.RandomTranslation(online.translate, online.translate, fill_mode="reflect", dtype="float32",
                                     name="online_translate")(x)
    if online is not None and online.cutout:
        x = Cutout(online.cutout, dtype="float32", name="online_cutout")(x)
    for block, (filters, rate) in enumerate(zip(cfg.filters, cfg.conv_dropout), start=1):
        for conv in range(1, cfg.convs_per_block + 1):
            x = layers.Conv2D(filters, cfg.kernel_size, padding="same", name=f"block{block}_conv{conv}",
                              **dense_kwargs)(x)
            if cfg.batch_norm:
                x = BatchNorm(momentum=cfg.batch_norm_momentum, name=f"block{block}_bn{conv}")(x)
            x = layers.Activation(cfg.activation, name=f"block{block}_act{conv}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = Dropout(rate, name=f"block{block}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(cfg.dense_units, start=1):
        x = layers.Dense(units, name=f"dense{i}", **dense_kwargs)(x)
        if cfg.batch_norm:
            x = BatchNorm(momentum=cfg.batch_norm_momentum, name=f"dense{i}_bn")(x)
        x = layers.Activation(cfg.activation, name=f"dense{i}_act")(x)
        x = Dropout(cfg.dense_dropout, name=f"dense{i}_dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities",
                           **dense_kwargs)(x)
    return keras.Model(inputs, outputs, name="cnn")


def param_counts(model) -> dict[str, int]:
    """Total, trainable and non-trainable parameter counts, as Keras' summary reports them."""
    import numpy as np

    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"params_total": trainable + frozen, "params_trainable": trainable, "params_non_trainable": frozen}
