"""EfficientNet's blocks: unfreezing whole blocks, and cutting the network between blocks.

Both backbones (Keras' EfficientNet-B0 and the Lite0 of cifar10.models.lite0) name their layers
`stem_*` (plus input scaling), then `block{stack}{letter}_*` for 16 blocks (1a 2a 2b 3a 3b 4a-4c
5a-5c 6a-6d 7a), then `top_*`. A block's input feeds only that block (residual blocks add it back
inside themselves), so the network can be cut between blocks: the lower part's output is cached once
and each fine-tuning epoch runs only the blocks that train.
"""
from __future__ import annotations

import re

import keras

from cifar10.errors import PipelineError

_BLOCK = re.compile(r"^(block\d+[a-z])_")


def layer_units(network: keras.Model) -> dict[str, str]:
    """Layer name -> its unit: a block name, or 'stem' (before the first block) / 'top' (after the last)."""
    units, seen_block = {}, False
    for layer in network.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        m = _BLOCK.match(layer.name)
        seen_block |= m is not None
        units[layer.name] = m.group(1) if m else ("top" if seen_block else "stem")
    return units


def block_names(network: keras.Model) -> list[str]:
    return list(dict.fromkeys(u for u in layer_units(network).values() if u not in ("stem", "top")))


def split(network: keras.Model, n_top_blocks: int) -> tuple[keras.Model, keras.Model]:
    """(lower, upper): `upper(lower(x)) == network(x)`, cut before the last `n_top_blocks` blocks.

    Both parts reuse the network's own layer objects (Keras 3 builds a model between any two of its
    tensors), so training `upper` trains the network that is saved.

    Raises:
        PipelineError: a block count outside 1..16 (`transfer.fine_tune_blocks`).
    """
    blocks = block_names(network)
    if not 1 <= n_top_blocks <= len(blocks):
        raise PipelineError(f"params.yaml: transfer.fine_tune_blocks: 0..{len(blocks)} (got {n_top_blocks})")
    first = blocks[-n_top_blocks]
    cut = next(layer for layer in network.layers if layer.name.startswith(first + "_")).input
    lower = keras.Model(network.input, cut, name="lower")
    upper = keras.Model(cut, network.output, name="upper")
    if len(lower.layers) + len(upper.layers) - 2 != len(network.layers) - 1:  # a cut through a block
        raise AssertionError(f"cutting before {first} does not separate whole blocks")
    return lower, upper


def unfreeze_top_blocks(network: keras.Model, n_top_blocks: int) -> int:
    """Make the last `n_top_blocks` whole blocks and the top trainable, except batch norm; return the
    number of layers with weights that became trainable.

    Batch norm stays frozen: with `trainable=False` Keras also keeps its gamma/beta fixed, the usual
    recipe for fine-tuning EfficientNet (a few mini-batches would otherwise pull the pretrained
    normalisation away from the statistics the frozen lower layers produce).
    """
    blocks = block_names(network)
    if not 0 <= n_top_blocks <= len(blocks):
        raise PipelineError(f"params.yaml: transfer.fine_tune_blocks: 0..{len(blocks)} (got {n_top_blocks})")
    training = set(blocks[len(blocks) - n_top_blocks:]) | ({"top"} if n_top_blocks else set())
    units = layer_units(network)
    network.trainable = True  # a frozen outer model would hide every inner weight from the optimizer
    count = 0
    for layer in network.layers:
        layer.trainable = units.get(layer.name) in training and not isinstance(layer, keras.layers.BatchNormalization)
        count += int(layer.trainable and bool(layer.weights))
    return count
