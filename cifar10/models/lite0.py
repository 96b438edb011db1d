"""EfficientNet-Lite0 with ImageNet weights converted from a PyTorch state dict, without torch.

keras-cv's `EfficientNetLiteB0Backbone` alias loads a preset over the network, so the same
architecture is built here from explicit arguments (EfficientNet-B0's seven stacks at width and
depth 1.0, no squeeze-excitation, ReLU6) and re-wrapped as a plain functional model of built-in
layers, so a saved whole model loads without keras-cv. Weights come from a lukemelas-style state dict
(`_conv_stem`, `_bn0`, `_blocks.N._expand_conv|_bn0|_depthwise_conv|_bn1|_project_conv|_bn2`,
`_conv_head`, `_bn1`; `_fc` is the 1000-class ImageNet head): conv OIHW -> HWIO, depthwise
(C, 1, kh, kw) -> (kh, kw, C, 1), batch norm weight/bias/running_mean/running_var -> gamma/beta/
moving_mean/moving_variance. The network was trained on `(x - 127) / 128` inputs.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from cifar10.errors import PipelineError

LITE0_ARGS = dict(
    width_coefficient=1.0,
    depth_coefficient=1.0,
    stackwise_kernel_sizes=[3, 3, 5, 3, 5, 5, 3],
    stackwise_num_repeats=[1, 2, 2, 3, 3, 4, 1],
    stackwise_input_filters=[32, 16, 24, 40, 80, 112, 192],
    stackwise_output_filters=[16, 24, 40, 80, 112, 192, 320],
    stackwise_expansion_ratios=[1, 6, 6, 6, 6, 6, 6],
    stackwise_strides=[1, 2, 2, 2, 1, 2, 1],
    dropout_rate=0.2,
    drop_connect_rate=0.2,  # stochastic depth on residual adds: off in inference mode, as we always call it
    depth_divisor=8,
    activation="relu6",
)
FEATURES = 1280
BN_EPSILON = 1e-3  # TF EfficientNet-Lite and its PyTorch port both use 1e-3, as Keras does
# The network's input scaling, (x - 127) / 128, as a built-in Rescaling layer's scale and offset.
INPUT_SCALE, INPUT_OFFSET = 1 / 128, -127 / 128
_BN_PARTS = ("weight", "bias", "running_mean", "running_var")


def build_lite0(image_size: int, name: str = "efficientnet_lite0"):
    """A randomly initialised Lite0 feature map network: (s, s, 3) scaled input -> (s/32, s/32, 1280)."""
    import keras
    import keras_cv

    net = keras_cv.models.EfficientNetLiteBackbone(include_rescaling=False, input_shape=(image_size, image_size, 3),
                                                   **LITE0_ARGS)
    # The same layers as a plain functional model: saved models then need only Keras to load.
    return keras.Model(net.input, net.output, name=name)


def block_names() -> list[str]:
    """Keras block prefixes in network order (`block1a`, `block2a`, ... `block7a`), one per torch block."""
    return [f"block{i + 1}{chr(97 + j)}" for i, n in enumerate(LITE0_ARGS["stackwise_num_repeats"]) for j in range(n)]


def layer_map() -> list[tuple[str, str, str]]:
    """(torch module prefix, keras layer name, kind) for every weighted layer, in network order."""
    rows = [("_conv_stem", "stem_conv", "conv"), ("_bn0", "stem_bn", "bn")]
    for b, block in enumerate(block_names()):
        t = f"_blocks.{b}."
        if LITE0_ARGS["stackwise_expansion_ratios"][int(block[5]) - 1] != 1:  # block1a has no expansion
            rows += [(t + "_expand_conv", f"{block}_expand_conv", "conv"), (t + "_bn0", f"{block}_expand_bn", "bn")]
        rows += [(t + "_depthwise_conv", f"{block}_dwconv", "dwconv"), (t + "_bn1", f"{block}_bn", "bn"),
                 (t + "_project_conv", f"{block}_project_conv", "conv"), (t + "_bn2", f"{block}_project_bn", "bn")]
    return rows + [("_conv_head", "top_conv", "conv"), ("_bn1", "top_bn", "bn")]


def _arrays(state: Mapping[str, np.ndarray], torch_name: str, kind: str, where: str) -> list[np.ndarray]:
    def get(key: str) -> np.ndarray:
        if key not in state:
            raise PipelineError(f"{where}: no tensor {key} (not an EfficientNet-Lite0 state dict)")
        return state[key]

    if kind == "conv":
        return [get(f"{torch_name}.weight").transpose(2, 3, 1, 0)]
    if kind == "dwconv":
        return [get(f"{torch_name}.weight").transpose(2, 3, 0, 1)]
    return [get(f"{torch_name}.{part}") for part in _BN_PARTS]


def load_state(net, state: Mapping[str, np.ndarray], where: str) -> None:
    """Put the backbone tensors of a Lite0 state dict into `build_lite0`'s network, one to one.

    Raises:
        PipelineError: one line naming `where` if a tensor is missing, does not fit, is left over,
            or a Keras layer gets no tensor.
    """
    used: set[str] = set()
    for torch_name, keras_name, kind in layer_map():
        layer = net.get_layer(keras_name)
        arrays = _arrays(state, torch_name, kind, where)
        for var, arr in zip(layer.weights, arrays, strict=True):
            if tuple(var.shape) != arr.shape:
                raise PipelineError(f"{where}: {torch_name} has shape {arr.shape}, {keras_name} needs "
                                    f"{tuple(var.shape)}")
        if kind == "bn" and layer.epsilon != BN_EPSILON:
            raise PipelineError(f"{where}: {keras_name} has batch-norm epsilon {layer.epsilon}, not {BN_EPSILON}")
        layer.set_weights(arrays)
        used.update(f"{torch_name}.{p}" for p in (_BN_PARTS if kind == "bn" else ("weight",)))
    unmapped = {layer.name for layer in net.layers if layer.weights} - {k for _, k, _ in layer_map()}
    leftover = [k for k in state
                if k not in used and not k.endswith(".num_batches_tracked") and not k.startswith("_fc.")]
    if unmapped or leftover:
        raise PipelineError(f"{where}: layers without tensors {sorted(unmapped)[:3]}, tensors without layers "
                            f"{leftover[:3]} (not an EfficientNet-Lite0 state dict)")


def imagenet_head(state: Mapping[str, np.ndarray], where: str):
    """The state dict's 1000-class classifier as (kernel, bias) of a Keras Dense layer."""
    w, b = state.get("_fc.weight"), state.get("_fc.bias")
    if w is None or b is None or w.shape != (1000, FEATURES) or b.shape != (1000,):
        raise PipelineError(f"{where}: no 1000 x {FEATURES} ImageNet head (_fc) in the state dict")
    return w.T, b
