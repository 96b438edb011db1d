"""The CNN's optimizer and its learning rate (constant, or the cosine schedule), from `train.optimizer`.

The schedule is one of the imbalance remedies (cifar10.training.remedies lists them), but it is part
of the optimizer Keras compiles, so it is built here, beside the optimizer that carries it.
"""
from __future__ import annotations

from cifar10.schema.train import TrainParams


def learning_rate(cfg: TrainParams, steps_per_epoch: int):
    """The optimizer's learning rate: constant, or cosine decay to 0 over `epochs` epochs."""
    import keras

    if cfg.optimizer.schedule == "constant":
        return cfg.optimizer.learning_rate
    return keras.optimizers.schedules.CosineDecay(cfg.optimizer.learning_rate, steps_per_epoch * cfg.epochs)


def make_optimizer(cfg: TrainParams, steps_per_epoch: int = 1):
    """The Keras optimizer `cfg.optimizer` names; `steps_per_epoch` is the cosine schedule's unit."""
    import keras

    opt, rate = cfg.optimizer, learning_rate(cfg, steps_per_epoch)
    if opt.name == "adam":
        return keras.optimizers.Adam(rate)
    if opt.name == "sgd":
        return keras.optimizers.SGD(rate, momentum=opt.momentum)
    if opt.name == "rmsprop":
        return keras.optimizers.RMSprop(rate, momentum=opt.momentum)
    return keras.optimizers.Adadelta(rate)
