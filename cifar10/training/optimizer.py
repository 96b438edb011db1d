"""Every optimizer the project trains with, and its learning rate over training: the CNN's from
`train.optimizer`, and the Adam of each transfer phase (head, fine-tuning) from `transfer`.

The CNN's schedules, over `train.epochs` x the steps of an epoch (`total`):

- constant: `learning_rate` throughout.
- cosine: from `learning_rate` down to 0 at the last step (the study's runs of 50 epochs or more).
- warmup_cosine: linear from 0 to `learning_rate` over the first `warmup_fraction` of the steps, then
  cosine down to 0 at the last step (Loshchilov & Hutter, 2017, with Goyal et al.'s warm-up).
- one_cycle: linear from `learning_rate` / 25 up to `learning_rate` over the first `warmup_fraction`,
  then linear down to 0 at the last step (Smith & Topin's one-cycle; momentum is not cycled).

The schedule is also one of the imbalance remedies (cifar10.training.remedies lists them), but it is
part of the optimizer Keras compiles, so it is built here, beside the optimizer that carries it.
"""
from __future__ import annotations

import math

import keras
from keras import ops

from cifar10.schema.train import TrainParams

ONE_CYCLE_START = 1 / 25  # one_cycle's first rate, as a fraction of its peak (PyTorch's OneCycleLR default)
NO_DECAY = ("bias", "gamma", "beta")  # AdamW leaves biases and batch norm's scale and offset undecayed


@keras.saving.register_keras_serializable(package="cifar10")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear from `peak` * ONE_CYCLE_START to `peak` over `warmup_steps`, then linear to 0 at `total_steps`
    (and 0 after it)."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        super().__init__()
        self.peak, self.total_steps, self.warmup_steps = float(peak), int(total_steps), int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        start = self.peak * ONE_CYCLE_START
        rising = start + (self.peak - start) * step / max(self.warmup_steps, 1)
        falling = self.peak * ops.maximum(self.total_steps - step, 0.0) / max(self.total_steps - self.warmup_steps, 1)
        return ops.where(step < self.warmup_steps, rising, falling)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def learning_rate(cfg: TrainParams, steps_per_epoch: int):
    """The CNN optimizer's learning rate: a number (constant) or a schedule over the training's steps."""
    opt = cfg.optimizer
    total = max(steps_per_epoch * cfg.epochs, 1)
    warmup = math.floor(opt.warmup_fraction * total)
    if opt.schedule == "constant":
        return opt.learning_rate
    if opt.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(opt.learning_rate, steps_per_epoch * cfg.epochs)
    if opt.schedule == "warmup_cosine":
        return keras.optimizers.schedules.CosineDecay(0.0, max(total - warmup, 1), warmup_target=opt.learning_rate,
                                                      warmup_steps=warmup)
    return OneCycle(opt.learning_rate, total, warmup)


def make_optimizer(cfg: TrainParams, steps_per_epoch: int = 1):
    """The Keras optimizer `cfg.optimizer` names; `steps_per_epoch` is the schedules' unit."""
    opt, rate = cfg.optimizer, learning_rate(cfg, steps_per_epoch)
    if opt.name == "adam":
        return keras.optimizers.Adam(rate)
    if opt.name == "adamw":
        # Decoupled: each step multiplies a decayed weight by (1 - learning rate x weight_decay), whatever
        # its gradient (Loshchilov & Hutter, 2019).
        adamw = keras.optimizers.AdamW(rate, weight_decay=opt.weight_decay)
        adamw.exclude_from_weight_decay(var_names=list(NO_DECAY))
        return adamw
    if opt.name == "sgd":
        return keras.optimizers.SGD(rate, momentum=opt.momentum, nesterov=opt.nesterov)
    if opt.name == "rmsprop":
        return keras.optimizers.RMSprop(rate, momentum=opt.momentum)
    return keras.optimizers.Adadelta(rate)


def phase_optimizer(rate: float, schedule: str, steps: int):
    """The Adam of one transfer training phase (the head, or fine-tuning) at `rate`, constant or cosine-
    decayed to 0 over the phase's `steps`."""
    if schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=max(steps, 1))
    return keras.optimizers.Adam(rate)
